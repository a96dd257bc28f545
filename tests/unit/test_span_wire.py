"""The span encoder writes the very message the SDK's encoder builds, for every kind of span."""

from __future__ import annotations

import time

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.trace.span import TraceState

from otel_health.span_wire import encode_spans


class _Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list = []

    def export(self, spans):  # type: ignore[no-untyped-def]
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def _spans() -> list:
    keep = _Keep()
    providers = [TracerProvider(resource=Resource.create({"service.name": "otel-health", "n": 3, "f": 0.5})),
                 TracerProvider(resource=Resource.create({"service.name": "other"}))]
    for provider in providers:
        provider.add_span_processor(SimpleSpanProcessor(keep))
    tracer = providers[0].get_tracer("otel_health", "1.0", schema_url="https://opentelemetry.io/schemas/1.26.0")
    probes = providers[0].get_tracer("otel_health.probes")
    remote = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1),
                         trace_state=TraceState([("vendor", "x"), ("k", "v")]))
    with tracer.start_as_current_span("check web", kind=SpanKind.INTERNAL, attributes={
        "tta.service": "web", "tta.check.up": True, "tta.check.duration": 0.0123, "server.port": 443,
        "negative": -7, "big": 2 ** 62, "ids": [1, 2, 3], "names": ["a", "é"], "flags": [True, False],
        "floats": [0.5, 1.5], "empty": "", "unicode": "ünï ☃",
    }) as root:
        root.add_event("retry", {"tta.check.attempt": 1, "error.type": "timeout"})
        root.add_event("bare")
        with probes.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes={"url.full": "http://x/"}) as c:
            c.set_status(Status(StatusCode.ERROR, "status 500"))
        with probes.start_as_current_span("connect", kind=SpanKind.CLIENT) as c:
            c.set_status(Status(StatusCode.OK))
    with tracer.start_as_current_span("linked", kind=SpanKind.SERVER, links=[Link(remote, {"why": "batch"})],
                                      context=set_span_in_context(NonRecordingSpan(remote))):
        pass
    for kind in (SpanKind.PRODUCER, SpanKind.CONSUMER):
        with tracer.start_as_current_span(str(kind), kind=kind):
            pass
    with providers[1].get_tracer("x").start_as_current_span("elsewhere", start_time=time.time_ns() - 10):
        pass
    return keep.spans


def test_the_message_is_the_one_the_sdk_builds() -> None:
    spans = _spans()
    assert len(spans) >= 7
    ours = ExportTraceServiceRequest.FromString(encode_spans(spans))
    theirs = sdk_encode_spans(spans)
    assert ours == theirs
    # and again, now from the caches of repeated pairs and headers
    assert ExportTraceServiceRequest.FromString(encode_spans(spans)) == theirs
    assert len(ours.resource_spans) == 2
    flags = {s.name: s.flags for rs in ours.resource_spans for ss in rs.scope_spans for s in ss.spans}
    assert flags["linked"] == 0x300 and flags["GET"] == 0x100


def test_an_attribute_that_cannot_be_encoded_is_left_out_not_the_span() -> None:
    root = next(s for s in _spans() if s.name == "check web")
    root._attributes = dict(root.attributes, bad="\udcff")  # a lone surrogate: not UTF-8
    ours = ExportTraceServiceRequest.FromString(encode_spans([root]))
    keys = [kv.key for kv in ours.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert "bad" not in keys
    assert keys == [k for k in root.attributes if k != "bad"]


def test_nothing_to_send_is_an_empty_request() -> None:
    assert encode_spans([]) == b""
