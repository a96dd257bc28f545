"""The SDK's collection of a cumulative reader's storage, made with pauses.

``MetricReader.collect()`` walks every series of an instrument in one go while holding the
interpreter lock: at 20,000 targets a third of a second of CPU, on a worker thread beside the
event loop, twice every 15 s (the scrape's render and the OTLP export). Meanwhile each
callback of the loop waits for the lock, and checks falling due start late. :func:`collect`
walks the same storage the same way and hands back the same ``MetricsData``, calling
``pause()`` after every ``every`` series so the loop gets the lock back.

It reads the SDK's private storage (``SynchronousMeasurementConsumer`` and
``MetricReaderStorage``, opentelemetry-sdk pinned in ``pyproject.toml``);
``tests/unit/telemetry/test_collect.py`` holds it to the SDK's own collection. Anything it does not
know (another consumer, delta temporality, an unknown aggregation) goes to the SDK's own
``collect`` instead: :func:`collect` says it did not, and the caller collects as before.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.metrics import CallbackOptions
from opentelemetry.sdk.metrics import Counter, ObservableCounter
from opentelemetry.sdk.metrics._internal.aggregation import (
    _DropAggregation,
    _ExplicitBucketHistogramAggregation,
    _LastValueAggregation,
    _SumAggregation,
)
from opentelemetry.sdk.metrics._internal.measurement_consumer import SynchronousMeasurementConsumer
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)

__all__ = ["EVERY", "collect", "forget"]

EVERY = 500  # series collected between two pauses


class _NotOurs(Exception):
    """Storage this walk does not know: the SDK's own collect does it."""


def collect(reader: MetricReader, pause: Callable[[], None], every: int = EVERY) -> tuple[bool, MetricsData | None]:
    """(done, data): ``reader``'s cumulative storage collected as ``reader.collect()`` would
    hand it over, with ``pause()`` after every ``every`` series; (False, None) when the SDK's
    own ``collect`` must do it."""
    consumer = getattr(getattr(reader, "_collect", None), "__self__", None)
    if type(consumer) is not SynchronousMeasurementConsumer:
        return False, None
    try:
        return True, _collect(consumer, reader, pause, every)
    except _NotOurs:
        return False, None


def forget(reader: MetricReader, keep: Callable[[Mapping[str, Any]], bool]) -> int | None:
    """Drop from ``reader``'s storage every series whose attributes ``keep`` refuses; the
    number dropped, or None for a storage this module does not know (nothing is dropped).

    The SDK never forgets a cumulative series: without this, each target a reload removed
    would hold its counters and histograms until restart, and under discovery churn they
    would fill the cardinality limit (fixed at start) until new targets' series fold into
    the overflow series. A series dropped and measured again starts over from zero with a
    new start time, as a reset counter does. Call it on the thread that records.
    """
    consumer = getattr(getattr(reader, "_collect", None), "__self__", None)
    if type(consumer) is not SynchronousMeasurementConsumer:
        return None
    storage = consumer._reader_storages.get(reader)
    if storage is None:
        return None
    with storage._lock:
        matches = [view for views in storage._instrument_view_instrument_matches.values() for view in views]
    dropped = 0
    for view in matches:
        with view._lock:
            held = view._attributes_aggregation
            gone = [key for key, aggregation in held.items() if not keep(aggregation._attributes or {})]
            for key in gone:
                del held[key]
            dropped += len(gone)
    return dropped


def _collect(consumer: SynchronousMeasurementConsumer, reader: MetricReader, pause: Callable[[], None],
             every: int) -> MetricsData | None:
    storage = consumer._reader_storages.get(reader)
    if storage is None:
        raise _NotOurs
    cumulative = AggregationTemporality.CUMULATIVE
    if any(t is not cumulative for t in storage._instrument_class_temporality.values()):
        raise _NotOurs
    with consumer._lock:
        for observable in consumer._async_instruments:  # as the SDK does (silent while bypassed)
            for measurement in observable.callback(CallbackOptions()):
                storage.consume_measurement(measurement, consumer._sdk_config.exemplar_filter.should_sample(
                    measurement.value, measurement.time_unix_nano, measurement.attributes, measurement.context))
        start = time.time_ns()
        scopes: dict[Any, list[Metric]] = {}
        count = itertools.count(1)
        with storage._lock:
            matches = list(storage._instrument_view_instrument_matches.items())
        for instrument, views in matches:
            metrics: list[Metric] = []
            for view in views:
                kind = type(view._aggregation)
                if kind is _DropAggregation:
                    continue
                if kind not in (_SumAggregation, _LastValueAggregation, _ExplicitBucketHistogramAggregation):
                    raise _NotOurs
                with view._lock:
                    aggregations = list(view._attributes_aggregation.values())
                points = []
                for aggregation in aggregations:
                    point = aggregation.collect(cumulative, start)
                    if point is not None:
                        points.append(point)
                    if next(count) % every == 0:
                        pause()
                if not points:
                    continue
                if kind is _SumAggregation:
                    data: Any = Sum(points, cumulative, isinstance(instrument, (Counter, ObservableCounter)))
                elif kind is _LastValueAggregation:
                    data = Gauge(points)
                else:
                    data = Histogram(points, cumulative)
                metrics.append(Metric(view._name, view._description, view._instrument.unit, data))
            if metrics:
                scopes.setdefault(instrument.instrumentation_scope, []).extend(metrics)
    if not scopes:
        return None
    resource = storage._sdk_config.resource
    return MetricsData([ResourceMetrics(resource, [ScopeMetrics(scope, metrics, scope.schema_url)
                                                   for scope, metrics in scopes.items()], resource.schema_url)])
