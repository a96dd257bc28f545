"""The only module that knows instrument names and span attribute keys.

A check becomes telemetry in two calls: :meth:`Telemetry.check_span` opens the root span
(``health_check {service}``), and :meth:`Telemetry.record` puts the
:class:`~otel_health.result.CheckResult` on the meters and on that span. State gauges are
observable, read from the current results, so a removed target's series disappear.
They are declared once, in :data:`STATE_FAMILIES`: the SDK's observable instruments report
them to OpenTelemetry readers, and :meth:`Telemetry.state_families` hands the same values to
the Prometheus bridge, which renders them without the SDK's per-series storage.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

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
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
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
LAG_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 5.0)
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


Labels = tuple[tuple[str, str], ...]
Points = Callable[[TargetState, Callable[[tuple[str, str]], int]], Iterable[tuple[Labels, float]]]


class StateFamily(NamedTuple):
    """A per-target series read from the state store: gauges, and the skipped-checks counter."""

    name: str
    description: str
    unit: str
    points: Points  # (state, skipped-count source) -> (extra labels, value) pairs
    counter: bool = False


def _up(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((), 1 if c.result.up else 0),) if c.result is not None else ()


def _state_up(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((), 1 if c.debounced_up else 0),) if c.debounced_up is not None else ()


def _tls_expiry(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((), c.tls_expiry),) if c.tls_expiry is not None else ()


def _response_time(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((), c.result.duration),) if c.result is not None else ()


def _last_check(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((), c.result.started_at + c.result.duration),) if c.result is not None else ()


def _slow_threshold(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((), c.target.slow_threshold),)


def _interval(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((), c.target.interval),)


def _info(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    result = c.result
    if result is None:
        return ()
    extra = {"version": result.version or ""}
    if result.status_code is not None:
        extra["status_code"] = str(result.status_code)
    for key, value in result.info.items():
        if key not in c.attrs:
            extra.setdefault(key, value)
    return ((tuple(extra.items()), 1),)


def _phases(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    if c.result is None:
        return ()
    return [((("phase", phase),), seconds) for phase, seconds in c.result.phases.items()]


def _skipped(c: TargetState, source: Callable[[tuple[str, str]], int]) -> Iterable[tuple[Labels, float]]:
    return (((), source(c.target.key)),)


STATE_FAMILIES: tuple[StateFamily, ...] = (
    StateFamily("tta_service_up", "1 if the last check of the service passed, else 0", "", _up),
    StateFamily("tta_service_state_up", "Debounced state: 0 after N consecutive failures, 1 after M successes", "",
                _state_up),
    StateFamily("tta_service_tls_cert_expiry_timestamp_seconds", "Unix time the service's TLS certificate expires",
                "s", _tls_expiry),
    StateFamily("tta_service_response_time_seconds", "Duration of the last check of the service", "s",
                _response_time),
    StateFamily("tta_service_last_check_timestamp_seconds", "Unix time the last check of the service ended", "s",
                _last_check),
    StateFamily("tta_service_slow_threshold_seconds", "Configured duration above which a check counts as slow", "s",
                _slow_threshold),
    StateFamily("tta_service_check_interval_seconds", "Configured interval between checks of the service", "s",
                _interval),
    StateFamily("tta_service_info", "What the service reports about itself, as labels; always 1", "", _info),
    StateFamily("tta_service_phase_duration_seconds", "Duration of each step of the last check, by phase", "s",
                _phases),
    StateFamily("otel_health_checks_skipped", "Checks not started because the previous one still ran", "",
                _skipped, counter=True),
)


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
        self.scope = InstrumentationScope(METER_NAME, __version__)  # the meter's scope
        self._clock = clock
        self.store = store if store is not None else StateStore()
        self._counter_attrs: dict[tuple[str, str, str, str], dict[str, str]] = {}
        self._in_flight: Callable[[], int] = lambda: 0
        self._skipped_source: Callable[[tuple[str, str]], int] = lambda _: 0
        self._bypass = threading.local()
        self._reload_ok = 1
        self._reload_time = clock()
        self._export_failures: dict[str, int] = {}
        self._make_instruments()

    # -- instruments ------------------------------------------------------------------
    def _make_instruments(self) -> None:
        m = self.meter_provider.get_meter(METER_NAME, __version__)
        # Names are the Prometheus names; units are chosen so no exporter appends a suffix.
        for family in STATE_FAMILIES:
            create = m.create_observable_counter if family.counter else m.create_observable_gauge
            create(family.name, [self._observer(family)], unit=family.unit, description=family.description)
        self._duration = m.create_histogram("tta_service_check_duration_seconds", unit="s",
                                            description="Duration of every check of the service")
        self._checks = m.create_counter("tta_service_checks", unit="",
                                        description="Checks of the service by outcome and error type")
        self._lag = m.create_histogram("otel_health_scheduler_lag_seconds", unit="s",
                                       description="Delay from a check's due time to its start")
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

    # -- per-target state: observable for OpenTelemetry readers, direct for the bridge ----
    def _observer(self, family: StateFamily) -> Callable[[CallbackOptions], Iterator[Observation]]:
        points = family.points

        def callback(_: CallbackOptions) -> Iterator[Observation]:
            if getattr(self._bypass, "active", False):
                return  # the bridge renders these itself (see state_families)
            for state in self.store.snapshot():
                for extra, value in points(state, self._skipped_source):
                    yield Observation(value, {**state.attrs, **dict(extra)} if extra else state.attrs)

        return callback

    @contextlib.contextmanager
    def bypass_state_callbacks(self) -> Iterator[None]:
        """While active on this thread, the per-target observable instruments yield nothing."""
        self._bypass.active = True
        try:
            yield
        finally:
            self._bypass.active = False

    def state_families(self) -> list[tuple[StateFamily, Iterator[tuple[dict[str, str], Labels, float]]]]:
        """The per-target families as lazy (attributes, extra labels, value) points over one
        snapshot: the values the observable instruments report, without the SDK's storage."""
        states = self.store.snapshot()
        return [(family, self._points(family, states)) for family in STATE_FAMILIES]

    def _points(self, family: StateFamily, states: list[TargetState]) -> Iterator[tuple[dict[str, str], Labels, float]]:
        points, skipped = family.points, self._skipped_source
        for state in states:
            for extra, value in points(state, skipped):
                yield state.attrs, extra, value

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
