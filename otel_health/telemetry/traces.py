"""Traces of checks, decided when the check ends: kept ones become SDK spans, the rest nothing.

The Collector's tail sampling keeps a check's trace when it failed, when it was slow, and
otherwise when its probabilistic policy picks the trace id. The same decision is taken here,
when the check's root span ends, so a trace the Collector would drop is never built, queued,
encoded or sent (docs/performance.md has what that saves):

- :class:`KeepPolicy` is the Collector's probabilistic policy (contrib ``tailsamplingprocessor``
  at v0.140): FNV-1a-64 over the salt and the trace id's 16 bytes, kept when at most
  ``floor((2**64 - 1) * percent / 100)`` as Go's ``big.Float`` (64-bit mantissa, nearest
  even) computes it. Integer arithmetic throughout; ``tests/testdata`` holds vectors made by
  the Collector's own code. With equal salts, the two shares combine as the smaller.
- :class:`CheckTracerProvider` hands out tracers whose spans are light records
  (:class:`LightSpan`): ids, times, attributes, events, status. The spans of one trace share
  a :class:`_Trace`; when its root ends, ``keep(root)`` decides. A kept trace's spans become
  the SDK's ``ReadableSpan`` and go to the span processors (the batch processor, the OTLP
  exporter); a dropped one is garbage. A span ending after its root's decision follows it.

Every span context is marked sampled, so the ``traceparent`` a check sends lets the services
it calls keep their spans (their own sampling, by parent). Without span processors nothing is
recorded at all (:class:`NonRecordingSpan`, ids still made for ``traceparent``).
"""

from __future__ import annotations

import contextlib
import random
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from fractions import Fraction

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import Attributes, AttributeValue

__all__ = ["DEFAULT_KEEP_SALT", "CheckTracer", "CheckTracerProvider", "KeepPolicy", "LightSpan", "collector_threshold",
           "fnv1a64"]

DEFAULT_KEEP_SALT = "default-hash-seed"  # the Collector's, when its policy names none
_MAX64 = (1 << 64) - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)
_UNSET = Status(StatusCode.UNSET)


def fnv1a64(data: bytes, state: int = _FNV_OFFSET) -> int:
    """FNV-1a, 64 bits (Go's ``hash/fnv.New64a``), continuing from ``state``."""
    for byte in data:
        state = ((state ^ byte) * _FNV_PRIME) & _MAX64
    return state


def collector_threshold(percent: float) -> int:
    """The Collector's ``calculateThreshold(percent / 100)``: ``(2**64 - 1) * ratio`` rounded to
    a 64-bit mantissa (nearest, ties to even), then truncated; exact, with no float product."""
    ratio = Fraction(percent / 100)  # the float64 Go divides to, exactly
    if ratio <= 0:
        return 0
    product = _MAX64 * ratio
    num, den = product.numerator, product.denominator
    exponent = num.bit_length() - den.bit_length()  # floor(log2(product)), or one more
    if product < Fraction(2) ** exponent:
        exponent -= 1
    shift = 63 - exponent  # the scale that leaves 64 bits before the point
    mantissa = round(product * Fraction(2) ** shift)  # Fraction rounds half to even
    return min(int(Fraction(mantissa) / Fraction(2) ** shift), _MAX64)


class KeepPolicy:
    """Which healthy checks' traces are kept: ``percent`` of trace ids, picked as the
    Collector's probabilistic policy with ``salt`` picks them."""

    __slots__ = ("_last", "_state", "percent", "salt", "threshold")

    def __init__(self, percent: float = 1.0, salt: str = DEFAULT_KEEP_SALT) -> None:
        self.percent = percent
        self.salt = salt or DEFAULT_KEEP_SALT
        self.threshold = collector_threshold(percent)
        self._state = fnv1a64(self.salt.encode("utf-8"))
        self._last = (-1, False)  # the root's end asks again about the trace just recorded

    def keeps(self, trace_id: int) -> bool:
        last_id, kept = self._last
        if trace_id == last_id:
            return kept
        kept = fnv1a64(trace_id.to_bytes(16, "big"), self._state) <= self.threshold
        self._last = (trace_id, kept)
        return kept


class _Trace:
    """The spans of one check's trace until its root decides, then the decision."""

    __slots__ = ("ended", "kept", "provider", "root")

    def __init__(self, provider: CheckTracerProvider) -> None:
        self.provider = provider
        self.root: LightSpan | None = None
        self.ended: list[LightSpan] | None = []
        self.kept: bool | None = None

    def span_ended(self, span: LightSpan) -> None:
        if self.kept is None:
            if span is not self.root:
                assert self.ended is not None
                self.ended.append(span)
                return
            self.kept = self.provider.keep(span)
            if self.kept:
                assert self.ended is not None
                self.provider.export([*self.ended, span])
            self.ended = self.root = None  # each span points back here: no cycle outlives the decision
        elif self.kept:
            self.provider.export([span])


