"""The Collector tier: one gateway (otel-collector.gateway.yaml) load-balancing by trace id over
two tail-sampling Collectors (otel-collector.yaml). No trace is split, every failed check's
trace is kept whole, and one otel-health's series are exported by one sampler only."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_health.collector import Collector
from otel_health.config.loader import load_text
from otel_health.probes import PROBES
from tests.harness import servers
from tests.harness.procs import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SAMPLER = [REPO / "otel-collector.yaml", REPO / "tests" / "testdata" / "otel-collector.test.yaml"]
GATEWAY = [REPO / "otel-collector.gateway.yaml"]


def _kept(path: Path) -> dict[str, list[dict]]:
    """The spans a sampler's file exporter wrote, by trace id."""
    traces: dict[str, list[dict]] = defaultdict(list)
    if not path.exists():
        return traces
    for line in path.read_text().splitlines():
        for resource in json.loads(line).get("resourceSpans", []):
            for scope in resource.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    traces[span["traceId"]].append(span)
    return traces


def _series(port: int, name: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return "\n".join(line for line in response.read().decode().splitlines() if line.startswith(name + "{"))


async def test_a_gateway_sends_each_trace_whole_to_one_sampler_and_every_failed_one_is_kept(
        tmp_path: Path, http_targets: servers.HttpTargets, jaeger: servers.Jaeger,
        monkeypatch: pytest.MonkeyPatch) -> None:
    files = [tmp_path / f"kept-{i}.json" for i in range(2)]
    samplers = [servers.start_otelcol(tmp_path / f"sampler-{i}", SAMPLER, {
        "JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{jaeger.otlp_grpc}",
        "OTELCOL_FILE_EXPORT_PATH": str(files[i]), "OTELCOL_LOG_LEVEL": "warn"}) for i in range(2)]
    gateway = servers.start_otelcol(tmp_path / "gateway", GATEWAY, {
        "OTELCOL_SAMPLERS": "[" + ", ".join(f"127.0.0.1:{s.otlp_grpc}" for s in samplers) + "]",
        "OTELCOL_LOG_LEVEL": "warn"})
    spans = InMemorySpanExporter()
    try:
        monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-test")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        targets = "".join(
            f"  - {{name: {name}-{i}, kind: http, url: '{http_targets.url(path)}', interval: 0.2s, timeout: 0.2s}}\n"
            for i in range(8) for name, path in (("ok", "/ok"), ("failing", "/status/500")))
        text = ("listen: 127.0.0.1:0\nenvironment: gateway\n"
                f"otlp:\n  endpoint: http://127.0.0.1:{gateway.otlp_http}\n  export_interval: 0.5s\n"
                "  keep_percent: 0\ntargets:\n" + targets)
        collector = Collector(load_text(text, "gateway.yaml", PROBES), span_processors=[SimpleSpanProcessor(spans)])
        await collector.start()
        try:
            await asyncio.sleep(3)
        finally:
            await collector.stop(grace=1)
        # What otel-health sent: the failed checks' traces (keep_percent 0), each a root and its children.
        sent: dict[str, int] = defaultdict(int)
        failed = set()
        for span in spans.get_finished_spans():
            trace_id = format(span.context.trace_id, "032x")
            sent[trace_id] += 1
            if span.parent is None and (span.attributes or {}).get("tta.check.outcome") == "down":
                failed.add(trace_id)
        assert len(failed) >= 40

        def arrived() -> bool:
            kept = [_kept(f) for f in files]
            return failed <= set(kept[0]) | set(kept[1])

        wait_until(arrived, timeout=30, what="every failed check's trace at a sampler")
        kept = [_kept(f) for f in files]
        assert not set(kept[0]) & set(kept[1]), "a trace was split between the samplers"
        assert kept[0] and kept[1], "the gateway sent every trace to one sampler"
        for trace_id in failed:
            spans_kept = (kept[0] | kept[1])[trace_id]
            assert len(spans_kept) == sent[trace_id] >= 2  # the root and its request's spans, whole
        # Metrics by resource: this otel-health's series are on one sampler's exporter, not both.
        wait_until(lambda: any("gateway" in _series(s.prometheus_port, "tta_service_up") for s in samplers),
                   timeout=30, what="the series at a sampler")
        holding = [s for s in samplers if 'environment="gateway"' in _series(s.prometheus_port, "tta_service_up")]
        assert len(holding) == 1
        assert _series(holding[0].prometheus_port, "tta_service_up").count("\n") + 1 == 16
    finally:
        gateway.stop()
        for sampler in samplers:
            sampler.stop()
