"""Periodic metric export (OTLP) that holds up at thousands of targets.

Like the Prometheus bridge, this reader takes counters and histograms from the SDK's own
aggregation and the per-target state families from their source (the state store), turning
them into OpenTelemetry data points at export time. Through the SDK's observable
instruments the state families would cost every export seconds of callbacks and hundreds of
megabytes of per-series storage at 10,000 targets (docs/performance.md).

With ``source`` (the bridge's :meth:`~.bridge.BridgeReader.collect_sdk`), the reader is not
registered with the SDK at all: it exports what the bridge's cumulative storage holds, so
every measurement is aggregated once, not once per reader (half the cost of recording a
check's metrics with OTLP on). That is only done when the exporter wants cumulative data,
the OTLP default (:meth:`PushReader.can_share`).

Collecting and encoding run on the reader's own thread with fine thread switching and no
cyclic GC (``otel_health.tuning``). A large export goes out in requests of at most
:data:`CHUNK_POINTS` data points, and the thread pauses after every :data:`PACE_POINTS` points
it makes or encodes and every few hundred series it collects (``tuning.Pacer``): busy a third
of the time in slices of a few milliseconds, it leaves the event loop the interpreter lock
most of the time: a pause between requests alone would leave the loop waiting for the lock for
as long as one request takes to make (docs/performance.md has the figures).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Metric,
    MetricExporter,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from ..logs import event
from ..tuning import Pacer, fine_switching, no_cyclic_gc, release_freed_memory
from . import wire
from .families import StateFamilies, merged

__all__ = ["CHUNK_POINTS", "PushReader"]

log = logging.getLogger("otel_health")

CHUNK_POINTS = 10_000
PACE_POINTS = 512  # points made or encoded between two pauses of a periodic export


class PushReader(MetricReader):
    """Exports every ``interval_s`` (default ``OTEL_METRIC_EXPORT_INTERVAL``) through ``exporter``:
    the SDK's data (from ``source`` when given, else as a reader of its own), with ``families``
    joined to the meter's ``scope`` under ``resource``."""

    def __init__(self, exporter: MetricExporter, *, families: StateFamilies | None = None,
                 resource: Resource | None = None, scope: InstrumentationScope | None = None,
                 interval_s: float | None = None, cardinality_limits: dict[type, int] | None = None,
                 source: Callable[[Callable[[], None] | None], MetricsData | None] | None = None) -> None:
        super().__init__(
            preferred_temporality=exporter._preferred_temporality,
            preferred_aggregation=exporter._preferred_aggregation,
            cardinality_limits=cardinality_limits,
        )
        env = os.environ
        self._interval = interval_s if interval_s else float(env.get("OTEL_METRIC_EXPORT_INTERVAL", "60000")) / 1000
        self._timeout_ms = float(env.get("OTEL_METRIC_EXPORT_TIMEOUT", "30000"))
        self._exporter = exporter
        self._source = source
        self._families = families
        self._resource = resource or Resource.get_empty()
        self._scope = scope or InstrumentationScope("otel_health")
        self._started_ns = time.time_ns()
        self._export_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otel-health-otlp-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._collect_now()
            except Exception as exc:  # noqa: BLE001 - the next round tries again; the exporter logs its own
                event(log, logging.WARNING, "otlp_metrics_round_failed", error=type(exc).__name__)

    @staticmethod
    def can_share(exporter: MetricExporter) -> bool:
        """Whether ``exporter`` takes what a cumulative reader holds: no delta temporality asked
        for. (An aggregation it prefers changes nothing here: both histograms have views.)"""
        preferred = exporter._preferred_temporality or {}
        return all(t is AggregationTemporality.CUMULATIVE for t in preferred.values())

    @property
    def shared(self) -> bool:
        return self._source is not None

    def _pacer(self) -> Pacer | None:
        """Pauses for a periodic export only: a flush or the last export at shutdown goes out
        at once, bounded by the export timeout alone."""
        return Pacer(self._stop) if threading.current_thread() is self._thread else None

    def _collect_now(self) -> None:
        pacer = self._pacer()
        families = self._families
        with fine_switching(), no_cyclic_gc():
            if self._source is not None:
                self._send(self._source(pacer.pause if pacer is not None else None), self._timeout_ms, pacer)
                return
            with families.bypassed() if families is not None else contextlib.nullcontext():
                self.collect(timeout_millis=self._timeout_ms)

    def _receive_metrics(self, metrics_data: MetricsData | None, timeout_millis: float = 10_000,
                         **kwargs: Any) -> None:
        self._send(metrics_data, timeout_millis, self._pacer())

    def _send(self, metrics_data: MetricsData | None, timeout_millis: float, pacer: Pacer | None) -> None:
        with self._export_lock:
            for chunk in _requests(self._parts(metrics_data), CHUNK_POINTS, pacer):
                self._exporter.export(chunk, timeout_millis=timeout_millis)
                if pacer is not None:
                    pacer.resume()  # sending waits on the network: no pause for it, nor after the last
            wire.forget_unused()  # attribute sets no series of this export used
        release_freed_memory()

    def _parts(self, sdk: MetricsData | None) -> Iterator[_Part]:
        """What one export sends, metric by metric: the state families first, in the meter's
        scope, their points made as the requests are (never all at once: docs/performance.md's
        performance section has what one export holds), then the SDK's metrics."""
        resource_metrics = list(sdk.resource_metrics) if sdk is not None else []
        if self._families is None:
            for rm in resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        yield _Part(rm, sm, metric.name, metric.description, metric.unit, metric.data)
            return
        home = next(((rm, sm) for rm in resource_metrics for sm in rm.scope_metrics
                     if sm.scope.name == self._scope.name), None)
        if home is None:  # no SDK data in the meter's scope: the families' own, in the first resource
            rm = resource_metrics[0] if resource_metrics else ResourceMetrics(self._resource, [], "")
            home = (rm, ScopeMetrics(self._scope, [], ""))
        now = time.time_ns()
        for family, points in self._families.collect():
            start = self._started_ns if family.counter else 0
            made = (NumberDataPoint(merged(attrs, extra), start, now, value) for attrs, extra, value in points)
            yield _Part(home[0], home[1], family.name, family.description, family.unit, points=made,
                        counter=family.counter)
        for rm in resource_metrics:
            for sm in rm.scope_metrics:
                for each in sm.metrics if sm is not home[1] else map(self._current_only, sm.metrics):
                    if each is not None:
                        yield _Part(rm, sm, each.name, each.description, each.unit, each.data)

    def _current_only(self, metric: Metric) -> Metric | None:
        """``metric`` without the points of removed targets, or of labels a reload changed: the
        SDK keeps cumulative series until restart, and sending them would keep them alive in
        the Collector for good."""
        if self._families is None or not metric.name.startswith("tta_service_"):
            return metric
        points = [p for p in metric.data.data_points if self._families.current(p.attributes or {})]
        if len(points) == len(metric.data.data_points):
            return metric
        return Metric(metric.name, metric.description, metric.unit, _with_points(metric.data, points)) if points \
            else None

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        self._collect_now()
        return self._exporter.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout_millis / 1000)
        with contextlib.suppress(Exception):
            self._collect_now()
        self._exporter.shutdown(timeout_millis=timeout_millis)


