"""The exemplar reservoir against the SDK's: the same exemplars for any sequence of offers."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import AlignedHistogramBucketExemplarReservoir
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_health.telemetry.exemplars import LatestPerBucket
from otel_health.telemetry.instruments import CHECK_DURATION_BUCKETS

POINT = {"service": "api", "environment": "prod"}


def _context(trace_id: int | None) -> Context:
    if trace_id is None:
        return Context()
    span = NonRecordingSpan(SpanContext(trace_id, trace_id & 0xFFFF_FFFF_FFFF or 1, False, TraceFlags(1)))
    return trace.set_span_in_context(span, Context())


offers = st.lists(st.tuples(
    st.one_of(st.floats(min_value=0, max_value=60, allow_nan=False), st.sampled_from(CHECK_DURATION_BUCKETS),
              st.integers(min_value=0, max_value=40)),
    # The trace-based exemplar filter offers only measurements made inside a sampled span.
    st.integers(min_value=1, max_value=2**128 - 1),
    st.sampled_from([POINT, {**POINT, "outcome": "down"}, {}]),
), max_size=30)


def _exemplars(reservoir: Any, point: Any) -> list[tuple[Any, ...]]:
    return [(e.value, e.time_unix_nano, e.filtered_attributes, e.span_id, e.trace_id)
            for e in reservoir.collect(point)]


@settings(max_examples=300, deadline=None)
@given(rounds=st.lists(offers, min_size=1, max_size=3), bounded=st.booleans())
def test_latest_per_bucket_keeps_what_the_sdks_aligned_reservoir_keeps(rounds: list[Any], bounded: bool) -> None:
    bounds = CHECK_DURATION_BUCKETS if bounded else ()
    ours, theirs = LatestPerBucket(boundaries=bounds), AlignedHistogramBucketExemplarReservoir(boundaries=bounds)
    clock = 0
    for offered in rounds:  # each round ends with a collection, which empties both
        for value, trace_id, attributes in offered:
            clock += 1
            for reservoir in (ours, theirs):
                reservoir.offer(value, clock, attributes, _context(trace_id))
        assert _exemplars(ours, POINT) == _exemplars(theirs, POINT)
    assert _exemplars(ours, POINT) == []


def test_an_empty_reservoir_holds_nothing_and_a_counter_keeps_its_latest() -> None:
    counter = LatestPerBucket()
    assert counter.collect(POINT) == []
    assert counter._held is None
    counter.offer(1, 10, POINT, _context(7))
    counter.offer(1, 11, {**POINT, "outcome": "down"}, _context(9))
    (only,) = counter.collect(POINT)
    assert (only.time_unix_nano, only.trace_id, only.filtered_attributes) == (11, 9, {"outcome": "down"})
    assert counter.collect(POINT) == [] and counter._held is None


def test_an_offer_without_a_span_names_no_trace_where_the_sdk_repeats_the_last_one() -> None:
    # Not reached through the trace-based filter; the SDK's bucket keeps the ids of an earlier offer.
    ours, theirs = LatestPerBucket(), AlignedHistogramBucketExemplarReservoir(boundaries=())
    for reservoir in (ours, theirs):
        reservoir.offer(1, 1, POINT, _context(5))
        reservoir.offer(2, 2, POINT, _context(None))
    assert _exemplars(ours, POINT) == [(2, 2, {}, None, None)]
    assert _exemplars(theirs, POINT) == [(2, 2, {}, 5, 5)]
