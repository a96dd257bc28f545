"""The only module that knows instrument names and span attribute keys.

A check becomes telemetry in two calls: :meth:`Telemetry.check_span` opens the root span
(``health_check {service}``), and :meth:`Telemetry.record` puts the
:class:`~otel_health.result.CheckResult` on the meters and on that span. State gauges are
observable, read from the current results, so a removed target's series disappear.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider, sampling
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from . import __version__
from .config import Target
from .result import CheckResult
from .state import StateStore, TargetState

__all__ = [
    "CHECK_DURATION_BUCKETS",
    "LAG_BUCKETS",
    "Telemetry",
    "cardinality_limits",
    "make_resource",
]

log = logging.getLogger("otel_health")

# Seconds, 1 ms to 30 s: where health checks live (the SDK's defaults are for milliseconds).
CHECK_DURATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
LAG_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
METER_NAME = "otel_health"


def cardinality_limits(targets: int = 10_000) -> dict[type, int]:
    """Per-reader limits roomy enough that no target's series fold into the overflow series."""
    limit = max(200_000, targets * 20)
    return {cls: limit for cls in (Counter, UpDownCounter, Histogram, ObservableCounter,
                                   ObservableUpDownCounter, ObservableGauge)}


def make_resource() -> Resource:
    """The SDK's resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES honoured) plus our identity.

    ``service.instance.id`` is a fresh UUID unless given, so two replicas never write the
    same series on the Collector path (it becomes their ``instance`` label).
    """
    from_env = Resource.create()
    ours: dict[str, Any] = {"service.name": "otel-health", "service.version": __version__,
                            "service.instance.id": str(uuid.uuid4())}
    explicit = {k for k in ("service.name",) if os.environ.get("OTEL_SERVICE_NAME")}
    explicit |= {pair.split("=", 1)[0].strip() for pair in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")
                 if "=" in pair}
    return from_env.merge(Resource({k: v for k, v in ours.items() if k not in explicit}))


