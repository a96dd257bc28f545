"""The day kept per target (two bits a minute) and the status page rendered from the store."""

from __future__ import annotations

import dataclasses
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from otel_health import status
from otel_health.days import DAY_MINUTES, Day
from otel_health.errors import ErrorType
from otel_health.ledger import uptimes
from otel_health.state import StateStore
from tests.harness.clock import at

MINUTE = 60.0
NOW = at("2026-12-06T00:00:30Z")  # half a minute into a day: the bar spans two dates


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4 * DAY_MINUTES), st.integers(1, 3)), max_size=60),
       st.integers(-3 * DAY_MINUTES, 3 * DAY_MINUTES))
def test_the_day_holds_the_worst_check_of_each_minute_of_the_last_24_hours(marks: list[tuple[int, int]],
                                                                          later: int) -> None:
    """Against the plainest reference: every mark kept, the worst per minute, read back for the
    24 hours up to the newest minute marked; marks older than that day are ignored."""
    day = Day()
    kept: dict[int, int] = {}
    newest = -1
    for minute, state in marks:
        day.mark(minute * MINUTE + 30, state)
        if minute > newest - DAY_MINUTES:  # the day ends at the newest mark seen so far
            kept[minute] = max(kept.get(minute, 0), state)
            newest = max(newest, minute)
    now_minute = max(newest, 0) + later  # read minutes or days after the last check (or, clocks, before)
    expected = [kept.get(m, 0) if m > newest - DAY_MINUTES else 0
                for m in range(now_minute - DAY_MINUTES + 1, now_minute + 1)]
    assert list(day.minutes(now_minute * MINUTE + 59)) == expected


def test_a_day_costs_a_few_hundred_bytes() -> None:
    day = Day()
    for minute in range(DAY_MINUTES):
        day.mark(minute * MINUTE, Day.UP)
    assert sys.getsizeof(day._bits) <= 420  # 1,440 minutes at two bits: 360 bytes and the header


def _store(make_target, make_result):  # type: ignore[no-untyped-def]
    evil = "<script>alert(1)</script>"
    target = dataclasses.replace(make_target(f"api{evil}", labels=(("group", f"g{evil}"), ("team", evil))))
    store = StateStore()
    store.set_targets([target, make_target("quiet")])
    state = store.get(target.key)
    assert state is not None
    now = NOW
    store.update(state, make_result(up=True, version=evil, started_at=now - 120))
    store.update(state, make_result(up=False, error_type=ErrorType.ASSERTION, detail=f"body lacks {evil}",
                                    started_at=now - 60), trace_id="ab" * 16)
    return store, now


def test_what_targets_and_operators_say_is_shown_as_text_never_as_markup(make_target, make_result) -> None:
    store, now = _store(make_target, make_result)
    html = status.render(store.snapshot(), now=now, trace_url="https://ui.example/trace/{trace_id}",
                         title="Ops <b>status</b>")
    assert html.count("<script") == 1  # the page's own
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<title>Ops &lt;b&gt;status&lt;/b&gt;</title>" in html
    assert 'href="https://ui.example/trace/' + "ab" * 16 + '"' in html  # the failed check links to its trace
    assert "not yet" in html  # a target never checked


def test_the_day_bar_has_half_hour_slots_and_uptime_counts_the_minutes_checked(make_target, make_result) -> None:
    store, now = _store(make_target, make_result)
    state = next(s for s in store.snapshot() if s.target.name != "quiet")
    cells = status._day(state.day.minutes(now), status._slot_labels(now))
    assert len(cells) == status.SLOTS
    assert uptimes(state, now)["24h"] == 0.5  # one minute up, one down
    assert cells[-1].state in ("down", "up") and cells[0].state == "no-check"


def test_a_large_stack_lists_what_needs_a_look_and_says_what_it_left_out(make_target, make_result) -> None:
    targets = [make_target(f"svc-{i}") for i in range(status.LIMIT + 10)]
    store = StateStore()
    store.set_targets(targets)
    now = NOW
    for i, state in enumerate(store.snapshot()):
        if i < status.LIMIT + 5:  # five never checked
            store.update(state, make_result(up=i % 100 != 0, started_at=now - 30))
    page = status.render(store.snapshot(), now=now)
    listed = page.count('class="target ')
    assert listed == 6 + 5  # the six down, the five not checked yet
    assert f"{status.LIMIT + 10 - listed} healthy targets are not listed" in page and 'href="?all=1"' in page
    assert status.render(store.snapshot(), now=now, every=True).count('class="target ') == status.LIMIT + 10
