"""Debounced state: down after N consecutive failures, up after M consecutive successes."""

from __future__ import annotations

import collections
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_health.errors import ErrorType
from otel_health.state import HISTORY_SIZE, History, HistoryEntry, StateStore


@pytest.mark.parametrize(
    ("n", "m", "outcomes", "expected"),
    [
        (1, 1, "UDUD", "UDUD"),
        (3, 1, "UDDUDDDU", "UUUUUUDU"),
        (2, 2, "UDDUDUUD", "UUDDDDUU"),
        (1, 3, "DUUDUUU", "DDDDDDU"),
    ],
)
def test_debounce_follows_n_failures_and_m_successes(make_target, make_result, n: int, m: int, outcomes: str,
                                                     expected: str) -> None:
    target = dataclasses.replace(make_target("flip"), failure_threshold=n, success_threshold=m)
    store = StateStore()
    store.set_targets([target])
    state = store.get(target.key)
    got = ""
    for outcome in outcomes:
        state.update(make_result(up=outcome == "U"))
        got += "U" if state.debounced_up else "D"
    assert got == expected
    assert [entry.up for entry in state.history] == [o == "U" for o in outcomes]


def test_history_is_bounded_and_kept_across_reloads(make_target, make_result) -> None:
    store = StateStore()
    target = make_target("a")
    store.set_targets([target])
    for _ in range(50):
        store.get(target.key).update(make_result())
    assert len(store.get(target.key).history) == 20
    changed = dataclasses.replace(target, interval=30.0)
    store.set_targets([changed])
    assert len(store.get(target.key).history) == 20
    assert store.get(target.key).result is not None


def test_what_a_target_says_of_itself_is_held_so_a_value_changing_every_check_mints_no_series(
    make_target, make_result,
) -> None:
    from otel_health.state import INFO_HOLD

    store = StateStore()
    target = make_target("api")
    store.set_targets([target])
    state = store.get(target.key)
    start = 1_000_000.0
    reported = []
    for i in range(120):  # a build id that changes on every check, every second, for two minutes
        state.update(make_result(version=f"build-{i}", started_at=start + i))
        reported.append(state.reported[0])
    assert len(set(reported)) == 1 + int(119 // INFO_HOLD)  # one new value a minute at most, not 120
    state.update(make_result(up=False, started_at=start + 200))  # a failed check says nothing
    assert state.reported[0] == reported[-1]
    state.update(make_result(version="2.0", info={"role": "primary"}, started_at=start + 400))
    assert state.reported == ("2.0", (("role", "primary"),))  # a change after a quiet minute shows at once


history_entries = st.builds(
    HistoryEntry,
    started_at=st.floats(min_value=0, max_value=4e9), duration=st.floats(min_value=0, max_value=600),
    up=st.booleans(),
    error_type=st.one_of(st.none(), st.sampled_from([str(e) for e in ErrorType]), st.text(max_size=8)),
    detail=st.text(max_size=20), status_code=st.one_of(st.none(), st.integers(min_value=100, max_value=599)),
    attempts=st.integers(min_value=1, max_value=10), slow=st.booleans(),
    trace_id=st.one_of(st.none(), st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)),
    debounced_up=st.booleans(), lag=st.floats(min_value=0, max_value=60),
)


@settings(max_examples=200, deadline=None)
@given(entries=st.lists(history_entries, max_size=60))
def test_the_packed_history_reads_back_what_a_bounded_deque_would_hold(entries: list[HistoryEntry]) -> None:
    packed, reference = History(), collections.deque(maxlen=HISTORY_SIZE)
    for entry in entries:
        packed.append(entry)
        reference.append(entry)
        assert len(packed) == len(reference)
    assert list(packed) == list(reference)
    assert list(reversed(packed)) == list(reversed(reference))
    if reference:
        assert packed[-1] == reference[-1] and packed[0] == reference[0]
    with pytest.raises(IndexError):
        packed[len(reference)]
