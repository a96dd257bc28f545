"""The history store (otel_health/history.py) against a real SQLite file in a temporary folder,
on a clock the test sets: what a restart gives back, the roll-up to hours after a week and the
retention, a file that cannot be written (never a stall), and a process killed mid-write."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from otel_health.config.loader import load_text
from otel_health.days import DAY_MINUTES, Day, Past, day_counts, merge_max, pack_minutes, unpack_minutes
from otel_health.history import FILE, Archive
from otel_health.ledger import uptimes
from otel_health.probes import PROBES
from otel_health.state import StateStore, TargetState
from tests.harness.clock import SetClock, at

MIDNIGHT = at("2031-03-10T00:00:00Z")  # a UTC day's start
DAY = int(MIDNIGHT // 86400)


def _store(*names: str) -> StateStore:
    text = "targets:\n" + "".join(f"  - {{name: {n}, kind: tcp, host: 127.0.0.1, port: 1}}\n" for n in names)
    store = StateStore()
    store.set_targets(load_text(text, "t.yaml", PROBES).targets)
    return store


def _state(store: StateStore, name: str) -> TargetState:
    return next(s for s in store.snapshot() if s.target.name == name)


def test_past_days_are_kept_in_order_and_bounded() -> None:
    past = Past()
    for day, up in ((10, 5), (8, 3), (9, 4), (10, 6)):
        past.add(day, up, 10)
    assert len(past) == 3 and past.has(9) and not past.has(7)
    assert past.since(9, 11) == (10, 20) and past.since(0, 9) == (3, 10)
    for day in range(1000):
        past.add(day, 1, 1)
    assert len(past) == 366 and past.since(0, 1000) == (366, 366)


def test_a_day_ring_packs_unpacks_and_is_adopted_whole_or_merged() -> None:
    states = bytes([0] * 100 + [1] * 2000 + [3] * 5 + [0] * 775)  # two days of minutes from DAY-1's start
    first = (DAY - 1) * DAY_MINUTES
    ring, last = pack_minutes(first, states)
    assert last == first + 2104
    oldest, minutes = unpack_minutes(ring, last)
    assert oldest == last - DAY_MINUTES + 1 and minutes == states[2105 - DAY_MINUTES:2105]
    fresh = Day()
    fresh.adopt(ring, last)
    assert fresh.minutes((last + 1) * 60.0 - 1) == states[2105 - DAY_MINUTES:2105]
    own = Day()
    own.mark((last + 1) * 60.0, Day.SLOW)  # checked once before the load came
    own.adopt(ring, last)
    assert own.minutes((last + 1) * 60.0)[-6:] == bytes([3] * 5 + [2])
    assert pack_minutes(first, bytes(10)) == (bytes(DAY_MINUTES // 4), -1)


def test_packing_and_merging_in_c_agree_with_marking_minute_by_minute() -> None:
    rng = random.Random(3)
    for trial in range(50):
        first = (DAY - 1) * DAY_MINUTES + rng.randrange(DAY_MINUTES)
        states = bytes(rng.choice((0, 0, 1, 1, 1, 2, 3)) for _ in range(rng.randrange(1, 3 * DAY_MINUTES)))
        reference = Day()
        for i, state in enumerate(states):
            if state:
                reference.mark((first + i) * 60.0, state)
        assert pack_minutes(first, states) == reference.raw(), trial
        other = bytes(rng.randrange(4) for _ in range(len(states)))
        assert merge_max(states, other) == bytes(map(max, states, other))
        # a day with marks of its own adopting a loaded one: as if both had been marked
        own, both = Day(), Day()
        later = first + len(states) + rng.randrange(-DAY_MINUTES, DAY_MINUTES)
        own.mark(later * 60.0, Day.SLOW)
        for day in (both,):
            for i, state in enumerate(states):
                if state:
                    day.mark((first + i) * 60.0, state)
            day.mark(later * 60.0, Day.SLOW)
        own.adopt(*pack_minutes(first, states))
        newest = max(later, reference.raw()[1]) * 60.0
        assert own.minutes(newest) == both.minutes(newest), trial


def _mark(state: TargetState, start: float, minutes: int, mark: int) -> None:
    for m in range(minutes):
        state.day.mark(start + m * 60, mark)


async def test_a_restart_gets_the_day_and_the_days_before_it_back(tmp_path: Path) -> None:
    clock = SetClock(MIDNIGHT - 86400 + 600)  # yesterday, 00:10
    store = _store("api", "db")
    archive = Archive(tmp_path, clock=clock)
    await archive.load(store.snapshot())
    api = _state(store, "api")
    _mark(api, clock(), 60, Day.UP)
    _mark(api, clock() + 3600, 30, Day.DOWN)
    await archive.write(store.snapshot)
    clock.set(MIDNIGHT + 1800)  # today, 00:30: yesterday is over
    _mark(api, MIDNIGHT, 20, Day.SLOW)
    await archive.write(store.snapshot)
    assert api.past.since(DAY - 1, DAY) == (60, 90)  # yesterday's counts, given when it ended
    await archive.close(store.snapshot)

    again = _store("api", "db", "new")
    restarted = Archive(tmp_path, clock=clock)
    await restarted.load(again.snapshot())
    back = _state(again, "api")
    assert back.day.minutes(clock()) == api.day.minutes(clock())
    assert back.past.since(DAY - 1, DAY) == (60, 90)
    shares = uptimes(back, clock())
    # the last 24 hours start at yesterday's 00:31: 39 of its up minutes, its 30 down, today's 20 slow
    assert shares["24h"] == pytest.approx(59 / 89)
    assert shares["7d"] == shares["90d"] == pytest.approx(80 / 110)  # yesterday whole, from the store
    assert uptimes(_state(again, "new"), clock()) == {"24h": None, "7d": None, "30d": None, "90d": None}
    await restarted.close(again.snapshot)


async def test_days_older_than_a_week_become_hours_and_go_after_the_retention(tmp_path: Path) -> None:
    clock = SetClock(MIDNIGHT)
    store = _store("api")
    archive = Archive(tmp_path, days=20, clock=clock)
    await archive.load(store.snapshot())
    for day in range(30):  # one hour a day: up for 50 minutes, down for 10
        clock.set(MIDNIGHT + day * 86400 + 7200)
        api = _state(store, "api")
        _mark(api, MIDNIGHT + day * 86400 + 3600, 50, Day.UP)
        _mark(api, MIDNIGHT + day * 86400 + 3600 + 3000, 10, Day.DOWN)
        await archive.write(store.snapshot)
    await archive.close(store.snapshot)
    db = sqlite3.connect(tmp_path / FILE)
    minutes = [d for (d,) in db.execute("SELECT day FROM minutes ORDER BY day")]
    hours = [d for (d,) in db.execute("SELECT day FROM hours ORDER BY day")]
    db.close()
    today = DAY + 29
    assert minutes == list(range(today - 6, today + 1))  # a week by the minute
    assert hours == list(range(today - 19, today - 6))  # then hours, up to the 20 days kept
    again = _store("api")
    await Archive(tmp_path, days=20, clock=clock).load(again.snapshot())
    past = _state(again, "api").past
    assert past.since(0, today) == (19 * 50, 19 * 60)  # the same counts from hours as from minutes
    assert uptimes(_state(again, "api"), clock())["30d"] == pytest.approx(50 / 60)


async def test_a_file_that_cannot_be_written_is_a_warning_and_a_count_never_a_stall(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="otel_health.history")
    clock = SetClock(MIDNIGHT + 600)
    store = _store("api")
    archive = Archive(tmp_path, clock=clock)
    await archive.load(store.snapshot())
    _mark(_state(store, "api"), clock() - 300, 5, Day.UP)  # the five minutes before now
    holder = sqlite3.connect(tmp_path / FILE, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the file
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.get_running_loop().create_task(ticking())
    try:
        await archive.write(store.snapshot)  # waits for the lock (2 s), on a thread
        await archive.write(store.snapshot)
    finally:
        ticker.cancel()
    assert archive.failures == 2 and ticks > 50  # the loop ran on meanwhile
    warned = [r for r in caplog.records if r.getMessage() == "history_write_failed"]
    assert len(warned) == 1 and "database is locked" in warned[0].fields["reason"]  # type: ignore[attr-defined]
    holder.execute("ROLLBACK")
    holder.close()
    await archive.write(store.snapshot)
    assert [r.getMessage() for r in caplog.records][-1] == "history_write_recovered"
    await archive.close(store.snapshot)
    again = _store("api")
    await Archive(tmp_path, clock=clock).load(again.snapshot())
    assert day_counts(_state(again, "api").day.minutes(clock())) == (5, 5)  # what was missed, written later


async def test_a_file_that_is_not_a_database_is_set_aside_and_a_new_one_begun(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="otel_health.history")
    (tmp_path / FILE).write_bytes(b"not a database, but 100 bytes of something" * 3)
    clock = SetClock(MIDNIGHT + 600)
    store = _store("api")
    archive = Archive(tmp_path, clock=clock)
    await archive.load(store.snapshot())
    assert [r.getMessage() for r in caplog.records] == ["history_read_failed", "history_set_aside"]
    assert (tmp_path / f"{FILE}.unreadable").read_bytes().startswith(b"not a database")
    await archive.load(store.snapshot())  # the next minute: a new file
    _mark(_state(store, "api"), clock() - 120, 2, Day.UP)
    await archive.write(store.snapshot)
    await archive.close(store.snapshot)
    again = _store("api")
    await Archive(tmp_path, clock=clock).load(again.snapshot())
    assert day_counts(_state(again, "api").day.minutes(clock())) == (2, 2)


async def test_a_damaged_row_sets_the_file_aside_rather_than_stopping_the_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="otel_health.history")
    clock = SetClock(MIDNIGHT + 600)
    store = _store("api")
    archive = Archive(tmp_path, clock=clock)
    await archive.load(store.snapshot())
    _mark(_state(store, "api"), clock() - 120, 2, Day.UP)
    await archive.close(store.snapshot)
    db = sqlite3.connect(tmp_path / FILE)
    db.execute("UPDATE minutes SET states = x'00ff'")  # not zlib any more
    db.commit()
    db.close()
    await Archive(tmp_path, clock=clock).load(_store("api").snapshot())
    assert [r.getMessage() for r in caplog.records] == ["history_read_failed", "history_set_aside"]
    assert (tmp_path / f"{FILE}.unreadable").exists()


def test_a_process_killed_mid_write_leaves_a_whole_file(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import asyncio, sys
        from otel_health.config.loader import load_text
        from otel_health.history import Archive
        from otel_health.probes import PROBES
        from otel_health.errors import ErrorType
        from otel_health.result import CheckResult
        from otel_health.state import StateStore
        from tests.harness.clock import SetClock

        async def main():
            text = "targets:\\n" + "".join(f"  - {{{{name: t{{i}}, kind: tcp, host: 127.0.0.1, port: 1, "
                                          "slo: {{objective: 99%}}}}\\n" for i in range(2000))
            store = StateStore()
            store.set_targets(load_text(text, "t.yaml", PROBES).targets)
            clock = SetClock({MIDNIGHT})
            archive = Archive(__import__("pathlib").Path(sys.argv[1]), clock=clock)
            await archive.load(store.snapshot())
            n = 0
            while True:
                n += 1
                up = n % 4 != 0  # incidents and SLO tallies written too
                for state in store.snapshot():
                    store.update(state, CheckResult(up=up, duration=0.0, started_at={MIDNIGHT} + n * 60,
                                                    error_type=None if up else ErrorType.TIMEOUT))
                await archive.write(store.snapshot)
                print(n, flush=True)
        asyncio.run(main())
    """)
    process = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[2], env={**os.environ, "PYTHONPATH": "."})
    try:
        assert process.stdout is not None
        for _ in range(5):  # five whole writes (an incident in the fourth), then killed somewhere in the next ones
            assert process.stdout.readline(), "the writer ended before writing"
        time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(30)
        if process.stdout is not None:
            process.stdout.close()
    db = sqlite3.connect(tmp_path / FILE)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT count(*) FROM targets").fetchone() == (2000,)
    # an incident at most open a target, and every target's written together
    assert db.execute("SELECT count(*) FROM incidents WHERE end IS NULL GROUP BY target HAVING count(*) > 1"
                      ).fetchall() == []
    assert len(set(db.execute("SELECT count(*) FROM incidents GROUP BY target").fetchall())) == 1
    db.close()
    store = StateStore()
    store.set_targets(load_text("targets:\n" + "".join(f"  - {{name: t{i}, kind: tcp, host: 127.0.0.1, port: 1, "
                                                        "slo: {objective: 99%}}\n" for i in range(3)), "t.yaml",
                                PROBES).targets)
    asyncio.run(Archive(tmp_path, clock=SetClock(MIDNIGHT + 3600)).load(store.snapshot()))
    t0 = _state(store, "t0")
    up, checked = day_counts(t0.day.minutes(MIDNIGHT + 3600))
    assert checked >= 5 and checked - up == checked // 4  # every write that committed is there
    assert t0.tally is not None and t0.tally.within(86400, MIDNIGHT + 3600) == (checked, checked // 4)


async def test_a_state_dir_not_made_yet_is_made_by_the_first_use(tmp_path: Path) -> None:
    clock = SetClock(MIDNIGHT + 600)
    store = _store("api")
    archive = Archive(tmp_path / "state", clock=clock)  # the configuration allows it: its parent exists
    await archive.load(store.snapshot())
    _mark(_state(store, "api"), clock() - 120, 2, Day.UP)
    await archive.write(store.snapshot)
    assert archive.failures == 0 and (tmp_path / "state" / FILE).is_file()
    assert (await archive.notices.add("info", "hello", clock(), None)).message == "hello"
    await archive.close(store.snapshot)
