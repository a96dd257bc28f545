"""The span encoder writes the very message the SDK's encoder builds, for every kind of span."""

from __future__ import annotations

import time
from typing import Any

import pytest
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

from otel_health.telemetry.wire import encode_spans


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


def _metrics_data():  # type: ignore[no-untyped-def]
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import Counter as SdkCounter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics._internal.exemplar import AlwaysOnExemplarFilter
    from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    cumulative = InMemoryMetricReader()
    delta = InMemoryMetricReader(preferred_temporality={SdkCounter: AggregationTemporality.DELTA})
    provider = MeterProvider(metric_readers=[cumulative, delta], exemplar_filter=AlwaysOnExemplarFilter(),
                             resource=Resource.create({"service.name": "otel-health", "host.id": "h1"}),
                             views=[View(instrument_name="*"),
                                    View(instrument_name="tta_bounded", aggregation=ExplicitBucketHistogramAggregation(
                                        boundaries=(0.01, 0.1, 1.0), record_min_max=False))])
    meter = provider.get_meter("otel_health", "1.0", schema_url="https://opentelemetry.io/schemas/1.26.0")
    checks = meter.create_counter("tta_checks", unit="{check}", description="Checks by outcome")
    ratio = meter.create_counter("tta_float_total")
    updown = meter.create_up_down_counter("tta_in_flight")
    duration = meter.create_histogram("tta_duration", unit="s", description="Check duration")
    bounded = meter.create_histogram("tta_bounded")
    meter.create_observable_gauge("tta_up", callbacks=[lambda _: [Observation(1, {"service": "a"}),
                                                                  Observation(0, {"service": "b"})]])
    meter.create_observable_gauge("tta_seconds", callbacks=[lambda _: [Observation(0.25, {"service": "a"})]])
    tracer = TracerProvider().get_tracer("t")
    for i in range(5):
        attrs = {"service": f"s{i % 2}", "outcome": "success" if i % 3 else "failure", "code": 200 + i % 2}
        checks.add(1, attrs)
        ratio.add(0.5 * i, {"service": "a"})
        updown.add(-1 if i % 2 else 2, {"service": "a"})
        with tracer.start_as_current_span("check"):
            duration.record(0.01 * i, attrs)
        bounded.record(i * 0.3, {"service": "a"})
    duration.record(3, {"service": "int", "outcome": "success", "code": 200})  # an int sample
    data = [cumulative.get_metrics_data(), delta.get_metrics_data()]
    provider.shutdown()
    return data


def test_metrics_are_the_message_the_sdk_builds() -> None:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics as sdk_encode_metrics
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    from otel_health.telemetry.wire import encode_metrics

    for data in _metrics_data():
        theirs = sdk_encode_metrics(data)
        names = {m.name for rm in theirs.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        assert {"tta_checks", "tta_duration", "tta_up", "tta_seconds", "tta_in_flight"} <= names
        assert any(p.exemplars for rm in theirs.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                   for p in m.histogram.data_points)
        for _ in range(2):  # the second time from the caches of attribute sets
            assert ExportMetricsServiceRequest.FromString(encode_metrics(data)) == theirs


def test_the_state_families_of_the_push_reader_encode_the_same(tmp_path: object) -> None:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics as sdk_encode_metrics
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    from benchmarks.metrics_render import _fill, _targets
    from otel_health.telemetry import SCOPE, PushReader
    from otel_health.telemetry.wire import encode_metrics
    from tests.harness.pipeline import Pipeline

    sent: list = []

    class Keep(MetricExporter):
        def export(self, metrics_data, timeout_millis=10_000, **kw):  # type: ignore[no-untyped-def]
            sent.append(metrics_data)
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 0) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 0, **kw: object) -> None:
            return None

    pipeline = Pipeline(lambda families, resource: [
        PushReader(Keep(), families=families, resource=resource, scope=SCOPE, interval_s=3600)])
    reader = pipeline.readers[0]
    assert isinstance(reader, PushReader)
    _fill(pipeline, _targets(30))
    reader._collect_now()
    assert sent
    for data in sent:
        assert ExportMetricsServiceRequest.FromString(encode_metrics(data)) == sdk_encode_metrics(data)
    reader.shutdown()


def test_kinds_it_does_not_write_are_left_to_the_sdk() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

    from otel_health.telemetry.wire import Unsupported, encode_metrics

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader],
                             views=[View(instrument_name="*", aggregation=ExponentialBucketHistogramAggregation())])
    provider.get_meter("m").create_histogram("h").record(1.5)
    with pytest.raises(Unsupported):
        encode_metrics(reader.get_metrics_data())
    provider.shutdown()


def _one_resource(metrics: list[Any]) -> Any:
    from opentelemetry.sdk.metrics.export import MetricsData, ResourceMetrics, ScopeMetrics
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    return MetricsData([ResourceMetrics(Resource.create({}), [ScopeMetrics(InstrumentationScope("s"), metrics, "")],
                                       "")])


def test_an_attribute_set_shared_by_a_histogram_and_a_gauge_is_written_for_each() -> None:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics as sdk_encode_metrics
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Gauge,
        HistogramDataPoint,
        Metric,
        NumberDataPoint,
    )
    from opentelemetry.sdk.metrics.export import Histogram as HistogramData

    from otel_health.telemetry.families import Merged
    from otel_health.telemetry.wire import encode_metrics

    attrs = {"service": "api", "environment": "prod"}  # one mapping, as a target's series share it
    histogram = Metric("h", "", "s", HistogramData([HistogramDataPoint(attrs, 1, 2, 1, 0.5, [0, 1], [1.0], None, None,
                                                                       [])], AggregationTemporality.CUMULATIVE))
    gauge = Metric("g", "", "", Gauge([NumberDataPoint(attrs, 0, 2, 1),
                                       NumberDataPoint(Merged(attrs, (("phase", "tls"),)), 0, 2, 0.25)]))
    for order in ([histogram, gauge], [gauge, histogram]):
        data = _one_resource(order)
        for _ in range(2):
            assert ExportMetricsServiceRequest.FromString(encode_metrics(data)) == sdk_encode_metrics(data)


def test_attribute_sets_are_encoded_once_however_many_and_dropped_once_unused(monkeypatch: Any) -> None:
    from opentelemetry.sdk.metrics.export import Gauge, Metric, NumberDataPoint

    from otel_health.telemetry import wire

    encoded: list[int] = []
    real = wire._attributes

    def counted(tag: int, attributes: Any) -> bytes:
        if tag == 0x3A:  # a NumberDataPoint's, not the resource's
            encoded.append(1)
        return real(tag, attributes)

    monkeypatch.setattr(wire, "_attributes", counted)
    sets = [{"service": f"svc-{i}"} for i in range(70_000)]  # more than any fixed bound the cache once had
    every = _one_resource([Metric("up", "", "", Gauge([NumberDataPoint(a, 0, 1, 1) for a in sets]))])
    half = _one_resource([Metric("up", "", "", Gauge([NumberDataPoint(a, 0, 1, 1) for a in sets[::2]]))])
    wire.encode_metrics(every)
    wire.forget_unused()
    assert len(encoded) == len(sets)
    wire.encode_metrics(every)  # all from the cache
    wire.forget_unused()
    assert len(encoded) == len(sets)
    wire.encode_metrics(half)
    wire.forget_unused()  # the other half was not used by this export: dropped
    assert len(wire._number_attributes.current) == len(sets) // 2
    wire.encode_metrics(every)
    assert len(encoded) == len(sets) + len(sets) // 2
    wire.forget_unused()
