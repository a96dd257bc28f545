"""Debounced state: down after N consecutive failures, up after M consecutive successes."""

from __future__ import annotations

import dataclasses

import pytest

from otel_health.state import StateStore


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
