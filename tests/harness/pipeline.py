"""The collector's telemetry wiring without its server and scheduler, for unit tests and benchmarks.

Built in the collector's order: the state store, its families, the readers made with the
families in hand, then the instruments. :meth:`Pipeline.record` records a result the way
the collector does: in the store, then in telemetry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import Span

from otel_health.config import Target
from otel_health.result import CheckResult
from otel_health.state import StateStore
from otel_health.telemetry import KeepPolicy, StateFamilies, Telemetry, make_resource


class Pipeline:
    def __init__(self, readers: Callable[[StateFamilies, Resource], Sequence[MetricReader]], *,
                 span_processors: Sequence[SpanProcessor] = (), skipped: Callable[[tuple[str, str]], int] = lambda _: 0,
                 keep: KeepPolicy | None = None) -> None:
        self.store = StateStore()
        self.families = StateFamilies(self.store, skipped)
        self.resource = make_resource()
        self.readers = list(readers(self.families, self.resource))
        self.telemetry = Telemetry(families=self.families, metric_readers=self.readers,
                                   span_processors=span_processors, resource=self.resource,
                                   keep=keep or KeepPolicy(100))

    def set_targets(self, targets: Iterable[Target]) -> None:
        targets = list(targets)
        self.store.set_targets(targets)
        self.telemetry.retain(self.store.attributes())

    def record(self, target: Target, result: CheckResult, span: Span | None = None, lag: float = 0.0) -> bool:
        """Record as the collector does; False when the target is not configured as it is."""
        state = self.store.current(target)
        if state is None:
            return False
        self.store.update(state, result, self.telemetry.kept_trace_id(span, result), lag)
        self.telemetry.record(state.attrs, result, span, state.suppressed)
        return True


def sdk_series(reader: MetricReader) -> dict[str, list[dict[str, Any]]]:
    """Every series ``reader``'s SDK storage holds, by instrument name: their attributes."""
    storage = reader._collect.__self__._reader_storages[reader]  # type: ignore[attr-defined]
    return {instrument.name: [dict(a._attributes or {}) for view in views
                              for a in view._attributes_aggregation.values()]
            for instrument, views in storage._instrument_view_instrument_matches.items()}
