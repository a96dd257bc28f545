"""The collector's wiring: what OTLP the settings ask for, and one check recorded in the
store and in telemetry, through a scripted probe (pure logic; protocols are proven against
real servers in tests/integration)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_health.collector import Collector
from otel_health.config import OtlpSettings, Secret, Target
from otel_health.config.loader import load_text
from otel_health.errors import ErrorType, ProbeFailure
from otel_health.probes import PROBES, Attempt, Probe
from otel_health.telemetry import ExportFailures, OtlpPlan
from otel_health.telemetry._otlp_grpc import GrpcSpanExporter
from otel_health.telemetry._otlp_http import HttpSpanExporter


def test_no_otlp_unless_the_config_or_the_environment_asks() -> None:
    assert OtlpPlan.from_settings(OtlpSettings(), env={}) is None
    plan = OtlpPlan.from_settings(OtlpSettings(), env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318"})
    assert plan is not None and (plan.traces, plan.metrics) == (True, False)
    plan = OtlpPlan.from_settings(OtlpSettings(endpoint="http://c:4318"), env={"OTEL_METRICS_EXPORTER": "none"})
    assert plan is not None and (plan.traces, plan.metrics, plan.protocol) == (True, False, "http/protobuf")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_TRACES_EXPORTER": "none",
           "OTEL_METRICS_EXPORTER": "none"}
    assert OtlpPlan.from_settings(OtlpSettings(), env=env) is None


@contextlib.asynccontextmanager
async def _otlp_sink() -> AsyncIterator[tuple[str, list[tuple[str, str, bytes]]]]:
    """An HTTP server taking OTLP/HTTP requests: (base URL, [(path, authorization, body)])."""
    seen: list[tuple[str, str, bytes]] = []

    async def take(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("Authorization", ""), await request.read()))
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/{tail:.*}", take)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}", seen
    finally:
        await server.close()


async def test_span_exporter_posts_to_the_traces_path_with_the_configured_headers() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    finished = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(finished))
    provider.get_tracer("t").start_span("health_check api").end()
    async with _otlp_sink() as (base, seen):
        settings = OtlpSettings(endpoint=base + "/", headers=(("Authorization", Secret("Bearer t0ken", "env T")),))
        plan = OtlpPlan.from_settings(settings, env={})
        assert plan is not None and plan.protocol == "http/protobuf"
        processor = plan.span_processor(ExportFailures())
        exporter = processor.span_exporter  # type: ignore[attr-defined]
        assert isinstance(exporter, HttpSpanExporter)
        result = await asyncio.to_thread(exporter.export, finished.get_finished_spans())
        processor.shutdown()
    assert result is SpanExportResult.SUCCESS
    (path, authorization, body), = seen
    assert (path, authorization) == ("/v1/traces", "Bearer t0ken")
    request = ExportTraceServiceRequest.FromString(body)
    assert request.resource_spans[0].scope_spans[0].spans[0].name == "health_check api"
    grpc = OtlpPlan.from_settings(dataclasses.replace(settings, protocol="grpc"), env={})
    assert grpc is not None
    processor = grpc.span_processor(ExportFailures())
    try:
        assert isinstance(processor.span_exporter, GrpcSpanExporter)  # type: ignore[attr-defined]
    finally:
        processor.shutdown()


async def test_the_collector_pushes_its_state_families_over_otlp(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    Scripted.outcomes = {"api": [None]}
    async with _otlp_sink() as (base, seen):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", base + "/v1/metrics")
        collector = Collector(load_text(CONFIG, "c.yaml", PROBES), probes={"http": Scripted})
        await collector.start()
        try:
            await _until(lambda: collector.store.get(("api", "default")).result is not None, "a result")
            assert await asyncio.to_thread(collector.telemetry.meter_provider.force_flush, 5000)
        finally:
            await collector.stop(grace=1)
    names = set()
    for path, _, body in seen:
        assert path == "/v1/metrics"
        request = ExportMetricsServiceRequest.FromString(body)
        for rm in request.resource_metrics:
            assert {a.key for a in rm.resource.attributes} >= {"service.name", "service.instance.id"}
            names |= {m.name for sm in rm.scope_metrics for m in sm.metrics}
    assert {"tta_service_up", "tta_service_info", "tta_service_checks", "otel_health_targets"} <= names
    assert not any(path != "/v1/metrics" for path, _, _ in seen)  # no traces asked for, none sent


def test_a_failed_export_is_counted_by_signal() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    failures = ExportFailures()
    exporter = HttpSpanExporter(failures, endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=0.5)
    try:
        exporter.export([])
    finally:
        exporter.shutdown()
    assert dict(failures.counts()) == {"traces": 1, "metrics": 0}


class Scripted(Probe):
    """Answers from a script shared by the test: up, or a failure of a given type."""

    kind = "http"
    options_type = PROBES["http"].options_type
    outcomes: ClassVar[dict[str, list[ErrorType | None]]] = {}

    async def _check(self, target: Target, attempt: Attempt) -> None:
        script = self.outcomes.setdefault(target.name, [])
        outcome = script.pop(0) if len(script) > 1 else (script[0] if script else None)
        attempt.version = "1.2.3"
        if outcome is not None:
            raise ProbeFailure(outcome, f"scripted {outcome}")


CONFIG = ("listen: 127.0.0.1:0\ntargets:\n"
          "  - {name: api, kind: http, url: 'http://127.0.0.1:9/', interval: 0.1s, timeout: 0.1s}\n")


async def _until(predicate, what: str, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not true after {timeout}s"
        await asyncio.sleep(0.02)


async def test_each_result_lands_in_the_store_and_in_every_reader(caplog: pytest.LogCaptureFixture) -> None:
    Scripted.outcomes = {"api": [None, ErrorType.TIMEOUT, ErrorType.TIMEOUT, None]}
    extra = InMemoryMetricReader()
    collector = Collector(load_text(CONFIG, "c.yaml", PROBES), probes={"http": Scripted}, metric_readers=[extra],
                          otlp=False)
    caplog.set_level(logging.INFO, logger="otel_health")
    await collector.start()
    try:
        await _until(lambda: len(collector.store.get(("api", "default")).history) >= 5, "five checks")
    finally:
        await collector.stop(grace=1)
    state = collector.store.get(("api", "default"))
    assert [entry.up for entry in state.history][:4] == [True, False, False, True]
    assert all(0 <= entry.lag < 1.0 for entry in state.history)
    text = collector.bridge.render().decode()
    checks = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
              if line.startswith("tta_service_checks_total{")}
    data = extra.get_metrics_data()
    counted = {tuple(sorted(p.attributes.items())): p.value for rm in data.resource_metrics
               for sm in rm.scope_metrics for m in sm.metrics if m.name == "tta_service_checks"
               for p in m.data.data_points}
    assert sum(checks.values()) == sum(counted.values()) == len(state.history)
    assert 'tta_service_info{service="api",environment="default",kind="http",version="1.2.3"} 1' in text
    lag = next(line for line in text.splitlines() if line.startswith("otel_health_scheduler_lag_seconds_count"))
    assert float(lag.split(" ")[1]) >= len(state.history)
    changes = [r.message for r in caplog.records if r.message.startswith(("target_up", "target_down"))]
    assert [c.split(" ")[0] for c in changes][:3] == ["target_up", "target_down", "target_up"]


async def test_a_reload_that_changes_nothing_keeps_results_and_change_logs(caplog: pytest.LogCaptureFixture) -> None:
    Scripted.outcomes = {"api": [None]}
    config = load_text(CONFIG, "c.yaml", PROBES)
    collector = Collector(config, source=lambda found: load_text(CONFIG, "c.yaml", PROBES, found=found),
                          probes={"http": Scripted}, otlp=False)
    caplog.set_level(logging.INFO, logger="otel_health")
    await collector.start()
    try:
        await _until(lambda: len(collector.store.get(("api", "default")).history) >= 2, "two checks")
        assert await collector.reload() == []
        assert collector.store.get(("api", "default")).result is not None  # kept: nothing changed
        Scripted.outcomes["api"] = [ErrorType.CONNECTION_REFUSED]
        await _until(lambda: any(r.message.startswith("target_down") for r in caplog.records), "a down log")
    finally:
        await collector.stop(grace=1)
    # the scheduler still runs the target object of the first load: its results still count
    assert collector.store.get(("api", "default")).result.error_type is ErrorType.CONNECTION_REFUSED


async def test_a_reload_that_cannot_be_read_keeps_the_old_config_and_says_so(tmp_path) -> None:
    from otel_health.config.loader import load

    Scripted.outcomes = {"api": [None]}
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    def broken() -> object:
        raise MemoryError("no room")

    sources = [lambda: load(path, PROBES)]
    collector = Collector(load(path, PROBES), source=lambda found: sources[0](), probes={"http": Scripted}, otlp=False)
    await collector.start()
    try:
        path.write_text("targets: " + "[" * 50_000)  # nested past what a parser can read
        problems = await collector.reload()
        assert len(problems) == 1 and "nested deeper" in problems[0]
        text = collector.bridge.render().decode()
        assert "otel_health_config_last_reload_successful 0" in text
        assert [t.name for t in collector.config.targets] == ["api"]
        sources[0] = broken  # whatever fails while loading, the running config stays
        assert (await collector.reload())[0].startswith("the configuration could not be loaded (MemoryError")
    finally:
        await collector.stop(grace=1)