class _Part(NamedTuple):
    """One metric of an export, in its resource and scope: the SDK's (``data``), or a state
    family's (``points``, made as they are read)."""

    rm: ResourceMetrics
    sm: ScopeMetrics
    name: str
    description: str | None
    unit: str | None
    data: Any = None
    points: Iterator[NumberDataPoint] | None = None
    counter: bool = False


class _Paced(list):  # type: ignore[type-arg]
    """A request's points: a list, iterated (by the encoder) with the pacer's pauses."""

    __slots__ = ("_pacer",)

    def __init__(self, points: Iterable[Any], pacer: Pacer) -> None:
        super().__init__(points)
        self._pacer = pacer

    def __iter__(self) -> Iterator[Any]:
        return self._pacer.every(super().__iter__(), PACE_POINTS)


def _requests(parts: Iterable[_Part], limit: int, pacer: Pacer | None = None) -> Iterator[MetricsData]:
    """``parts`` in requests of at most ``limit`` data points (a metric's points may be split),
    made and encoded with ``pacer``'s pauses when given."""
    batch: list[tuple[ResourceMetrics, ScopeMetrics, Metric]] = []
    size = 0
    for part in parts:
        points: Iterator[Any] = part.points if part.points is not None else iter(part.data.data_points)
        if pacer is not None and part.points is not None:
            points = pacer.every(points, PACE_POINTS)  # the families' points are made as they are read
        while True:
            taken = itertools.islice(points, limit - size if size else limit)
            piece: list[Any] = list(taken) if pacer is None else _Paced(taken, pacer)
            if not piece:
                break
            payload = _with_points(part.data, piece) if part.points is None else \
                (Sum(piece, AggregationTemporality.CUMULATIVE, True) if part.counter else Gauge(piece))
            batch.append((part.rm, part.sm, Metric(part.name, part.description, part.unit, payload)))
            size += len(piece)
            if size >= limit:
                yield _assemble(batch)
                batch, size = [], 0
    if batch:
        yield _assemble(batch)


def _chunks(data: MetricsData, limit: int) -> Iterator[MetricsData]:
    """``data`` in requests of at most ``limit`` data points (a metric's points may be split)."""
    return _requests((_Part(rm, sm, m.name, m.description, m.unit, m.data) for rm in data.resource_metrics
                      for sm in rm.scope_metrics for m in sm.metrics), limit)


def _with_points(data: Any, points: list[Any]) -> Any:
    if isinstance(data, Gauge):
        return Gauge(points)
    if isinstance(data, Sum):
        return Sum(points, data.aggregation_temporality, data.is_monotonic)
    if isinstance(data, HistogramData):
        return HistogramData(points, data.aggregation_temporality)
    return data


def _assemble(parts: list[tuple[ResourceMetrics, ScopeMetrics, Metric]]) -> MetricsData:
    resources: dict[int, tuple[ResourceMetrics, dict[int, tuple[ScopeMetrics, list[Metric]]]]] = {}
    for rm, sm, metric in parts:
        scopes = resources.setdefault(id(rm), (rm, {}))[1]
        scopes.setdefault(id(sm), (sm, []))[1].append(metric)
    return MetricsData([ResourceMetrics(rm.resource, [ScopeMetrics(sm.scope, metrics, sm.schema_url)
                                                      for sm, metrics in scopes.values()], rm.schema_url)
                        for rm, scopes in resources.values()])
