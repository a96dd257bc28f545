"""The Prometheus bridge: a metric reader over the OpenTelemetry SDK and a fast renderer.

The SDK's data is rendered straight to the Prometheus text format (0.0.4) or OpenMetrics
(with exemplars), without building prometheus_client objects first: at 10,000 targets
that detour costs several times the render itself (README, design section). Names follow
the same rules as the OpenTelemetry Prometheus exporters: a monotonic sum gets ``_total``;
instrument names already carry their unit suffix.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    HistogramDataPoint,
    MetricReader,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData

__all__ = ["CONTENT_TYPE_OPENMETRICS", "CONTENT_TYPE_TEXT", "BridgeReader", "render"]

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Keep = Callable[[str, str], bool]


class BridgeReader(MetricReader):
    """Pull reader: each :meth:`render` collects from the SDK and renders the result."""

    def __init__(self, *, cardinality_limits: dict[type, int] | None = None) -> None:
        cumulative = AggregationTemporality.CUMULATIVE
        super().__init__(
            preferred_temporality={cls: cumulative for cls in (Counter, UpDownCounter, Histogram, ObservableCounter,
                                                              ObservableUpDownCounter, ObservableGauge)},
            cardinality_limits=cardinality_limits,
        )
        self._lock = threading.Lock()
        self._latest: MetricsData | None = None
        self._labels = _LabelCache()

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        self._latest = metrics_data

    def render(self, *, openmetrics: bool = False, keep: Keep | None = None) -> bytes:
        """Collect now and render. Thread-safe; meant to run off the event loop."""
        with self._lock:
            self._latest = None
            # The SDK's default 10 s budget for observable callbacks is too tight at 10,000
            # targets on a busy event loop: a scrape would fail instead of being slow.
            self.collect(timeout_millis=120_000)
            data = self._latest
            return render(data, openmetrics=openmetrics, keep=keep, labels=self._labels)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._latest = None


class _LabelCache:
    """Rendered label sets, by the identity of the attribute mapping they came from.

    The SDK hands back the same attribute dicts render after render (the ones otel-health
    recorded with), so most series are formatted once. Entries not used by a render are
    dropped after it, so the cache holds only live series.
    """

    def __init__(self) -> None:
        self._current: dict[int, tuple[Any, str]] = {}
        self._next: dict[int, tuple[Any, str]] = {}

    def body(self, attrs: Any) -> str:
        key = id(attrs)
        hit = self._current.get(key)
        if hit is not None and hit[0] is attrs:
            self._next[key] = hit
            return hit[1]
        text = _label_body(attrs)
        self._next[key] = (attrs, text)
        return text

    def rotate(self) -> None:
        self._current, self._next = self._next, {}


def render(data: MetricsData | None, *, openmetrics: bool = False, keep: Keep | None = None,
           labels: _LabelCache | None = None) -> bytes:
    """Render SDK metrics data. ``keep(service, environment)`` drops series of removed targets."""
    cache = labels or _LabelCache()
    out: list[str] = []
    if data is not None:
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    _render_metric(out, metric, openmetrics, keep, cache)
    cache.rotate()
    if openmetrics:
        out.append("# EOF\n")
    return "".join(out).encode("utf-8")


def _render_metric(out: list[str], metric: Any, openmetrics: bool, keep: Keep | None, cache: _LabelCache) -> None:
    data = metric.data
    name = metric.name
    points = data.data_points
    if keep is not None and name.startswith("tta_service_"):
        points = [p for p in points if keep(p.attributes.get("service", ""), p.attributes.get("environment", ""))]
    if not points:
        return
    help_text = _escape_help(metric.description or "")
    if isinstance(data, Sum) and data.is_monotonic:
        family = name[:-6] if name.endswith("_total") else name
        sample = family + "_total"
        header = family if openmetrics else sample
        out.append(f"# HELP {header} {help_text}\n# TYPE {header} counter\n")
        for p in points:
            body = cache.body(p.attributes)
            out.append(f"{sample}{{{body}}} {_num(p.value)}\n" if body else f"{sample} {_num(p.value)}\n")
    elif isinstance(data, (Gauge, Sum)):
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n")
        for p in points:
            body = cache.body(p.attributes)
            out.append(f"{name}{{{body}}} {_num(p.value)}\n" if body else f"{name} {_num(p.value)}\n")
    elif isinstance(data, HistogramData):
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} histogram\n")
        bucket = name + "_bucket"
        for p in points:
            _render_histogram_point(out, name, bucket, p, openmetrics, cache.body(p.attributes))


def _render_histogram_point(out: list[str], name: str, bucket: str, p: HistogramDataPoint, openmetrics: bool,
                            base: str) -> None:
    sep = "," if base else ""
    exemplars = _exemplars_by_bucket(p) if openmetrics and p.exemplars else None
    cumulative = 0
    bounds = p.explicit_bounds
    for i, count in enumerate(p.bucket_counts):
        cumulative += count
        le = _num(bounds[i]) if i < len(bounds) else "+Inf"
        line = f'{bucket}{{{base}{sep}le="{le}"}} {cumulative}'
        if exemplars and i in exemplars:
            line += exemplars[i]
        out.append(line + "\n")
    labels = "{" + base + "}" if base else ""
    out.append(f"{name}_sum{labels} {_num(p.sum)}\n{name}_count{labels} {p.count}\n")


def _exemplars_by_bucket(p: HistogramDataPoint) -> dict[int, str]:
    found: dict[int, str] = {}
    bounds = p.explicit_bounds
    for ex in p.exemplars:
        if not ex.trace_id:
            continue
        index = next((i for i, b in enumerate(bounds) if ex.value <= b), len(bounds))
        found[index] = (f' # {{trace_id="{ex.trace_id:032x}",span_id="{ex.span_id:016x}"}} '
                        f"{_num(ex.value)} {ex.time_unix_nano / 1e9:.3f}")
    return found


def _label_body(attrs: Any) -> str:
    if not attrs:
        return ""
    return ",".join(f'{_label_name(k)}="{_escape_value(v)}"' for k, v in attrs.items())


_NAME_CACHE: dict[str, str] = {}


def _label_name(key: str) -> str:
    cached = _NAME_CACHE.get(key)
    if cached is None:
        cleaned = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in key)
        if cleaned[:1].isdigit():
            cleaned = "_" + cleaned
        cached = _NAME_CACHE[key] = cleaned
    return cached


def _escape_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if "\\" in text or '"' in text or "\n" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return text


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _num(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)
