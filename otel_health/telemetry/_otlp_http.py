"""OTLP/HTTP exporters that send what :mod:`.wire` encodes.

The SDK's exporter keeps what matters for sending (retries with backoff, compression,
headers, TLS and timeouts from the ``OTEL_EXPORTER_OTLP_*`` settings); only the encoding is
ours. This reaches into the exporter's private ``_client`` and ``_shutdown`` (pinned
opentelemetry-exporter-otlp 1.45.2); without them, or for data the wire encoder does not
write, the SDK's own path sends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from ..tuning import fine_switching
from .own import ExportFailures
from .wire import Unsupported, encode_metrics, encode_spans

__all__ = ["HttpMetricExporter", "HttpSpanExporter"]

log = logging.getLogger("otel_health")


def send_encoded(exporter: Any, encode: Callable[[Any], bytes], data: Any) -> bool | None:
    """Send ``encode(data)`` with the exporter's own client. True when it was accepted; None
    when the exporter's own path must do it (shut down, a client it does not have, data the
    wire encoder does not write)."""
    client = getattr(exporter, "_client", None)
    if client is None or getattr(exporter, "_shutdown", False):
        return None
    try:
        payload = encode(data)
    except Unsupported:
        return None
    except Exception:
        log.exception("otlp_encoding_failed")  # the SDK's encoder sends instead
        return None
    return bool(client.export(payload).success)


class HttpSpanExporter(OTLPSpanExporter):
    def __init__(self, failures: ExportFailures, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._failures = failures

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        sent = send_encoded(self, encode_spans, spans)
        if sent is None:
            result = super().export(spans)
        else:
            result = SpanExportResult.SUCCESS if sent else SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self._failures.add("traces")
        return result


class HttpMetricExporter(OTLPMetricExporter):
    def __init__(self, failures: ExportFailures, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._failures = failures

    def export(self, metrics_data: MetricsData, timeout_millis: float | None = 10_000,
               **kwargs: Any) -> MetricExportResult:
        with fine_switching():  # encoding thousands of series takes a while beside the loop
            sent = None
            if getattr(self, "_max_export_batch_size", None) is None:  # the SDK's own batching: its path
                sent = send_encoded(self, encode_metrics, metrics_data)
            if sent is None:
                result = super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            else:
                result = MetricExportResult.SUCCESS if sent else MetricExportResult.FAILURE
        if result is not MetricExportResult.SUCCESS:
            self._failures.add("metrics")
        return result
