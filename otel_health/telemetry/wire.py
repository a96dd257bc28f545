"""Spans and metrics to the bytes of OTLP export requests, written directly.

No protobuf object is built for a span, data point, attribute or value: the wire format is
written as it is read, length-prefixed fields, with what repeats (resource, scope, each
target's attribute pairs, each series' attribute set) encoded once and reused (docs/performance.md's
performance section has the cost against the SDK's encoders). The messages are the ones the
SDK's ``encode_spans`` and ``encode_metrics`` make (``tests/unit/telemetry/test_wire.py``
parses both and compares).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import Gauge, Histogram, Sum
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from .. import logs
from .families import Merged

__all__ = ["Unsupported", "encode_metrics", "encode_spans", "forget_unused"]

_log = logging.getLogger(__name__)

_KIND = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4, SpanKind.CONSUMER: 5}
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_CACHE_LIMIT = 8192  # pairs; past it the cache starts over (10,000 targets would not fit anyway)
_DOUBLE = struct.Struct("<d")
_FIXED64 = struct.Struct("<Q")
_FIXED32 = struct.Struct("<I")
_SFIXED64 = struct.Struct("<q")

# Encoded KeyValue pairs whose value repeats (strings, bools, ints): target names, URLs,
# status codes. Durations and other floats are encoded each time.
_pairs: dict[tuple[int, str, type, Any], bytes] = {}
# Resource and scope prefixes, by identity (the SDK hands the same objects to every span).
_headers: dict[int, tuple[Any, bytes]] = {}


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: ``tag`` is the already-shifted key byte."""
    n = len(payload)
    return bytes((tag, n)) + payload if n < 0x80 else bytes((tag,)) + _varint(n) + payload