class Telemetry:
    def __init__(
        self,
        *,
        metric_readers: Sequence[MetricReader],
        store: StateStore | None = None,
        span_processors: Sequence[SpanProcessor] = (),
        resource: Resource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.resource = resource or make_resource()
        views = [
            View(instrument_name="tta_service_check_duration_seconds",
                 aggregation=ExplicitBucketHistogramAggregation(CHECK_DURATION_BUCKETS)),
            View(instrument_name="otel_health_scheduler_lag_seconds",
                 aggregation=ExplicitBucketHistogramAggregation(LAG_BUCKETS)),
        ]
        self.meter_provider = MeterProvider(metric_readers=list(metric_readers), resource=self.resource, views=views)
        # With nowhere to send spans, record none: checks still get trace ids and send
        # traceparent (unsampled), but pay nothing for spans nobody keeps.
        sampler = None if span_processors else sampling.ALWAYS_OFF
        self.tracer_provider = TracerProvider(resource=self.resource, sampler=sampler)
        for processor in span_processors:
            self.tracer_provider.add_span_processor(processor)
        self.tracer = self.tracer_provider.get_tracer("otel_health", __version__)
        self._clock = clock
        self.store = store if store is not None else StateStore()
        self._counter_attrs: dict[tuple[str, str, str, str], dict[str, str]] = {}
        self._in_flight: Callable[[], int] = lambda: 0
        self._skipped_source: Callable[[tuple[str, str]], int] = lambda _: 0
        self._reload_ok = 1
        self._reload_time = clock()
        self._export_failures: dict[str, int] = {}
        self._make_instruments()

    # -- instruments ------------------------------------------------------------------
    def _make_instruments(self) -> None:
        m = self.meter_provider.get_meter(METER_NAME, __version__)
        # Names are the Prometheus names; units are chosen so no exporter appends a suffix.
        m.create_observable_gauge("tta_service_up", [self._observe_up],
                                  description="1 if the last check of the service passed, else 0")
        m.create_observable_gauge("tta_service_state_up", [self._observe_state_up],
                                  description="Debounced state: 0 after N consecutive failures, 1 after M successes")
        m.create_observable_gauge("tta_service_tls_cert_expiry_timestamp_seconds", [self._observe_tls_expiry],
                                  unit="s", description="Unix time the service's TLS certificate expires")
        m.create_observable_gauge("tta_service_response_time_seconds", [self._observe_response_time], unit="s",
                                  description="Duration of the last check of the service")
        m.create_observable_gauge("tta_service_last_check_timestamp_seconds", [self._observe_last_check],
                                  unit="s", description="Unix time the last check of the service ended")
        m.create_observable_gauge("tta_service_slow_threshold_seconds", [self._observe_slow_threshold], unit="s",
                                  description="Configured duration above which a check counts as slow")
        m.create_observable_gauge("tta_service_check_interval_seconds", [self._observe_interval], unit="s",
                                  description="Configured interval between checks of the service")
        m.create_observable_gauge("tta_service_info", [self._observe_info],
                                  description="What the service reports about itself, as labels; always 1")
        m.create_observable_gauge("tta_service_phase_duration_seconds", [self._observe_phases], unit="s",
                                  description="Duration of each step of the last check, by phase")
        self._duration = m.create_histogram("tta_service_check_duration_seconds", unit="s",
                                            description="Duration of every check of the service")
        self._checks = m.create_counter("tta_service_checks", unit="",
                                        description="Checks of the service by outcome and error type")
        self._lag = m.create_histogram("otel_health_scheduler_lag_seconds", unit="s",
                                       description="Delay from a check's due time to its start")
        m.create_observable_counter("otel_health_checks_skipped", [self._observe_skipped], unit="",
                                    description="Checks not started because the previous one still ran")
        m.create_observable_gauge("otel_health_checks_in_flight", [self._observe_in_flight],
                                  description="Checks running now")
        m.create_observable_gauge("otel_health_targets", [self._observe_targets],
                                  description="Targets loaded from the configuration")
        m.create_observable_gauge("otel_health_config_last_reload_successful", [self._observe_reload_ok],
                                  description="1 if the last configuration load succeeded, else 0")
        m.create_observable_gauge("otel_health_config_last_reload_success_timestamp_seconds",
                                  [self._observe_reload_time], unit="s",
                                  description="Unix time of the last successful configuration load")
        m.create_observable_counter("otel_health_export_failures", [self._observe_export_failures], unit="",
                                    description="Telemetry export batches that failed, by signal")

    # -- targets ----------------------------------------------------------------------
    def set_targets(self, targets: Iterable[Target]) -> None:
        """Replace the live targets (in the store); series of removed ones disappear."""
        self.store.set_targets(targets)
        self._counter_attrs = {k: v for k, v in self._counter_attrs.items() if self.store.live(k[0], k[1])}

    def live(self, service: str, environment: str) -> bool:
        return self.store.live(service, environment)

    def set_in_flight_source(self, source: Callable[[], int]) -> None:
        self._in_flight = source

    def config_loaded(self, ok: bool) -> None:
        self._reload_ok = 1 if ok else 0
        if ok:
            self._reload_time = self._clock()

    def export_failed(self, signal: str, count: int = 1) -> None:
        self._export_failures[signal] = self._export_failures.get(signal, 0) + count

    # -- one check --------------------------------------------------------------------
    @contextlib.contextmanager
    def check_span(self, target: Target) -> Iterator[Span]:
        """The root span of one check, current for the probe's child spans."""
        span = self.tracer.start_span(
            f"health_check {target.name}",
            kind=SpanKind.INTERNAL,
            context=otel_context.Context(),  # every check is a trace of its own
            attributes={
                "tta.service.name": target.name,
                "tta.service.environment": target.environment,
                "tta.check.kind": target.kind,
            },
            record_exception=False,
            set_status_on_exception=False,
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield span
        finally:
            otel_context.detach(token)
            span.end()

    def record(self, target: Target, result: CheckResult, span: Span | None = None) -> bool:
        """Record one result: state, meters, span. Returns True if the debounced state changed."""
        entry = self.store.get(target.key)
        if entry is None or (entry.target is not target and entry.target != target):
            return False  # removed or replaced by a reload while it ran
        trace_id = None
        if span is not None:
            ctx = span.get_span_context()
            trace_id = format(ctx.trace_id, "032x") if ctx.is_valid and ctx.trace_flags.sampled else None
        changed = entry.update(result, trace_id)
        attrs = entry.attrs
        error = str(result.error_type) if result.error_type is not None else ""
        ckey = (target.name, target.environment, result.outcome, error)
        cattrs = self._counter_attrs.get(ckey)
        if cattrs is None:
            cattrs = self._counter_attrs[ckey] = {**attrs, "outcome": result.outcome, "error_type": error}
        self._checks.add(1, cattrs)
        # Exemplars only on checks whose traces sampling keeps: failed or slow.
        exemplar_ctx = None
        if span is not None and (not result.up or result.slow):
            exemplar_ctx = trace.set_span_in_context(span)
        self._duration.record(result.duration, attrs, context=exemplar_ctx or _NO_SPAN)
        if span is not None:
            self._annotate(span, result)
        return changed

    def _annotate(self, span: Span, result: CheckResult) -> None:
        span.set_attribute("tta.check.outcome", result.outcome)
        span.set_attribute("tta.check.slow", result.slow)
        span.set_attribute("tta.check.attempts", result.attempts)
        if result.status_code is not None:
            span.set_attribute("http.response.status_code", result.status_code)
        if result.version:
            span.set_attribute("tta.service.version", result.version)
        if result.up:
            return
        error = str(result.error_type)
        span.set_attribute("error.type", error)
        span.set_status(Status(StatusCode.ERROR, result.detail))
        # The detail is already scrubbed of the target's secrets; no stack trace is sent.
        span.add_event("exception", {"exception.type": error, "exception.message": result.detail})

    def scheduler_lag(self, seconds: float) -> None:
        self._lag.record(seconds, _EMPTY, context=_NO_SPAN)

    def set_skipped_source(self, source: Callable[[tuple[str, str]], int]) -> None:
        self._skipped_source = source

    # -- observable callbacks (may run on a scrape thread: iterate over snapshots) --------
    def _results(self) -> list[tuple[dict[str, str], CheckResult, TargetState]]:
        return [(c.attrs, c.result, c) for c in self.store.snapshot() if c.result is not None]

    def _observe_up(self, _: CallbackOptions) -> Iterator[Observation]:
        for attrs, result, _t in self._results():
            yield Observation(1 if result.up else 0, attrs)

    def _observe_response_time(self, _: CallbackOptions) -> Iterator[Observation]:
        for attrs, result, _t in self._results():
            yield Observation(result.duration, attrs)

    def _observe_last_check(self, _: CallbackOptions) -> Iterator[Observation]:
        for attrs, result, _t in self._results():
            yield Observation(result.started_at + result.duration, attrs)

    def _observe_slow_threshold(self, _: CallbackOptions) -> Iterator[Observation]:
        for c in self.store.snapshot():
            yield Observation(c.target.slow_threshold, c.attrs)

    def _observe_interval(self, _: CallbackOptions) -> Iterator[Observation]:
        for c in self.store.snapshot():
            yield Observation(c.target.interval, c.attrs)

    def _observe_state_up(self, _: CallbackOptions) -> Iterator[Observation]:
        for c in self.store.snapshot():
            if c.debounced_up is not None:
                yield Observation(1 if c.debounced_up else 0, c.attrs)

    def _observe_tls_expiry(self, _: CallbackOptions) -> Iterator[Observation]:
        for c in self.store.snapshot():
            if c.tls_expiry is not None:
                yield Observation(c.tls_expiry, c.attrs)

    def _observe_info(self, _: CallbackOptions) -> Iterator[Observation]:
        for attrs, result, _t in self._results():
            labels = {**attrs, "version": result.version or ""}
            if result.status_code is not None:
                labels["status_code"] = str(result.status_code)
            for key, value in result.info.items():
                labels.setdefault(key, value)
            yield Observation(1, labels)

    def _observe_phases(self, _: CallbackOptions) -> Iterator[Observation]:
        for attrs, result, _t in self._results():
            for phase, seconds in result.phases.items():
                yield Observation(seconds, {**attrs, "phase": phase})

    def _observe_skipped(self, _: CallbackOptions) -> Iterator[Observation]:
        for c in self.store.snapshot():
            t = c.target
            yield Observation(self._skipped_source(t.key),
                              {"service": t.name, "environment": t.environment, "kind": t.kind})

    def _observe_in_flight(self, _: CallbackOptions) -> Iterator[Observation]:
        yield Observation(self._in_flight())

    def _observe_targets(self, _: CallbackOptions) -> Iterator[Observation]:
        yield Observation(len(self.store))

    def _observe_reload_ok(self, _: CallbackOptions) -> Iterator[Observation]:
        yield Observation(self._reload_ok)

    def _observe_reload_time(self, _: CallbackOptions) -> Iterator[Observation]:
        yield Observation(self._reload_time)

    def _observe_export_failures(self, _: CallbackOptions) -> Iterator[Observation]:
        for signal in ("traces", "metrics"):
            yield Observation(self._export_failures.get(signal, 0), {"signal": signal})

    # -- lifecycle ----------------------------------------------------------------------
    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Flush spans and metrics, then stop the providers; bounded by ``timeout_s``."""
        millis = int(timeout_s * 1000)
        try:
            self.tracer_provider.force_flush(millis)
            self.meter_provider.force_flush(millis)
        finally:
            self.tracer_provider.shutdown()
            self.meter_provider.shutdown(timeout_millis=millis)


_EMPTY: dict[str, str] = {}
# A context whose span is invalid: "no exemplar here". (An empty Context would not do: the
# SDK falls back to the current context when given an empty one.)
_NO_SPAN = trace.set_span_in_context(trace.INVALID_SPAN, otel_context.Context())
