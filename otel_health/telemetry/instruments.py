"""The check contract: what a check's result becomes in OpenTelemetry.

A check becomes telemetry in two calls: :meth:`Telemetry.check_span` opens the root span
(``health_check {service}``), and :meth:`Telemetry.record` puts the
:class:`~otel_health.result.CheckResult` on the meters (``tta_service_*``) and on that span.
The per-target state gauges are observable instruments over :class:`~.families.StateFamilies`,
created here with the rest. This module names the check's instruments and the root span's
attributes; the per-target state families are named in :mod:`.families`, the collector's own
series in :mod:`.own`, a probe names the attributes of its own child spans (semantic
conventions), and the bridge knows only the Prometheus naming rules.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import (
    MeterProvider,
)
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .. import __version__
from ..clock import WALL, Clock
from ..config import Target
from ..discovery import SourceStatus
from ..logs import event
from ..result import CheckResult
from ..sharding import Shard
from ..suppression import Suppressed
from .collect import forget
from .exemplars import latest_per_bucket
from .families import StateFamilies
from .own import ExportFailures, OwnSeries
from .resource import METER_NAME, make_resource
from .traces import CheckTracerProvider, KeepPolicy, LightSpan

__all__ = ["CHECK_DURATION_BUCKETS", "LAG_BUCKETS", "SHUTDOWN_TIMEOUT", "Telemetry"]

log = logging.getLogger("otel_health")

# Seconds, 1 ms to 30 s: where health checks live (the SDK's defaults are for milliseconds).
CHECK_DURATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
LAG_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 5.0)
SHUTDOWN_TIMEOUT = 3.0  # seconds the last export at shutdown may take


class Telemetry:
    """The meters and tracer of one collector, over readers and span processors made first.

    ``families`` are the per-target state families (observable instruments here);
    ``in_flight`` and ``export_failures`` are read when a reader collects; ``pushers`` export
    what a reader holds (stopped here, before the readers). A check's trace
    goes to ``span_processors`` when it failed, was slow, or ``keep`` picks its trace id
    (:mod:`.traces`); the others are never built.
    """

    def __init__(
        self,
        *,
        families: StateFamilies,
        metric_readers: Sequence[MetricReader],
        span_processors: Sequence[SpanProcessor] = (),
        resource: Resource | None = None,
        in_flight: Callable[[], int] = lambda: 0,
        export_failures: ExportFailures | None = None,
        clock: Clock = WALL,
        keep: KeepPolicy | None = None,
        pushers: Sequence[MetricReader] = (),
    ) -> None:
        self.resource = resource or make_resource()
        # Reservoirs that cost nothing while empty (.exemplars): most series never get an exemplar.
        views = [
            View(instrument_name="tta_service_check_duration_seconds",
                 aggregation=ExplicitBucketHistogramAggregation(CHECK_DURATION_BUCKETS),
                 exemplar_reservoir_factory=latest_per_bucket),
            View(instrument_name="tta_service_checks", exemplar_reservoir_factory=latest_per_bucket),
            View(instrument_name="otel_health_scheduler_lag_seconds",
                 aggregation=ExplicitBucketHistogramAggregation(LAG_BUCKETS),
                 exemplar_reservoir_factory=latest_per_bucket),
        ]
        # Shut down by shutdown() alone, within its bound: no exit handler of the SDK's may wait on
        # an export after that.
        self._readers = list(metric_readers)
        self.meter_provider = MeterProvider(metric_readers=self._readers, resource=self.resource, views=views,
                                            shutdown_on_exit=False)
        # With nowhere to send spans, record none: checks still get trace ids and send
        # traceparent (unsampled), but pay nothing for spans nobody keeps.
        self.keep = keep or KeepPolicy()
        self.tracer_provider = CheckTracerProvider(self.resource, span_processors, keep=self._keeps)
        self.tracer = self.tracer_provider.get_tracer("otel_health", __version__)
        self._families = families
        self._pushers = list(pushers)  # exporters over a reader's data, not readers of their own
        # The collector's own series (otel_health_*): apart from the check contract.
        self.own = OwnSeries(readers=self._readers, targets_here=lambda: len(families), in_flight=in_flight,
                             export_failures=export_failures, clock=clock)
        # (service, environment, outcome, error type) -> (the target's attributes, the counter's)
        self._counter_attrs: dict[tuple[str, str, str, str], tuple[Mapping[str, str], dict[str, str]]] = {}
        self._live: dict[tuple[str, str], Mapping[str, str]] = {}  # the targets as the last retain() saw them
        self._make_instruments()

    def _make_instruments(self) -> None:
        m = self.meter_provider.get_meter(METER_NAME, __version__)
        # Names are the Prometheus names; units are chosen so no exporter appends a suffix.
        for family in self._families.families:
            create = m.create_observable_counter if family.counter else m.create_observable_gauge
            create(family.name, [self._families.callback(family)], unit=family.unit, description=family.description)
        self._duration = m.create_histogram("tta_service_check_duration_seconds", unit="s",
                                            description="Duration of every check of the service")
        self._checks = m.create_counter("tta_service_checks", unit="",
                                        description="Checks of the service by outcome and error type")
        self._slo_checks = m.create_counter("tta_service_slo_checks", unit="",
                                            description="Checks of a service with an SLO that count toward its error "
                                                        "budget, by outcome as its SLO counts them")
        self.own.make_instruments(m)

    def retain(self, live: Mapping[tuple[str, str], Mapping[str, str]]) -> None:
        """Forget what is held for targets no longer configured, or whose labels changed
        (after a reload): ``live`` maps each target's key to its attributes now. The SDK's
        own series of those targets go too (:func:`.collect.forget`), so churn does not
        pile up series until restart."""
        self._counter_attrs = {k: v for k, v in self._counter_attrs.items() if live.get((k[0], k[1])) == v[0]}
        # Every series of a target removed or relabelled is from before: nothing was recorded
        # under its new labels yet.
        gone = {key for key, attrs in self._live.items() if live.get(key) != attrs}
        self._live = dict(live)
        if not gone:
            return  # targets added or unchanged: nothing of the SDK's to forget (the common reload)

        def current(attributes: Mapping[str, Any]) -> bool:
            return (attributes.get("service"), attributes.get("environment")) not in gone

        for reader in self._readers:
            forget(reader, current)

    # What the collector tells its own series (see .own).

    def sharded(self, shard: Shard | None, configured: int) -> None:
        self.own.sharded(shard, configured)

    def discovered(self, status: Mapping[str, SourceStatus]) -> None:
        self.own.discovered(status)

    def discovery_failed(self, source: str, reads: int = 1) -> None:
        self.own.discovery_failed(source, reads)

    def config_loaded(self, ok: bool) -> None:
        self.own.config_loaded(ok)

    def scheduler_lag(self, seconds: float) -> None:
        self.own.scheduler_lag(seconds)

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

    def record(self, attrs: Mapping[str, str], result: CheckResult, span: Span | None = None,
               suppressed: Suppressed | None = None, budget: bool | None = None) -> None:
        """Put one result on the meters and on its root span.

        ``attrs`` are the target's attributes as the state store holds them: the same
        mapping check after check, so the SDK and the encoders find their cached series.
        ``budget``: for a check its SLO counts, whether it spends the error budget.
        """
        error = str(result.error_type) if result.error_type is not None else ""
        ckey = (attrs["service"], attrs["environment"], result.outcome, error)
        held = self._counter_attrs.get(ckey)
        if held is None or held[0] is not attrs:  # new, or the target's labels changed
            held = self._counter_attrs[ckey] = (attrs, {**attrs, "outcome": result.outcome, "error_type": error})
        # Exemplars only on checks whose traces are always kept: failed or slow (never from the
        # current context: that is the check's root span, whose trace is most often dropped).
        exemplar_ctx = _NO_SPAN
        if span is not None and (not result.up or result.slow):
            exemplar_ctx = trace.set_span_in_context(span)
        self._checks.add(1, held[1], context=exemplar_ctx)
        self._duration.record(result.duration, attrs, context=exemplar_ctx)
        if budget is not None:  # a check its SLO counts: True when it spends the budget
            outcome = "down" if budget else "up"
            skey = (attrs["service"], attrs["environment"], outcome, "slo")
            slo_held = self._counter_attrs.get(skey)
            if slo_held is None or slo_held[0] is not attrs:
                slo_held = self._counter_attrs[skey] = (attrs, {**attrs, "outcome": outcome})
            self._slo_checks.add(1, slo_held[1])
        if span is not None:
            self._annotate(span, result)
            span.set_attribute("tta.check.suppressed", suppressed is not None)
            if suppressed is not None:
                span.set_attribute("tta.check.suppressed_by", suppressed.sources())

    def _keeps(self, root: LightSpan) -> bool:
        """Whether a trace is kept, decided when its root ends, on the root's outcome, slowness
        and trace id. A kept root is marked ``tta.check.kept``: the one thing the Collector's
        tail sampling keeps by (otel-collector.yaml), so the two cannot disagree."""
        attributes = root.attributes
        kept = (attributes.get("tta.check.outcome") == "down" or attributes.get("tta.check.slow") is True
                or self.keep.keeps(root.context.trace_id))
        if kept:
            attributes["tta.check.kept"] = True
        return kept

    def kept_trace_id(self, span: Span | None, result: CheckResult) -> str | None:
        """The check's trace id in hex when its trace will be kept, else None."""
        if not isinstance(span, LightSpan):
            return None  # nothing recorded
        trace_id = span.context.trace_id
        if not result.up or result.slow or self.keep.keeps(trace_id):
            return format(trace_id, "032x")
        return None

    def _annotate(self, span: Span, result: CheckResult) -> None:
        span.set_attribute("tta.check.outcome", result.outcome)
        span.set_attribute("tta.check.slow", result.slow)
        span.set_attribute("tta.check.attempts", result.attempts)
        if result.status_code is not None:
            span.set_attribute("http.response.status_code", result.status_code)
        if result.version:
            span.set_attribute("tta.service.version", result.version)
        for key, value in result.info.items():  # what the target says of itself: role, mode, edition…
            span.set_attribute(f"tta.service.{key}", value)
        if result.up:
            return
        error = str(result.error_type)
        span.set_attribute("error.type", error)
        span.set_status(Status(StatusCode.ERROR, result.detail))
        # The detail is already scrubbed of the target's secrets; no stack trace is sent.
        span.add_event("exception", {"exception.type": error, "exception.message": result.detail})

    def shutdown(self, timeout_s: float = SHUTDOWN_TIMEOUT) -> bool:
        """One last export of what is queued and of every series, then stop: at most
        ``timeout_s``. A Collector that is gone, or hangs, costs that bound and no more (an
        exporter would retry with backoff, chunk after chunk): what is not sent by then is
        dropped, counted and logged. True when everything went out."""
        done = threading.Event()

        def last_export() -> None:
            try:
                self.tracer_provider.shutdown()  # the batch processor sends what it holds, once
                for pusher in self._pushers:  # one final export, while the readers they read still run
                    pusher.shutdown(timeout_millis=timeout_s * 1000)
                self.meter_provider.shutdown(timeout_millis=timeout_s * 1000)  # readers: one final export
            finally:
                done.set()

        threading.Thread(target=last_export, name="otel-health-last-export", daemon=True).start()
        if done.wait(timeout_s):
            return True
        for signal in ExportFailures.SIGNALS:
            self.own.export_failures.add(signal)
        event(log, logging.WARNING, "telemetry_not_flushed", timeout_s=timeout_s,
              reason="the last export did not finish in time; what it held is dropped")
        return False


_EMPTY: dict[str, str] = {}
# A context whose span is invalid: "no exemplar here". (An empty Context would not do: the
# SDK falls back to the current context when given an empty one.)
_NO_SPAN = trace.set_span_in_context(trace.INVALID_SPAN, otel_context.Context())