def _any_value(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(0x0A, value.encode("utf-8"))
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    if isinstance(value, bytes):
        return _field(0x3A, value)
    if isinstance(value, Sequence):
        return _field(0x2A, b"".join(_field(0x0A, _any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return _field(0x32, b"".join(_field(0x0A, _key_value(str(k), v)) for k, v in value.items()))
    raise TypeError(f"invalid type {type(value).__name__} of an attribute value")


def _key_value(key: str, value: Any) -> bytes:
    return _field(0x0A, key.encode("utf-8")) + _field(0x12, _any_value(value))


def _attributes(tag: int, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    return _pairs_encoded(tag, attributes.items())


def _pairs_encoded(tag: int, items: Iterable[tuple[str, Any]]) -> bytes:
    parts = []
    for key, value in items:
        kind = type(value)
        cacheable = kind is str or kind is bool or kind is int
        if cacheable:
            cached = _pairs.get((tag, key, kind, value))
            if cached is not None:
                parts.append(cached)
                continue
        try:
            encoded = _field(tag, _key_value(key, value))
        except (TypeError, UnicodeEncodeError) as exc:
            logs.event(_log, logging.WARNING, "span_attribute_not_exported", key=key, error=exc)
            continue
        if cacheable:
            if len(_pairs) >= _CACHE_LIMIT:
                _pairs.clear()
            _pairs[(tag, key, kind, value)] = encoded
        parts.append(encoded)
    return b"".join(parts)


def _trace_state(state: Any) -> bytes:
    if not state:
        return b""
    return _field(0x1A, ",".join(f"{k}={v}" for k, v in state.items()).encode("utf-8"))


def _flags(parent: Any) -> int:
    return _HAS_IS_REMOTE | _IS_REMOTE if parent is not None and parent.is_remote else _HAS_IS_REMOTE


def _span(span: ReadableSpan) -> bytes:
    context = span.get_span_context()
    assert context is not None
    parent = span.parent
    parts = [
        b"\x0a\x10", context.trace_id.to_bytes(16, "big"),
        b"\x12\x08", context.span_id.to_bytes(8, "big"),
        _trace_state(context.trace_state),
    ]
    if parent is not None:
        parts += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
    parts += (
        _field(0x2A, span.name.encode("utf-8")),
        b"\x30", bytes((_KIND[span.kind],)),
        b"\x39", _FIXED64.pack(span.start_time or 0),
        b"\x41", _FIXED64.pack(span.end_time or 0),
        _attributes(0x4A, span.attributes),
    )
    if span.dropped_attributes:
        parts += (b"\x50", _varint(span.dropped_attributes))
    for event in span.events:
        body = b"\x09" + _FIXED64.pack(event.timestamp) + _field(0x12, event.name.encode("utf-8")) \
            + _attributes(0x1A, event.attributes)
        if event.dropped_attributes:
            body += b"\x20" + _varint(event.dropped_attributes)
        parts.append(_field(0x5A, body))
    if span.dropped_events:
        parts += (b"\x60", _varint(span.dropped_events))
    for link in span.links:
        body = b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big") + b"\x12\x08" \
            + link.context.span_id.to_bytes(8, "big") + _attributes(0x22, link.attributes)
        if link.dropped_attributes:
            body += b"\x28" + _varint(link.dropped_attributes)
        body += b"\x35" + _FIXED32.pack(_flags(link.context))
        parts.append(_field(0x6A, body))
    if span.dropped_links:
        parts += (b"\x70", _varint(span.dropped_links))
    status = span.status
    status_body = b""
    if status.description:
        status_body += _field(0x12, status.description.encode("utf-8"))
    if status.status_code.value:
        status_body += b"\x18" + _varint(status.status_code.value)
    parts += (_field(0x7A, status_body), b"\x85\x01", _FIXED32.pack(_flags(parent)))
    return _field(0x12, b"".join(parts))


def _cached(obj: Any, make: Any) -> bytes:
    entry = _headers.get(id(obj))
    if entry is None or entry[0] is not obj:
        if len(_headers) >= 1024:
            _headers.clear()
        entry = (obj, make(obj))
        _headers[id(obj)] = entry
    return entry[1]


def _resource(resource: Any) -> bytes:
    """ResourceSpans.resource, tag and all."""
    return _field(0x0A, _attributes(0x0A, resource.attributes))


def _scope(scope: Any) -> bytes:
    """ScopeSpans.scope, tag and all."""
    if scope is None:
        return _field(0x0A, b"")
    body = _field(0x0A, scope.name.encode("utf-8")) if scope.name else b""
    if scope.version:
        body += _field(0x12, scope.version.encode("utf-8"))
    body += _attributes(0x1A, scope.attributes)
    return _field(0x0A, body)


def encode_spans(spans: Iterable[ReadableSpan]) -> bytes:
    """An ``ExportTraceServiceRequest``, serialised: spans grouped by resource, then scope."""
    groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    for span in spans:
        resource = span.resource
        scope = span.instrumentation_scope or None
        by_scope = groups.setdefault(id(resource), (resource, {}))[1]
        by_scope.setdefault(id(scope), (scope, []))[1].append(_span(span))
    out = []
    for resource, by_scope in groups.values():
        scope_spans = []
        for scope, encoded in by_scope.values():
            body = _cached(scope, _scope) + b"".join(encoded)
            if scope is not None and scope.schema_url:
                body += _field(0x1A, scope.schema_url.encode("utf-8"))
            scope_spans.append(_field(0x12, body))
        body = _cached(resource, _resource) + b"".join(scope_spans)
        if resource.schema_url:
            body += _field(0x1A, resource.schema_url.encode("utf-8"))
        out.append(_field(0x0A, body))
    return b"".join(out)


class Unsupported(Exception):
    """Data this encoder does not write (exponential histograms, summaries): use the SDK's."""


class _AttributeSets:
    """Encoded attribute sets of data points, by identity, for one field ``tag``: a series
    hands the same mapping to every export, and a target's series share one (a
    :class:`~.families.Merged` set is its target's, from here, then its extra pairs). What
    an export did not use is dropped after it (:func:`forget_unused`): the cache holds the
    live series, however many, and is never cleared in the middle of a large export."""

    def __init__(self, tag: int) -> None:
        self.tag = tag
        self.current: dict[int, tuple[Any, bytes]] = {}
        self.used: dict[int, tuple[Any, bytes]] = {}

    def encoded(self, attributes: Any) -> bytes:
        extra = None
        if type(attributes) is Merged:
            attributes, extra = attributes.base, attributes.extra
        elif not attributes:
            return b""
        key = id(attributes)
        entry = self.used.get(key)
        if entry is None or entry[0] is not attributes:
            entry = self.current.get(key)
            if entry is None or entry[0] is not attributes:
                entry = (attributes, _attributes(self.tag, attributes))
            self.used[key] = entry
        return entry[1] if extra is None else entry[1] + _pairs_encoded(self.tag, extra)

    def forget_unused(self) -> None:
        self.current, self.used = self.used, {}


_number_attributes = _AttributeSets(0x3A)  # NumberDataPoint.attributes
_histogram_attributes = _AttributeSets(0x4A)  # HistogramDataPoint.attributes


def forget_unused() -> None:
    """Drop the encoded attribute sets the last export did not use (call after each export)."""
    _number_attributes.forget_unused()
    _histogram_attributes.forget_unused()


def _exemplars(tag: int, exemplars: Sequence[Any]) -> bytes:
    out = []
    for e in exemplars:
        body = _attributes(0x3A, e.filtered_attributes)
        if e.time_unix_nano:
            body += b"\x11" + _FIXED64.pack(e.time_unix_nano)
        if isinstance(e.value, float):
            body += b"\x19" + _DOUBLE.pack(e.value)
        elif isinstance(e.value, int):
            body += b"\x31" + _SFIXED64.pack(e.value)
        else:
            raise ValueError("an exemplar's value must be an int or a float")
        if e.span_id is not None and e.trace_id is not None:
            body += b"\x22\x08" + e.span_id.to_bytes(8, "big") + b"\x2a\x10" + e.trace_id.to_bytes(16, "big")
        out.append(_field(tag, body))
    return b"".join(out)


def _number_points(points: Iterable[Any], with_start: bool) -> bytes:
    """NumberDataPoints, each with its field tag: the times are encoded once for the run of
    points that share them (an export's state families all do)."""
    attributes = _number_attributes.encoded
    fixed64, double, sfixed64 = _FIXED64.pack, _DOUBLE.pack, _SFIXED64.pack
    out = []
    start_at = time_at = -1
    start = when = b""
    for point in points:
        body = attributes(point.attributes)
        if with_start and point.start_time_unix_nano:
            if point.start_time_unix_nano != start_at:
                start_at = point.start_time_unix_nano
                start = b"\x11" + fixed64(start_at)
            body += start
        if point.time_unix_nano:
            if point.time_unix_nano != time_at:
                time_at = point.time_unix_nano
                when = b"\x19" + fixed64(time_at)
            body += when
        value = point.value
        body += b"\x31" + sfixed64(value) if isinstance(value, int) else b"\x21" + double(value)
        if point.exemplars:
            body += _exemplars(0x2A, point.exemplars)
        n = len(body)
        out.append((bytes((0x0A, n)) if n < 0x80 else b"\x0a" + _varint(n)) + body)
    return b"".join(out)


def _histogram_point(point: Any) -> bytes:
    body = _histogram_attributes.encoded(point.attributes)
    if point.start_time_unix_nano:
        body += b"\x11" + _FIXED64.pack(point.start_time_unix_nano)
    if point.time_unix_nano:
        body += b"\x19" + _FIXED64.pack(point.time_unix_nano)
    if point.count:
        body += b"\x21" + _FIXED64.pack(point.count)
    if point.sum is not None:
        body += b"\x29" + _DOUBLE.pack(point.sum)
    if point.bucket_counts:
        body += _field(0x32, struct.pack(f"<{len(point.bucket_counts)}Q", *point.bucket_counts))
    if point.explicit_bounds:
        body += _field(0x3A, struct.pack(f"<{len(point.explicit_bounds)}d", *point.explicit_bounds))
    if point.exemplars:
        body += _exemplars(0x42, point.exemplars)
    if point.min is not None:
        body += b"\x59" + _DOUBLE.pack(point.min)
    if point.max is not None:
        body += b"\x61" + _DOUBLE.pack(point.max)
    return _field(0x0A, body)


def _metric(metric: Any) -> bytes:
    body = _field(0x0A, metric.name.encode("utf-8"))
    if metric.description:
        body += _field(0x12, metric.description.encode("utf-8"))
    if metric.unit:
        body += _field(0x1A, metric.unit.encode("utf-8"))
    data = metric.data
    if isinstance(data, Gauge):
        body += _field(0x2A, _number_points(data.data_points, False))
    elif isinstance(data, Sum):
        inner = _number_points(data.data_points, True)
        if data.aggregation_temporality:
            inner += b"\x10" + _varint(int(data.aggregation_temporality))
        if data.is_monotonic:
            inner += b"\x18\x01"
        body += _field(0x3A, inner)
    elif isinstance(data, Histogram):
        inner = b"".join(_histogram_point(p) for p in data.data_points)
        if data.aggregation_temporality:
            inner += b"\x10" + _varint(int(data.aggregation_temporality))
        body += _field(0x4A, inner)
    else:
        raise Unsupported(type(data).__name__)
    return _field(0x12, body)


def encode_metrics(data: Any) -> bytes:
    """An ``ExportMetricsServiceRequest``, serialised, from the SDK's ``MetricsData``.

    Raises :class:`Unsupported` for kinds of data it does not write."""
    out = []
    for rm in data.resource_metrics:
        scope_metrics = []
        for sm in rm.scope_metrics:
            body = _cached(sm.scope, _scope) + b"".join(_metric(m) for m in sm.metrics)
            if sm.schema_url:
                body += _field(0x1A, sm.schema_url.encode("utf-8"))
            scope_metrics.append(_field(0x12, body))
        body = _cached(rm.resource, _resource) + b"".join(scope_metrics)
        if rm.schema_url:
            body += _field(0x1A, rm.schema_url.encode("utf-8"))
        out.append(_field(0x0A, body))
    return b"".join(out)
