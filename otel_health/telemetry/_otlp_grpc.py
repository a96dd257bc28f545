"""OTLP/gRPC exporters whose request messages are parsed from what :mod:`.wire` encodes.

The message, parsed (in C) from our bytes, costs less than one built field by field in
Python. Everything else (channel, retries, compression, TLS) is the SDK exporter's own;
``_translate_data`` is its hook for building the message (pinned
opentelemetry-exporter-otlp 1.45.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from ..tuning import fine_switching
from .own import ExportFailures
from .wire import Unsupported, encode_metrics, encode_spans

__all__ = ["GrpcMetricExporter", "GrpcSpanExporter"]


class GrpcSpanExporter(OTLPSpanExporter):
    def __init__(self, failures: ExportFailures, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._failures = failures

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        if result is not SpanExportResult.SUCCESS:
            self._failures.add("traces")
        return result

    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        request: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(encode_spans(data))
        return request


class GrpcMetricExporter(OTLPMetricExporter):
    def __init__(self, failures: ExportFailures, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._failures = failures

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        with fine_switching():  # encoding thousands of series takes a while beside the loop
            result = super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        if result is not MetricExportResult.SUCCESS:
            self._failures.add("metrics")
        return result

    def _translate_data(self, data: MetricsData) -> ExportMetricsServiceRequest:
        try:
            request: ExportMetricsServiceRequest = ExportMetricsServiceRequest.FromString(encode_metrics(data))
        except Unsupported:
            return super()._translate_data(data)
        return request
