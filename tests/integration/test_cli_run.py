"""`otel-health run` as a process: the built-in default, SIGTERM, OTLP export by OTEL_* variables."""

from __future__ import annotations

import signal
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.harness import servers
from tests.harness.procs import Process, free_port, wait_until

pytestmark = pytest.mark.integration


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def _checks(port: int) -> float:
    line = next(line for line in _metrics(port).splitlines()
                if line.startswith('tta_service_checks_total{service="failing"'))
    return float(line.rsplit(" ", 1)[1])


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Process:
    return Process("otel-health", [sys.executable, "-m", "otel_health", "run", *args],
                   log_path=tmp_path / "otel-health.log", env=env)


def _stop(process: Process, *, within: float) -> tuple[int, float]:
    start = time.monotonic()
    process.signal(signal.SIGTERM)
    code = process.popen.wait(timeout=within)
    return code, time.monotonic() - start


def test_run_without_config_serves_real_series_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    process = _run(tmp_path, "--listen", f"127.0.0.1:{port}")
    try:
        process.wait_ready(lambda: 'tta_service_up{service="otel-health",environment="local",kind="http"} 1'
                           in _metrics(port), timeout=30)
        assert 'tta_service_up{service="otel-health-port",environment="local",kind="tcp"} 1' in _metrics(port)
        code, took = _stop(process, within=10)
    finally:
        process.stop()
    assert code == 0
    assert took < 5
    assert "msg=stopped" in process.log_path.read_text()


def test_sigterm_mid_check_ends_within_the_timeout_and_exits_0(tmp_path: Path,
                                                               http_targets: servers.HttpTargets) -> None:
    port = free_port()
    config = tmp_path / "hang.yaml"
    config.write_text(f"listen: 127.0.0.1:{port}\ntargets:\n  - name: hang\n    kind: http\n"
                      f"    url: {http_targets.url('/hang')}\n    interval: 0.2s\n    timeout: 0.2s\n"
                      f"  - name: hang-long\n    kind: http\n    url: {http_targets.url('/hang')}\n"
                      "    interval: 3s\n    timeout: 2s\n")
    process = _run(tmp_path, "--config", str(config))
    try:
        process.wait_ready(lambda: "otel_health_checks_in_flight 1" in _metrics(port)
                           or "otel_health_checks_in_flight 2" in _metrics(port), timeout=30)
        code, took = _stop(process, within=10)
    finally:
        process.stop()
    assert code == 0
    assert took < 2.0 + 1.5  # the longest timeout plus flushing


def test_otlp_export_by_standard_variables_reaches_jaeger_and_failures_are_counted(
    tmp_path: Path, http_targets: servers.HttpTargets, otelcol_to_jaeger: servers.OtelCollector,
    jaeger: servers.Jaeger,
) -> None:
    port = free_port()
    service_name = f"otel-health-test-{port}"
    config = tmp_path / "otlp.yaml"
    config.write_text(f"listen: 127.0.0.1:{port}\ntargets:\n  - name: failing\n    kind: http\n"
                      f"    url: {http_targets.url('/status/500')}\n    interval: 0.3s\n    timeout: 0.3s\n")
    env = {
        "OTEL_SERVICE_NAME": service_name,
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{otelcol_to_jaeger.otlp_http}/v1/traces",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"http://127.0.0.1:{free_port()}/v1/metrics",  # nobody there
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "1",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    process = _run(tmp_path, "--config", str(config), env=env)
    try:
        query = urllib.parse.urlencode({"service": service_name, "limit": "20"})
        found: dict[str, list[dict[str, object]]] = {}

        def traced() -> bool:
            found["traces"] = servers.get_json(f"{jaeger.query_url}/api/traces?{query}")["data"] or []
            return bool(found["traces"])

        wait_until(traced, timeout=30, what=f"traces of {service_name} in Jaeger", interval=0.3)
        spans = found["traces"][0]["spans"]  # type: ignore[index]
        root = next(s for s in spans if s["operationName"] == "health_check failing")
        tags = {t["key"]: t["value"] for t in root["tags"]}
        assert tags["tta.check.outcome"] == "down"
        assert tags["error.type"] == "http_status"

        wait_until(lambda: 'otel_health_export_failures_total{signal="metrics"} 0' not in _metrics(port)
                   and 'otel_health_export_failures_total{signal="metrics"}' in _metrics(port),
                   timeout=30, what="a counted metrics export failure")
        # Probing keeps its cadence (0.3 s) while every metrics export fails.
        before = _checks(port)
        time.sleep(1.5)
        assert _checks(port) - before >= 4
        code, _ = _stop(process, within=30)
        assert code == 0
    finally:
        process.stop()


def test_sigterm_with_the_collector_gone_exits_within_its_bound_at_a_thousand_targets(
    tmp_path: Path, http_targets: servers.HttpTargets,
) -> None:
    sink = Path(__file__).resolve().parents[2] / "benchmarks" / "otelcol-sink.yaml"
    collector = servers.start_otelcol(tmp_path / "otelcol", [sink], {})
    port = free_port()
    config = tmp_path / "many.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\notlp:\n  endpoint: http://127.0.0.1:{collector.otlp_http}\n"
        "  export_interval: 1s\n  shutdown_timeout: 2s\ndefaults:\n  interval: 2s\n  timeout: 1s\ntargets:\n"
        + "".join(f"  - {{name: t{i}, kind: http, url: '{http_targets.url('/ok')}'}}\n" for i in range(1000)))
    process = _run(tmp_path, "--config", str(config), env={"OTEL_BSP_SCHEDULE_DELAY": "200"})
    try:
        process.wait_ready(lambda: "otel_health_targets 1000" in _metrics(port)
                           and 'export_failures_total{signal="metrics"} 0' in _metrics(port)
                           and sum(1 for line in _metrics(port).splitlines()
                                   if line.startswith("tta_service_up{")) == 1000, timeout=60)
        time.sleep(1.5)  # a metric export has gone out and spans are queued
        collector.stop()  # a whole stack stopping: the Collector goes first
        code, took = _stop(process, within=60)
    finally:
        process.stop()
        collector.stop()
    assert code == 0
    # The longest check timeout (1 s) and its 0.5 s grace, then the 2 s shutdown_timeout, and a
    # margin for a loaded machine; retrying each export with backoff took over a minute.
    assert took < 1.0 + 0.5 + 2.0 + 2.0, took
    assert "msg=stopped" in process.log_path.read_text()
