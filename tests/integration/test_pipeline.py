"""The Collector path end to end: same series as the bridge, sampled traces, exemplars, outages."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_health.collector import Collector
from otel_health.config.loader import load_text
from otel_health.probes import PROBES
from otel_health.telemetry import KeepPolicy
from tests.harness import servers
from tests.harness.procs import free_port
from tests.harness.running import keeping_every_trace

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIGS = [REPO / "otel-collector.yaml", REPO / "tests" / "testdata" / "otel-collector.test.yaml"]

StartCollector = Callable[..., servers.OtelCollector]


@pytest.fixture
def start_collector(tmp_path: Path, jaeger: servers.Jaeger) -> Iterator[StartCollector]:
    started: list[servers.OtelCollector] = []

    def start(ports: dict[str, int] | None = None, *, extra: tuple[Path, ...] = ()) -> servers.OtelCollector:
        env = {"JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{jaeger.otlp_grpc}",
               "OTELCOL_FILE_EXPORT_PATH": str(tmp_path / f"kept-{len(started)}.json"),
               "OTELCOL_LOG_LEVEL": "warn"}
        collector = servers.start_otelcol(tmp_path / f"otelcol-{len(started)}", [*CONFIGS, *extra], env, ports)
        started.append(collector)
        return collector

    yield start
    for collector in started:
        collector.stop()


def _config(h: servers.HttpTargets, collector: servers.OtelCollector, *, interval: str = "0.25s") -> str:
    return (
        "listen: 127.0.0.1:0\nenvironment: pipeline\n"
        f"otlp:\n  endpoint: http://127.0.0.1:{collector.otlp_http}\n  export_interval: 0.5s\n"
        "targets:\n"
        f"  - name: healthy\n    kind: http\n    url: {h.url('/ok')}\n    interval: {interval}\n    timeout: 0.25s\n"
        f"  - name: failing\n    kind: http\n    url: {h.url('/status/500')}\n    interval: {interval}\n"
        "    timeout: 0.25s\n"
        f"  - name: slow\n    kind: http\n    url: {h.url('/slow?ms=120')}\n    interval: {interval}\n"
        "    timeout: 0.25s\n    slow_threshold: 100ms\n"
    )


async def _start(text: str, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, service: str) -> Collector:
    monkeypatch.setenv("OTEL_SERVICE_NAME", service)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    config = keeping_every_trace(load_text(text, "pipeline.yaml", PROBES), text)
    collector = Collector(config, span_processors=[SimpleSpanProcessor(spans)])
    await collector.start()
    return collector


def _roots(spans: InMemorySpanExporter) -> list:
    return [s for s in spans.get_finished_spans() if s.parent is None]


def _jaeger_traces(jaeger: servers.Jaeger, service: str) -> list[dict]:
    q = urllib.parse.urlencode({"service": service, "limit": "2000", "lookback": "1h"})
    try:
        return list(servers.get_json(f"{jaeger.query_url}/api/traces?{q}")["data"] or [])
    except Exception:
        return []


async def _settle(jaeger: servers.Jaeger, service: str, expected: int, timeout: float = 20.0) -> list[dict]:
    """Wait until Jaeger holds ``expected`` traces of ``service`` and stays there for a moment."""
    deadline = time.monotonic() + timeout
    traces: list[dict] = []
    while time.monotonic() < deadline:
        traces = await asyncio.to_thread(_jaeger_traces, jaeger, service)
        if len(traces) >= expected:
            await asyncio.sleep(2.0)  # longer than decision_wait: nothing more may come
            return await asyncio.to_thread(_jaeger_traces, jaeger, service)
        await asyncio.sleep(0.3)
    return traces


def _tags(span: dict) -> dict:
    return {t["key"]: t["value"] for t in span["tags"]}


@pytest.mark.parametrize(("ours", "salt"), [(0, None), (30, "pipeline-salt")])
async def test_otel_health_decides_which_traces_are_kept_and_the_collector_keeps_exactly_those(
    ours: float, salt: str | None, start_collector: StartCollector, http_targets: servers.HttpTargets,
    jaeger: servers.Jaeger, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """otel-health keeps failed and slow checks and ``ours`` percent of the rest, by trace id
    with ``salt``, and marks each kept root; the shipped Collector reads no share of its own and
    keeps what is marked. Every check's traceparent is seen by the target; Jaeger must hold
    exactly the traces otel-health kept, one by one, and otel-health, reading the Collector's
    own metrics, counts no trace dropped. (Every trace kept, 100 percent, is what the other
    tests of this file run with.)"""
    h = http_targets
    collector = start_collector()
    if salt:
        monkeypatch.setenv("OTEL_HEALTH_KEEP_SALT", salt)
    spans = InMemorySpanExporter()
    service = f"otel-health-keep-{ours}-{free_port()}"
    text = _config(h, collector).replace("export_interval: 0.5s\n", f"export_interval: 0.5s\n  keep_percent: {ours}\n"
                                         f"  collector_metrics: {_telemetry(collector)}\n"
                                         "  collector_metrics_interval: 1s\n")
    text += "".join(f"  - name: traced-{i}\n    kind: http\n    url: {h.url('/traced')}\n    interval: 0.1s\n"
                    "    timeout: 0.1s\n    slow_threshold: 0.1s\n" for i in range(4))
    before = len(h.seen())
    health = await _start(text, spans, monkeypatch, service)
    try:
        await asyncio.sleep(3.5)
        await health.scheduler.stop(grace=1)  # the checks end; export and the Collector's watch go on
        ours_policy = KeepPolicy(ours, salt or "")
        sent = [seen["traceparent"] for seen in h.seen()[before:]]
        assert len(sent) >= 40 and all(tp.endswith("-01") for tp in sent)  # every check's context goes out sampled
        sent_ids = {int(tp.split("-")[1], 16) for tp in sent}
        roots = _roots(spans)
        kept = {s.context.trace_id: s for s in roots}
        failed_or_slow = {tid for tid, s in kept.items()
                          if s.attributes["tta.check.outcome"] == "down" or s.attributes["tta.check.slow"]}
        assert failed_or_slow and kept
        assert all(s.attributes["tta.check.kept"] is True for s in roots)  # the mark the Collector keeps by
        # In the process: failed and slow checks, and exactly the healthy ones the share picks.
        assert all(tid in failed_or_slow or ours_policy.keeps(tid) for tid in kept)
        assert {tid for tid in sent_ids if ours_policy.keeps(tid)} <= set(kept)
        if ours == 0:
            assert set(kept) == failed_or_slow
        # The Collector: everything it was sent, nothing else.
        want = {format(tid, "032x") for tid in kept}
        traces = await _settle(jaeger, service, len(want))
        assert {t["traceID"].rjust(32, "0") for t in traces} == want
        for trace in traces:
            root = next(s for s in trace["spans"] if s["operationName"].startswith("health_check "))
            tags = _tags(root)
            if tags["tta.check.outcome"] == "down":
                assert tags["otel.status_code"] == "ERROR"
                assert tags["error.type"] in ("http_status", "timeout")
        await asyncio.sleep(1.5)  # one more read of the Collector's count, after its last decision
        assert health.collector_drops.dropped == 0
        assert not [r for r in caplog.records if r.getMessage() in ("collector_drops_kept_traces",
                                                                     "collector_metrics_unreadable")]
    finally:
        await health.stop(grace=1)


def _telemetry(collector: servers.OtelCollector) -> str:
    return f"http://127.0.0.1:{collector.telemetry_port}/metrics"


async def test_a_collector_that_drops_what_otel_health_keeps_is_noticed_and_said(
    start_collector: StartCollector, http_targets: servers.HttpTargets, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """A Collector with a share of its own (the policy of an older otel-collector.yaml) drops
    traces otel-health sent to be kept: otel-health reads the Collector's own count and says so
    in a log line and in otel_health_collector_dropped_traces_total."""
    own_share = tmp_path / "own-share.yaml"
    own_share.write_text("processors:\n  tail_sampling:\n    policies:\n      - name: share-of-its-own\n"
                         "        type: probabilistic\n        probabilistic: {sampling_percentage: 0}\n")
    collector = start_collector(extra=(own_share,))
    text = _config(http_targets, collector).replace(
        "export_interval: 0.5s\n", "export_interval: 0.5s\n  keep_percent: 100\n"
        f"  collector_metrics: {_telemetry(collector)}\n  collector_metrics_interval: 1s\n")
    health = await _start(text, InMemorySpanExporter(), monkeypatch, f"otel-health-drops-{free_port()}")
    try:
        deadline = time.monotonic() + 20.0
        while health.collector_drops.dropped == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
        assert health.collector_drops.dropped > 0
        said = [r for r in caplog.records if r.getMessage() == "collector_drops_kept_traces"]
        assert len(said) == 1  # once, then at most every ten minutes
        fields = said[0].fields  # type: ignore[attr-defined]
        assert fields["collector"] == _telemetry(collector) and "tta.check.kept" in fields["fix"]
        rendered = health.bridge.render().decode()
        line = next(x for x in rendered.splitlines() if x.startswith("otel_health_collector_dropped_traces_total"))
        assert float(line.rsplit(" ", 1)[1]) > 0
    finally:
        await health.stop(grace=1)


async def test_collector_path_serves_the_same_series_as_the_bridge_with_exemplars(
    start_collector: StartCollector, http_targets: servers.HttpTargets, jaeger: servers.Jaeger,
    prometheus: servers.Prometheus, monkeypatch: pytest.MonkeyPatch,
) -> None:
    collector = start_collector()
    spans = InMemorySpanExporter()
    service = f"otel-health-series-{free_port()}"
    health = await _start(_config(http_targets, collector), spans, monkeypatch, service)
    bridge_job, collector_job = f"bridge-{health.port}", f"collector-{collector.prometheus_port}"
    try:
        await asyncio.to_thread(prometheus.scrape, bridge_job, health.port)
        await asyncio.to_thread(prometheus.scrape, collector_job, collector.prometheus_port)
        await asyncio.sleep(3.0)  # a few scrapes while checks run: exemplars are taken then

        # Exemplars lead to traces that sampling kept, by both paths.
        now = time.time()
        for job in (collector_job, bridge_job):
            q = urllib.parse.urlencode({"query": f'tta_service_check_duration_seconds_bucket{{job="{job}"}}',
                                        "start": now - 600, "end": now + 10})
            data = await asyncio.to_thread(servers.get_json, f"{prometheus.url}/api/v1/query_exemplars?{q}")
            exemplars = [(group["seriesLabels"], e) for group in data["data"] for e in group["exemplars"]]
            assert exemplars, job
            assert all(labels["service"] in ("failing", "slow") for labels, _ in exemplars), job
            for trace_id in {e["labels"]["trace_id"] for _, e in exemplars}:
                found = None
                for _ in range(40):
                    found = await asyncio.to_thread(jaeger.trace, trace_id)
                    if found:
                        break
                    await asyncio.sleep(0.25)
                assert found is not None, f"exemplar trace {trace_id} ({job}) not in Jaeger"

        # Stop checking but keep serving and exporting: both paths converge on the same values.
        await health.scheduler.stop(grace=1)
        await asyncio.sleep(3.0)  # > the export interval and a scrape interval

        async def series(metric: str, job: str) -> dict[tuple, str]:
            result = await asyncio.to_thread(prometheus.query, f'{metric}{{job="{job}"}}')
            out = {}
            for sample in result:
                labels = {k: v for k, v in sample["metric"].items()
                          if k not in ("job", "instance", "exported_job", "exported_instance", "__name__")
                          and not k.startswith("otel_scope_")}
                out[tuple(sorted(labels.items()))] = sample["value"][1]
            return out

        for metric in ("tta_service_up", "tta_service_response_time_seconds", "tta_service_checks_total",
                       "tta_service_check_duration_seconds_bucket", "tta_service_check_duration_seconds_count",
                       "tta_service_info", "tta_service_slow_threshold_seconds"):
            bridge = await series(metric, bridge_job)
            via_collector = await series(metric, collector_job)
            assert bridge, metric
            assert via_collector == bridge, metric
        up = await series("tta_service_up", collector_job)
        assert {dict(k)["service"]: v for k, v in up.items()} == {"healthy": "1", "failing": "0", "slow": "1"}
        assert all(dict(k)["environment"] == "pipeline" and dict(k)["kind"] == "http" for k in up)
        # The Collector path labels job/instance from the resource; no other resource attribute.
        raw = await asyncio.to_thread(prometheus.query, f'tta_service_up{{job="{collector_job}"}}')
        assert raw[0]["metric"]["exported_job"] == service
        extra = set(raw[0]["metric"]) - {"__name__", "job", "instance", "exported_job", "exported_instance",
                                         "service", "environment", "kind"}
        assert extra <= {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}
    finally:
        await asyncio.to_thread(prometheus.unscrape, bridge_job)
        await asyncio.to_thread(prometheus.unscrape, collector_job)
        await health.stop(grace=1)


async def test_collector_outage_never_stalls_probing_and_export_resumes(
    start_collector: StartCollector, http_targets: servers.HttpTargets, jaeger: servers.Jaeger,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collector = start_collector()
    spans = InMemorySpanExporter()
    service = f"otel-health-outage-{free_port()}"
    health = await _start(_config(http_targets, collector), spans, monkeypatch, service)
    try:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(collector.stop)
        before = len(_roots(spans))
        await asyncio.sleep(4.0)
        during = len(_roots(spans)) - before
        # Three targets every 0.25 s. A blocking export would cost OTEL_EXPORTER_OTLP_TIMEOUT (2 s) per
        # attempt; the bounds below are far from that and loose enough for a busy machine.
        assert during >= 3 * 4 * 4 * 0.6
        text = health.bridge.render().decode()
        failures = next(line for line in text.splitlines()
                        if line.startswith('otel_health_export_failures_total{signal="metrics"}'))
        assert float(failures.rsplit(" ", 1)[1]) >= 1
        state = health.store.get(("healthy", "pipeline"))
        lag = list(state.history)[-8:] if state is not None else []
        assert max(r.lag for r in lag) < 0.5
        # Back on the same ports: export resumes without a restart of otel-health.
        again = await asyncio.to_thread(start_collector, collector.ports)
        mark = time.time()
        newest, deadline = 0.0, time.monotonic() + 30.0  # the exporters retry with backoff: poll, bounded
        while newest <= mark and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            traces = await asyncio.to_thread(_jaeger_traces, jaeger, service)
            newest = max((s["startTime"] / 1e6 for t in traces for s in t["spans"]), default=0.0)
        assert newest > mark, "no trace of a check after the Collector came back"
        metrics = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{again.prometheus_port}/metrics", timeout=5).read())
        assert b"tta_service_up" in metrics
    finally:
        await health.stop(grace=1)


def test_both_collector_configs_validate_with_the_built_collector(tmp_path: Path) -> None:
    env = {"OTELCOL_FILE_EXPORT_PATH": str(tmp_path / "kept.json"), "PATH": "/usr/bin:/bin"}
    for configs in ([CONFIGS[0]], CONFIGS):
        result = subprocess.run([str(servers.otelcol_binary()), "validate", *[f"--config={c}" for c in configs]],
                                env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr


async def test_no_secret_reaches_the_collector_whatever_the_fault(
    start_collector: StartCollector, http_targets: servers.HttpTargets, redis_server: servers.Redis,
    postgres_server: servers.Postgres, monkeypatch: pytest.MonkeyPatch, seeded_password: str, tmp_path: Path,
) -> None:
    """Spans as the real Collector received and kept them (its file exporter), all traces kept."""
    collector = start_collector()
    spans = InMemorySpanExporter()
    h = http_targets
    monkeypatch.setenv("SEEDED", seeded_password)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST", ".*")
    cred = "    basic_auth: {username: checker, password: '${SEEDED}'}\n"
    key_pair = h.client_certs["encrypted"]
    text = (
        "listen: 127.0.0.1:0\n"
        f"otlp:\n  endpoint: http://127.0.0.1:{collector.otlp_http}\n  export_interval: 0.5s\n"
        "defaults:\n  interval: 0.3s\n  timeout: 0.3s\ntargets:\n"
        f"  - name: auth-ok\n    kind: http\n    url: {h.url('/auth')}\n{cred}"
        f"  - name: auth-hang\n    kind: http\n    url: http://127.0.0.1:{h.blackhole_port}/\n{cred}"
        f"  - name: auth-refused\n    kind: http\n    url: http://127.0.0.1:{h.closed_port}/\n{cred}"
        f"  - name: auth-tls\n    kind: http\n    url: https://127.0.0.1:{h.expired_port}/\n{cred}"
        f"  - name: redis-wrong\n    kind: redis\n    host: 127.0.0.1\n    port: {redis_server.port}\n"
        "    password: '${SEEDED}'\n    username: nobody\n"
        f"  - name: pg-wrong\n    kind: postgres\n    host: 127.0.0.1\n    port: {postgres_server.port}\n"
        "    user: nobody\n    password: '${SEEDED}'\n    sslmode: disable\n"
        # The proxy password, the key password, the OAuth2 client secret and the token it gets.
        f"  - name: proxy-down\n    kind: http\n    url: {h.url('/ok')}\n    proxy_url: http://127.0.0.1:{h.closed_port}\n"
        "    proxy_basic_auth: {username: prox, password: '${SEEDED}'}\n"
        f"  - name: mtls\n    kind: http\n    url: https://127.0.0.1:{h.mtls_port}/\n    ca_file: {h.cert}\n"
        f"    cert_file: {key_pair[0]}\n    key_file: {key_pair[1]}\n    key_password: '${{SEEDED}}'\n"
        f"  - name: oauth\n    kind: http\n    url: {h.url('/oauth/resource?key=pipeline')}\n    oauth2:\n"
        f"      token_url: {h.url('/oauth/token?key=pipeline')}\n      client_id: {h.oauth_client}\n"
        "      client_secret: '${SEEDED}'\n"
    )
    health = await _start(text, spans, monkeypatch, f"otel-health-secrets-{free_port()}")
    try:
        await asyncio.sleep(3.0)
    finally:
        await health.stop(grace=1)
    kept = Path(collector.env["OTELCOL_FILE_EXPORT_PATH"])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "health_check pg-wrong" not in (kept.read_text() if kept.exists() else ""):
        await asyncio.sleep(0.3)
    exported = kept.read_text()
    for name in ("auth-ok", "auth-hang", "auth-refused", "auth-tls", "redis-wrong", "pg-wrong", "proxy-down",
                 "mtls", "oauth"):
        assert f"health_check {name}" in exported, name
    assert "/oauth/token" in exported  # the token fetch's own span
    assert seeded_password not in exported and "tok-pipeline-" not in exported
    assert base64.b64encode(f"checker:{seeded_password}".encode()).decode() not in exported
