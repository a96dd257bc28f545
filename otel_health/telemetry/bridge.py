"""The Prometheus bridge: a metric reader over the OpenTelemetry SDK and a fast renderer.

The SDK's data is rendered straight to the Prometheus text format (0.0.4) or OpenMetrics
(with exemplars), without building prometheus_client objects first: at 10,000 targets
that detour costs several times the render itself (docs/design.md). The
per-target state families come from :class:`~.families.StateFamilies`, not the SDK. Names follow
the same rules as the OpenTelemetry Prometheus exporters: a monotonic sum gets ``_total``;
instrument names already carry their unit suffix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData

from .collect import collect as paced_collect
from .families import Point, StateFamilies, StateFamily
from .resource import INSTRUMENT_TYPES

__all__ = ["CONTENT_TYPE_OPENMETRICS", "CONTENT_TYPE_TEXT", "BridgeReader"]

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Keep = Callable[[Mapping[str, Any]], bool]
STEP_SAMPLES = 2000  # samples per render step: a few milliseconds of work


class BridgeReader(MetricReader):
    """Pull reader: each render collects from the SDK and renders the result.

    ``families`` (when given) are rendered from their source instead of the SDK's storage,
    and decide which targets are live: the SDK keeps cumulative series of removed targets
    until restart, and the render drops them.
    """

    def __init__(self, *, families: StateFamilies | None = None,
                 cardinality_limits: dict[type, int] | None = None) -> None:
        cumulative = AggregationTemporality.CUMULATIVE
        super().__init__(
            preferred_temporality=dict.fromkeys(INSTRUMENT_TYPES, cumulative),
            cardinality_limits=cardinality_limits,
        )
        self._lock = threading.Lock()
        self._latest: MetricsData | None = None
        self._labels = {False: _LabelCache(), True: _LabelCache()}
        self._families = families
        # The latest exemplars of each series, by (metric, identity of its attributes).
        self._exemplars: dict[tuple[str, int], tuple[Any, Sequence[Any]]] = {}

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        self._latest = metrics_data

    def collect_sdk(self, pause: Callable[[], None] | None = None) -> MetricsData | None:
        """Collect the SDK's data for one render (the families' callbacks silenced), with
        ``pause()`` every few hundred series when given (``telemetry.collect``: on a worker
        thread, so the event loop gets the interpreter lock back). Thread-safe."""
        with self._lock:
            self._latest = None
            with self._families.bypassed() if self._families is not None else contextlib.nullcontext():
                done, data = paced_collect(self, pause) if pause is not None else (False, None)
                if not done:
                    # The SDK's default 10 s budget for observable callbacks is too tight on a
                    # busy event loop: a scrape would fail instead of being slow.
                    self.collect(timeout_millis=120_000)
                    data, self._latest = self._latest, None  # not kept between scrapes
            return self._sticky(data)

    def _sticky(self, data: MetricsData | None) -> MetricsData | None:
        """``data`` with each series' latest exemplars kept until new ones come, as Prometheus
        client libraries keep them. The SDK hands a sampled exemplar to one collection only;
        the OTLP push reads this storage too, so without this a scrape and a push would take
        each other's exemplars."""
        if data is None:
            return None
        held, live = self._exemplars, {}
        resources = []
        changed = False
        for rm in data.resource_metrics:
            scopes = []
            for sm in rm.scope_metrics:
                metrics = []
                for metric in sm.metrics:
                    if isinstance(metric.data, (HistogramData, Sum)):
                        points: list[Any] = []
                        filled = False
                        for point in metric.data.data_points:
                            key = (metric.name, id(point.attributes))
                            if point.exemplars:
                                live[key] = (point.attributes, point.exemplars)
                            else:
                                kept = held.get(key)
                                if kept is not None and kept[0] is point.attributes:
                                    point = dataclasses.replace(point, exemplars=kept[1])
                                    live[key], filled = kept, True
                            points.append(point)
                        if filled:
                            same: Any = metric.data
                            metric = Metric(metric.name, metric.description, metric.unit,
                                            dataclasses.replace(same, data_points=points))
                            changed = True
                    metrics.append(metric)
                scopes.append(ScopeMetrics(sm.scope, metrics, sm.schema_url))
            resources.append(ResourceMetrics(rm.resource, scopes, rm.schema_url))
        self._exemplars = live
        return MetricsData(resources) if changed else data

    def render_steps(self, data: MetricsData | None, out: list[bytes], *, openmetrics: bool = False,
                     step: int = STEP_SAMPLES) -> Iterator[None]:
        """Render ``data`` and the families into ``out`` (UTF-8 pieces), pausing (yielding)
        about every ``step`` samples so an event loop can run between the steps. Run one
        render per format at a time."""
        families = self._families
        direct = families.collect() if families is not None else ()
        keep = families.current if families is not None else None
        yield from _render_steps(data, out, openmetrics=openmetrics, keep=keep, labels=self._labels[openmetrics],
                                 direct=direct, step=step)

    def render(self, *, openmetrics: bool = False) -> bytes:
        """Collect and render in one go (tools and tests; the server renders in steps)."""
        out: list[bytes] = []
        for _ in self.render_steps(self.collect_sdk(), out, openmetrics=openmetrics):
            pass
        return b"".join(out)

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


