"""OTLP out: which exporters the config and the standard ``OTEL_*`` variables ask for.

:class:`OtlpPlan` reads the settings once; :meth:`OtlpPlan.span_processor` and
:meth:`OtlpPlan.metric_exporter` build the exporters. The exporter classes live in
``_otlp_http`` and ``_otlp_grpc`` (each imported only when its protocol is used): the
SDK's own exporters, sending what :mod:`.wire` encodes and counting failed batches.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from ..config import OtlpSettings, Secret
from .own import ExportFailures

__all__ = ["SPAN_QUEUE", "OtlpPlan"]

SPAN_QUEUE = 4096  # spans waiting for export; when the Collector is away, more are dropped, never piled up


@dataclass(frozen=True, slots=True)
class OtlpPlan:
    """What goes out over OTLP, and how."""

    protocol: str  # "grpc" or "http/protobuf"
    traces: bool
    metrics: bool
    endpoint: str | None  # from the config file; None leaves it to OTEL_EXPORTER_OTLP_*
    headers: tuple[tuple[str, str | Secret], ...] = ()
    interval: float | None = None

    @classmethod
    def from_settings(cls, settings: OtlpSettings, env: Mapping[str, str] = os.environ) -> OtlpPlan | None:
        """The plan, or None when neither the config nor the environment asks for OTLP."""
        endpoint = settings.endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        traces = bool(endpoint or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        metrics = bool(endpoint or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))
        traces &= env.get("OTEL_TRACES_EXPORTER", "").strip() != "none"
        metrics &= env.get("OTEL_METRICS_EXPORTER", "").strip() != "none"
        if not (traces or metrics):
            return None
        protocol = settings.protocol or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        return cls(protocol, traces, metrics, settings.endpoint, settings.headers, settings.export_interval)

    def _arguments(self, http_path: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        headers = {k: (v.reveal() if isinstance(v, Secret) else v) for k, v in self.headers}
        if headers:
            kwargs["headers"] = headers
        if self.endpoint:
            grpc = self.protocol == "grpc"
            kwargs["endpoint"] = self.endpoint if grpc else f"{self.endpoint.rstrip('/')}/{http_path}"
        return kwargs

    def span_processor(self, failures: ExportFailures) -> SpanProcessor:
        exporter: SpanExporter
        if self.protocol == "grpc":
            from ._otlp_grpc import GrpcSpanExporter
            exporter = GrpcSpanExporter(failures, **self._arguments("v1/traces"))
        else:
            from ._otlp_http import HttpSpanExporter
            exporter = HttpSpanExporter(failures, **self._arguments("v1/traces"))
        return BatchSpanProcessor(exporter, max_queue_size=SPAN_QUEUE)

    def metric_exporter(self, failures: ExportFailures) -> MetricExporter:
        if self.protocol == "grpc":
            from ._otlp_grpc import GrpcMetricExporter
            return GrpcMetricExporter(failures, **self._arguments("v1/metrics"))
        from ._otlp_http import HttpMetricExporter
        return HttpMetricExporter(failures, **self._arguments("v1/metrics"))