class LightSpan(trace.Span):
    """A span as a record: what the SDK's span holds, without its locks, limits and processors
    until its trace is kept."""

    __slots__ = ("_trace", "attributes", "context", "end_time", "events", "kind", "links", "name", "parent", "scope",
                 "start_time", "status")

    def __init__(self, name: str, context: SpanContext, parent: SpanContext | None, kind: SpanKind,
                 attributes: Attributes, links: Sequence[Link], start_time: int, scope: InstrumentationScope,
                 record: _Trace) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes: dict[str, AttributeValue] = {k: v for k, v in attributes.items() if v is not None} \
            if attributes else {}
        self.links = tuple(links)
        self.start_time = start_time
        self.end_time: int | None = None
        self.events: list[Event] = []
        self.status = _UNSET
        self.scope = scope
        self._trace = record

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self.end_time is None and value is not None:
            self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(self, name: str, attributes: Attributes = None, timestamp: int | None = None) -> None:
        if self.end_time is None:
            self.events.append(Event(name, attributes, timestamp or time.time_ns()))

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self.end_time is not None or self.status.status_code is StatusCode.OK:
            return  # as the SDK: OK is final
        self.status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(self, exception: BaseException, attributes: Attributes = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        self.add_event("exception", {
            "exception.type": type(exception).__qualname__, "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped), **(attributes or {})}, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end_time or time.time_ns()
        self._trace.span_ended(self)

    def readable(self, resource: Resource) -> ReadableSpan:
        return ReadableSpan(name=self.name, context=self.context, parent=self.parent, resource=resource,
                            attributes=self.attributes, events=self.events, links=self.links, kind=self.kind,
                            status=self.status, start_time=self.start_time, end_time=self.end_time,
                            instrumentation_scope=self.scope)


class CheckTracer(trace.Tracer):
    def __init__(self, provider: CheckTracerProvider, scope: InstrumentationScope) -> None:
        self._provider = provider
        self._scope = scope

    def start_span(self, name: str, context: otel_context.Context | None = None, kind: SpanKind = SpanKind.INTERNAL,
                   attributes: Attributes = None, links: Sequence[Link] | None = None, start_time: int | None = None,
                   record_exception: bool = True, set_status_on_exception: bool = True) -> trace.Span:
        parent_span = trace.get_current_span(context)
        parent = parent_span.get_span_context()
        rand = random.getrandbits
        trace_id = parent.trace_id if parent.is_valid else rand(128) or 1
        span_id = rand(64) or 1
        if not self._provider.recording:
            return NonRecordingSpan(SpanContext(trace_id, span_id, False, _UNSAMPLED))
        record = parent_span._trace if isinstance(parent_span, LightSpan) else _Trace(self._provider)
        span = LightSpan(name, SpanContext(trace_id, span_id, False, _SAMPLED), parent if parent.is_valid else None,
                         kind, attributes, links or (), start_time or time.time_ns(), self._scope, record)
        if record.root is None and record.kept is None:
            record.root = span
        return span

    @contextlib.contextmanager  # (the API's own decorator is private)
    def start_as_current_span(  # type: ignore[override]
        self, name: str, context: otel_context.Context | None = None, kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None, links: Sequence[Link] | None = None, start_time: int | None = None,
        record_exception: bool = True, set_status_on_exception: bool = True, end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time, record_exception,
                               set_status_on_exception)
        with trace.use_span(span, end_on_exit=end_on_exit, record_exception=record_exception,
                            set_status_on_exception=set_status_on_exception) as current:
            yield current


class CheckTracerProvider(trace.TracerProvider):
    """Tracers of light spans; ``keep(root)`` decides each trace when its root ends, and the
    kept spans go to ``processors`` (none: nothing is recorded)."""

    def __init__(self, resource: Resource, processors: Sequence[SpanProcessor] = (),
                 keep: Callable[[LightSpan], bool] = lambda _: True) -> None:
        self.resource = resource
        self.processors = list(processors)
        self.recording = bool(self.processors)
        self.keep = keep

    def get_tracer(self, instrumenting_module_name: str, instrumenting_library_version: str | None = None,
                   schema_url: str | None = None, attributes: Attributes = None) -> CheckTracer:
        return CheckTracer(self, InstrumentationScope(instrumenting_module_name, instrumenting_library_version,
                                                      schema_url))

    def export(self, spans: list[LightSpan]) -> None:
        for span in spans:
            readable = span.readable(self.resource)
            for processor in self.processors:
                processor.on_end(readable)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self.processors)

    def shutdown(self) -> None:
        for processor in self.processors:
            processor.shutdown()
