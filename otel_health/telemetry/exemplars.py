"""An exemplar reservoir that costs nothing until a measurement is offered to it.

The SDK gives every histogram series a reservoir of one bucket object per histogram bucket
(15 here), and every counter series one of its own, each with a lock; every collection
walks them all. Exemplars come only with the checks whose traces are kept (failed or slow:
``Telemetry.record``), so at 20,000 targets nearly all of those reservoirs are empty, and
walking them took a third of a collection. :class:`LatestPerBucket` keeps what the SDK's
``AlignedHistogramBucketExemplarReservoir`` keeps (the latest measurement offered in each
bucket since the last collection; one bucket for a counter) and holds nothing until then
(``tests/unit/telemetry/test_exemplars.py`` holds it to the SDK's reservoir).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import Exemplar, ExemplarReservoir
from opentelemetry.util.types import Attributes

__all__ = ["LatestPerBucket", "latest_per_bucket"]

# One lock for all reservoirs: offers are rare (failed or slow checks), and a collection
# takes it only for a reservoir that holds something.
_LOCK = threading.Lock()

# (value, time, measurement attributes, span id, trace id) of the latest offer in a bucket
_Held = tuple[float, int, Attributes, int | None, int | None]


class LatestPerBucket(ExemplarReservoir):
    """The latest measurement offered in each bucket of ``boundaries`` (one bucket without)."""

    def __init__(self, boundaries: Sequence[float] = (), **kwargs: Any) -> None:
        self._boundaries = boundaries
        self._held: dict[int, _Held] | None = None

    def offer(self, value: float, time_unix_nano: int, attributes: Attributes, context: Context) -> None:
        # The bucket a value falls in, as the SDK's histograms count it: value <= boundary.
        bounds = self._boundaries
        index = bisect.bisect_left(bounds, value) if bounds and value == value else len(bounds)  # NaN: the last
        span_id = trace_id = None
        span = trace.get_current_span(context)
        if span != trace.INVALID_SPAN:
            span_context = span.get_span_context()
            span_id, trace_id = span_context.span_id, span_context.trace_id
        with _LOCK:
            held = self._held if self._held is not None else {}
            held[index] = (value, time_unix_nano, attributes, span_id, trace_id)
            self._held = held

    def collect(self, point_attributes: Attributes) -> list[Exemplar]:
        if self._held is None:
            return []
        with _LOCK:
            held, self._held = self._held, None
        if not held:
            return []
        exemplars = []
        for index in sorted(held):
            value, time_unix_nano, attributes, span_id, trace_id = held[index]
            # What the point's own attributes do not say already (the SDK's rule).
            filtered = ({k: v for k, v in attributes.items() if point_attributes is None or k not in point_attributes}
                        if attributes else None)
            exemplars.append(Exemplar(filtered, value, time_unix_nano, span_id, trace_id))
        return exemplars


def latest_per_bucket(aggregation_type: type) -> Callable[..., ExemplarReservoir]:
    """A View's ``exemplar_reservoir_factory``: :class:`LatestPerBucket` for every aggregation."""
    return LatestPerBucket
