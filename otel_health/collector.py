"""Wires config, probes, scheduler, telemetry and server into one running collector."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics.export import MetricExportResult, MetricReader
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from . import __version__
from ._switching import fine_switching
from .config import Config, ConfigError, OtlpSettings, Secret, Target
from .exposition import BridgeReader
from .otlp_wire import Unsupported, encode_metrics, encode_spans
from .probes import PROBES, Probe, ProbeSettings
from .push import PushReader
from .result import CheckResult
from .scheduler import Scheduler
from .server import make_app
from .state import StateStore
from .telemetry import Telemetry, cardinality_limits

__all__ = ["Collector"]

log = logging.getLogger("otel_health")

# Young-generation collections every 10,000 allocations instead of 700: fewer short-lived
# objects (a check's request and result) are caught alive and promoted to the old generation.
GC_THRESHOLDS = (10_000, 10, 10)
SETTLE_AFTER_MAX = 300.0  # seconds: freeze after the first round, or after this at the latest


class Collector:
    """One running collector. ``start()``, then ``stop()``; or ``serve_forever()``.

    ``source`` re-reads the configuration for a reload (``POST /-/reload``, SIGHUP, or a
    watched file changing); a config that fails to load is rejected whole and the running
    one stays.
    """

    def __init__(
        self,
        config: Config,
        *,
        source: Callable[[], Config] | None = None,
        metric_readers: Sequence[MetricReader] = (),
        span_processors: Sequence[SpanProcessor] = (),
        probes: Mapping[str, type[Probe]] = PROBES,
        otlp: bool = True,
    ) -> None:
        self.config = config
        self._source = source
        limits = cardinality_limits(len(config.targets))
        self.bridge = BridgeReader(cardinality_limits=limits)
        readers: list[MetricReader] = [self.bridge, *metric_readers]
        processors = list(span_processors)
        if otlp:
            otlp_readers, otlp_processors = _otlp_exporters(config.otlp, limits, self._export_failed)
            readers += otlp_readers
            processors += otlp_processors
        self.store = StateStore()
        self.telemetry = Telemetry(metric_readers=readers, store=self.store, span_processors=processors)
        self.bridge.set_direct_source(self.telemetry)
        for reader in readers:
            if isinstance(reader, PushReader):
                reader.set_direct_source(self.telemetry, self.telemetry.resource, self.telemetry.scope)
        settings = ProbeSettings(max_body_bytes=config.max_body_bytes, user_agent=f"otel-health/{__version__}",
                                 tracer=self.telemetry.tracer_provider.get_tracer("otel_health.probes", __version__))
        self._probes = {kind: cls(settings) for kind, cls in probes.items()}
        self.scheduler: Scheduler | None = None
        self._runner: web.AppRunner | None = None
        self._reload_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self.port: int | None = None

    def _export_failed(self, signal_name: str) -> None:
        self.telemetry.export_failed(signal_name)

    async def start(self) -> None:
        self.scheduler = Scheduler(
            self._check_one, concurrency=self.config.concurrency,
            on_lag=self.telemetry.scheduler_lag,
        )
        self.telemetry.set_in_flight_source(lambda: self.scheduler.in_flight if self.scheduler else 0)
        self.telemetry.set_skipped_source(lambda key: self.scheduler.skipped(key) if self.scheduler else 0)
        self.telemetry.set_targets(self.config.targets)
        self.telemetry.config_loaded(True)
        app = make_app(reader=self.bridge, store=self.store, reload=self.reload, api_token=self._api_token)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.listen_host, self.config.listen_port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1] if self._runner.addresses else self.config.listen_port
        self.scheduler.set_targets(self.config.targets)
        # Thousands of long-lived target objects need not be walked by every full GC pass:
        # move what start-up built out of the collector's way (fewer, shorter pauses), and
        # again once the first round of checks has built each target's series.
        gc.set_threshold(*GC_THRESHOLDS)
        gc.freeze()
        self._settle_later()
        log.info("started listen=%s:%s targets=%d", self.config.listen_host, self.port, len(self.config.targets))

    def _settle_later(self) -> None:
        """Freeze the long-lived objects (per-series SDK storage, target state) once every
        target has been checked, so full GC passes walk only what churns: at 10,000 targets
        they took 0.1-0.3 s every few seconds, each a scheduler stall."""
        if not self.config.targets:
            return
        delay = min(max(t.interval + t.timeout for t in self.config.targets), SETTLE_AFTER_MAX) + 1.0

        async def settle() -> None:
            await asyncio.sleep(delay)
            gc.collect()
            gc.freeze()

        task = asyncio.get_running_loop().create_task(settle())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _api_token(self) -> str | None:
        return self.config.api_token.reveal() if self.config.api_token is not None else None

    def apply(self, config: Config) -> None:
        """Switch to a new config's targets: unchanged targets keep their schedule and results."""
        if (config.listen_host, config.listen_port) != (self.config.listen_host, self.config.listen_port):
            log.warning("reload_listen_unchanged msg=%s", _quote("a new listen address takes effect on restart"))
        self.config = config
        self.telemetry.set_targets(config.targets)
        if self.scheduler is not None:
            self.scheduler.set_targets(config.targets)
        live = {t.key for t in config.targets}
        for probe in self._probes.values():
            task = asyncio.get_running_loop().create_task(probe.retain(live))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self._settle_later()

    async def reload(self) -> list[str]:
        """Re-read the configuration; return its problems (empty when it was applied)."""
        async with self._reload_lock:
            if self._source is None:
                problems = ["no configuration file to reload: the collector runs on its built-in default"]
            else:
                try:
                    config = await asyncio.to_thread(self._source)
                except ConfigError as exc:
                    problems = exc.problems
                else:
                    self.apply(config)
                    self.telemetry.config_loaded(True)
                    log.info("reloaded targets=%d", len(config.targets))
                    return []
            self.telemetry.config_loaded(False)
            for line in problems:
                log.error("reload_rejected problem=%s", _quote(line))
            return problems

    def snapshot(self) -> list[tuple[Target, CheckResult | None]]:
        return [(c.target, c.result) for c in self.store.snapshot()]

    async def _check_one(self, target: Target) -> None:
        probe = self._probes[target.kind]
        with self.telemetry.check_span(target) as span:
            result = await probe.run(target)
            changed = self.telemetry.record(target, result, span)
        state = self.store.get(target.key)
        if state is None or state.target is not target:
            return
        if len(state.history) == 1 or changed:
            if result.up:
                log.info("target_up service=%s environment=%s duration_s=%.3f", target.name, target.environment,
                         result.duration)
            else:
                log.warning("target_down service=%s environment=%s error_type=%s detail=%s", target.name,
                            target.environment, result.error_type, _quote(result.detail))

    async def stop(self, grace: float | None = None) -> None:
        """Let running checks end (bounded by the longest timeout), flush telemetry, close."""
        if grace is None:
            grace = max((t.timeout for t in self.config.targets), default=1.0) + 0.5
        if self.scheduler is not None:
            await self.scheduler.stop(grace)
        for task in list(self._background):
            task.cancel()
        for probe in self._probes.values():
            await probe.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await asyncio.to_thread(self.telemetry.shutdown, 5.0)
        log.info("stopped")

    async def serve_forever(self, *, watch_interval: float | None = None) -> None:
        """Run until SIGTERM or SIGINT; SIGHUP reloads; optionally watch the config files."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        await self.start()
        watcher = loop.create_task(self._watch(watch_interval)) if watch_interval else None
        try:
            await stop.wait()
        finally:
            if watcher is not None:
                watcher.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self.stop()

    async def _watch(self, interval: float) -> None:
        def stamp() -> tuple[tuple[str, float], ...]:
            out = []
            for name in self.config.files:
                try:
                    out.append((name, os.stat(name).st_mtime))
                except OSError:
                    out.append((name, -1.0))
            return tuple(out)

        seen = stamp()
        while True:
            await asyncio.sleep(interval)
            now = stamp()
            if now != seen:
                await self.reload()
                seen = stamp()


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _send_encoded(exporter: Any, encode: Callable[[Any], bytes], data: Any) -> bool | None:
    """Send ``encode(data)`` (``otlp_wire``) with the HTTP exporter's own client: its retries,
    compression, headers and TLS from the OTEL_EXPORTER_OTLP_* settings. True when it was
    accepted; None when the exporter's own path must do it (shut down, a client it does not
    have, data the wire encoder does not write)."""
    client = getattr(exporter, "_client", None)
    if client is None or getattr(exporter, "_shutdown", False):
        return None
    try:
        payload = encode(data)
    except Unsupported:
        return None
    except Exception:
        log.exception("OTLP encoding failed; using the SDK's encoder")
        return None
    return bool(client.export(payload).success)


def _otlp_exporters(settings: OtlpSettings, limits: dict[type, int], on_failure: Any
                    ) -> tuple[list[MetricReader], list[SpanProcessor]]:
    """OTLP exporters when the config or the standard OTEL_* variables ask for them."""
    env = os.environ
    endpoint = settings.endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    traces_on = bool(endpoint or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    metrics_on = bool(endpoint or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))
    if env.get("OTEL_TRACES_EXPORTER", "").strip() == "none":
        traces_on = False
    if env.get("OTEL_METRICS_EXPORTER", "").strip() == "none":
        metrics_on = False
    if not (traces_on or metrics_on):
        return [], []
    protocol = settings.protocol or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    headers = {k: (v.reveal() if isinstance(v, Secret) else v) for k, v in settings.headers} or None
    kwargs: dict[str, Any] = {"headers": headers} if headers else {}
    span_kw: dict[str, Any]
    metric_kw: dict[str, Any]
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        base = settings.endpoint
        span_kw = {"endpoint": base} if base else {}
        metric_kw = {"endpoint": base} if base else {}
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[assignment]
            OTLPMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
            OTLPSpanExporter,
        )
        base = settings.endpoint.rstrip("/") if settings.endpoint else None
        span_kw = {"endpoint": f"{base}/v1/traces"} if base else {}
        metric_kw = {"endpoint": f"{base}/v1/metrics"} if base else {}

    class CountingSpanExporter(OTLPSpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            sent = _send_encoded(self, encode_spans, spans) if protocol != "grpc" else None
            if sent is None:
                result = super().export(spans)
            else:
                result = SpanExportResult.SUCCESS if sent else SpanExportResult.FAILURE
            if result is not SpanExportResult.SUCCESS:
                on_failure("traces")
            return result

        def _translate_data(self, data: Any) -> Any:
            # gRPC: the message, parsed (in C) from our bytes, costs less than built in Python.
            return ExportTraceServiceRequest.FromString(encode_spans(data))

    class CountingMetricExporter(OTLPMetricExporter):
        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kw: Any) -> MetricExportResult:
            with fine_switching():  # encoding thousands of series takes a while beside the loop
                sent = None
                if protocol != "grpc" and getattr(self, "_max_export_batch_size", None) is None:
                    sent = _send_encoded(self, encode_metrics, metrics_data)
                if sent is None:
                    result = super().export(metrics_data, timeout_millis=timeout_millis, **kw)
                else:
                    result = MetricExportResult.SUCCESS if sent else MetricExportResult.FAILURE
            if result is not MetricExportResult.SUCCESS:
                on_failure("metrics")
            return result

        def _translate_data(self, data: Any) -> Any:
            try:
                return ExportMetricsServiceRequest.FromString(encode_metrics(data))
            except Unsupported:
                return super()._translate_data(data)

    readers: list[MetricReader] = []
    processors: list[SpanProcessor] = []
    if metrics_on:
        interval = settings.export_interval
        readers.append(PushReader(CountingMetricExporter(**metric_kw, **kwargs), interval_s=interval,
                                  cardinality_limits=limits))
    if traces_on:
        # Bounded queue: when the Collector is away, spans are dropped, never piled up.
        processors.append(BatchSpanProcessor(CountingSpanExporter(**span_kw, **kwargs), max_queue_size=4096))
    return readers, processors