def _render_steps(data: MetricsData | None, out: list[bytes], *, openmetrics: bool, keep: Keep | None,
                  labels: _LabelCache, direct: Sequence[tuple[StateFamily, Iterable[Point]]], step: int,
                  ) -> Iterator[None]:
    """Render direct families and SDK data into ``out`` (UTF-8 pieces), yielding between steps
    of about ``step`` samples. ``keep(attributes)`` drops SDK series of removed targets and
    of labels a reload changed (direct families hold current targets only)."""
    cache = labels
    lines: list[str] = []
    for family, points in direct:
        for _ in _direct_lines(lines, family, points, openmetrics, cache, step):
            out.append("".join(lines).encode("utf-8"))
            lines.clear()
            yield
    if data is not None:
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for _ in _metric_lines(lines, metric, openmetrics, keep, cache, step):
                        out.append("".join(lines).encode("utf-8"))
                        lines.clear()
                        yield
    cache.rotate()
    if openmetrics:
        lines.append("# EOF\n")
    out.append("".join(lines).encode("utf-8"))


def _metric_lines(out: list[str], metric: Any, openmetrics: bool, keep: Keep | None, cache: _LabelCache,
                  step: int) -> Iterator[None]:
    data = metric.data
    name = metric.name
    points = data.data_points
    if keep is not None and name.startswith("tta_service_"):
        points = [p for p in points if keep(p.attributes)]
    if not points:
        return
    help_text = _escape_help(metric.description or "")
    append = out.append
    if isinstance(data, Sum) and data.is_monotonic:
        family = name[:-6] if name.endswith("_total") else name
        sample = family + "_total"
        header = family if openmetrics else sample
        append(f"# HELP {header} {help_text}\n# TYPE {header} counter\n")
    elif isinstance(data, (Gauge, Sum)):
        sample = name
        append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n")
    elif isinstance(data, HistogramData):
        append(f"# HELP {name} {help_text}\n# TYPE {name} histogram\n")
        bucket = name + "_bucket"
        per_step = max(1, step // 16)
        for i, p in enumerate(points, 1):
            _render_histogram_point(out, name, bucket, p, openmetrics, cache.body(p.attributes))
            if i % per_step == 0:
                yield
        return
    else:
        return
    for i, p in enumerate(points, 1):
        body = cache.body(p.attributes)
        append(f"{sample}{{{body}}} {_num(p.value)}\n" if body else f"{sample} {_num(p.value)}\n")
        if i % step == 0:
            yield


def _direct_lines(out: list[str], family: StateFamily, points: Iterable[Point], openmetrics: bool,
                  cache: _LabelCache, step: int) -> Iterator[None]:
    name = family.name
    if family.counter:
        sample = name + "_total"
        header = name if openmetrics else sample
        kind = "counter"
    else:
        sample = header = name
        kind = "gauge"
    append = out.append
    count = 0
    extras = _EXTRA_LABELS
    for attrs, extra, value in points:
        if count == 0:
            append(f"# HELP {header} {_escape_help(family.description)}\n# TYPE {header} {kind}\n")
        count += 1
        body = cache.body(attrs)
        if extra:
            more = extras.get(extra)
            if more is None:
                more = ",".join(f'{_label_name(k)}="{_escape_value(v)}"' for k, v in extra)
                if len(extras) >= _EXTRA_LIMIT:
                    extras.clear()
                extras[extra] = more
            body = f"{body},{more}" if body else more
        append(f"{sample}{{{body}}} {_num(value)}\n" if body else f"{sample} {_num(value)}\n")
        if count % step == 0:
            yield


def _render_histogram_point(out: list[str], name: str, bucket: str, p: HistogramDataPoint, openmetrics: bool,
                            base: str) -> None:
    head = f"{bucket}{{{base},le=" if base else f"{bucket}{{le="
    exemplars = _exemplars_by_bucket(p) if openmetrics and p.exemplars else None
    cumulative = 0
    les = _le_labels(p.explicit_bounds)
    append = out.append
    for i, count in enumerate(p.bucket_counts):
        cumulative += count
        if exemplars and i in exemplars:
            append(f"{head}{les[i]} {cumulative}{exemplars[i]}\n")
        else:
            append(f"{head}{les[i]} {cumulative}\n")
    labels = "{" + base + "}" if base else ""
    out.append(f"{name}_sum{labels} {_num(p.sum)}\n{name}_count{labels} {p.count}\n")


def _le_labels(bounds: Sequence[float]) -> list[str]:
    """``"0.005"}`` and so on for each bucket of ``bounds``, ``"+Inf"}`` last: a histogram's
    bounds are the same for every series, so they are formatted once."""
    key = tuple(bounds)
    les = _LE_CACHE.get(key)
    if les is None:
        les = _LE_CACHE[key] = [f'"{_num(b)}"}}' for b in key] + ['"+Inf"}']
    return les


_LE_CACHE: dict[tuple[float, ...], list[str]] = {}
# Rendered extra labels of the state families (a phase, the info labels), by their pairs:
# few distinct ones, shared by every target.
_EXTRA_LABELS: dict[tuple[tuple[str, str], ...], str] = {}
_EXTRA_LIMIT = 4096


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
    if type(value) is float and value - value == 0:  # finite: most samples
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)
