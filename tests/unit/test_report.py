"""Incidents, SLO tallies and the report over a period (otel_health/ledger.py, read and written
by the history store) against a real SQLite file, on a clock the test sets: what the store
keeps of checks fed through the state store as the collector feeds them, across a restart
in the middle of an incident, and the budget the page shows."""

from __future__ import annotations

import sqlite3
from array import array
from pathlib import Path

import pytest

from otel_health import ledger
from otel_health.config.loader import load_text
from otel_health.days import Day, Tally
from otel_health.errors import ErrorType
from otel_health.history import FILE, Archive
from otel_health.ledger import budget
from otel_health.probes import PROBES
from otel_health.result import CheckResult
from otel_health.server.documents import report_csv, report_document
from otel_health.state import CHANGES_KEPT, StateStore, TargetState
from tests.harness.clock import SetClock, at

MIDNIGHT = at("2031-05-12T00:00:00Z")
START = MIDNIGHT - 2 * 86400  # two days of checks, every 30 s
STEP = 30.0
CONFIG = """targets:
  - {name: api, kind: tcp, host: 127.0.0.1, port: 1, interval: 30s, failure_threshold: 2,
     slo: {objective: 99%, window: 30d}}
  - {name: db, kind: tcp, host: 127.0.0.1, port: 1, interval: 30s}
"""
# checks that fail, by their index from START: an incident of 20 failed checks (it begins at the
# second: failure_threshold 2), a single failure (no incident), and an incident of 7 that the
# collector is restarted in the middle of
OUTAGE = range(1200, 1220)
BLIP = 3000
RESTARTED = range(4000, 4007)
RESTART_AT = 4003


def _store() -> StateStore:
    store = StateStore()
    store.set_targets(load_text(CONFIG, "t.yaml", PROBES).targets)
    return store


def _state(store: StateStore, name: str) -> TargetState:
    return next(s for s in store.snapshot() if s.target.name == name)


def _check(store: StateStore, i: int) -> None:
    up = i not in OUTAGE and i != BLIP and i not in RESTARTED
    for state in store.snapshot():
        store.update(state, CheckResult(up=up or state.target.name == "db", duration=0.01, started_at=START + i * STEP,
                                        error_type=None if up else ErrorType.TIMEOUT, detail="" if up else "no answer"))


async def _run(folder: Path, clock: SetClock, first: int, last: int, store: StateStore | None = None
               ) -> tuple[StateStore, Archive]:
    store = store or _store()
    archive = Archive(folder, clock=clock)
    clock.set(START + first * STEP)
    await archive.load(store.snapshot())
    for i in range(first, last):
        clock.set(START + i * STEP + 1)
        _check(store, i)
        if i % 120 == 0:  # a write an hour (the ring holds a day)
            await archive.write(store.snapshot)
    return store, archive


@pytest.mark.parametrize("one_by_one", [True, False], ids=["target by target", "each table once for all"])
async def test_the_report_counts_incidents_uptime_and_budget_across_a_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_by_one: bool) -> None:
    monkeypatch.setattr(ledger, "_FEW", 50 if one_by_one else 0)
    clock = SetClock(START)
    store, archive = await _run(tmp_path, clock, 0, RESTART_AT)
    await archive.close(store.snapshot)
    # a restart in the middle of the second incident: a new process, the same folder
    store, archive = await _run(tmp_path, clock, RESTART_AT, 5760)
    clock.set(MIDNIGHT)
    reports = dict((s.target.name, r) for s, r in await archive.report(store.snapshot, START, MIDNIGHT) or ())
    api, db = reports["api"], reports["db"]
    # from the first failed check to the next that passed (as tta_service_up says); confirmed
    # where the debounced state went down (a second failure: failure_threshold 2)
    first = (START + OUTAGE[0] * STEP, START + (OUTAGE[-1] + 1) * STEP)
    blip = (START + BLIP * STEP, START + (BLIP + 1) * STEP)
    second = (START + RESTARTED[0] * STEP, START + (RESTARTED[-1] + 1) * STEP)
    assert [(i.start, i.end, i.cause, i.detail, i.confirmed) for i in api.incidents] == [
        (*first, "timeout", "no answer", True), (*blip, "timeout", "no answer", False),
        (*second, "timeout", "no answer", True)]
    downtime = (first[1] - first[0]) + (blip[1] - blip[0]) + (second[1] - second[0])
    assert api.downtime == pytest.approx(downtime)
    assert api.observed == pytest.approx(MIDNIGHT - START)
    assert api.uptime == pytest.approx(1 - downtime / (MIDNIGHT - START))
    assert api.mttr == pytest.approx(downtime / 3)
    # the SLO counts raw checks: every failure, the blip too, none counted twice nor lost over the restart
    assert (api.checks, api.bad) == (5760, len(OUTAGE) + 1 + len(RESTARTED))
    assert db.incidents == () and db.uptime == 1.0 and db.checks is None
    # minutes as the page's bar has them: a minute with a failed check is down
    assert api.minutes == (2 * 1440, 10 + 1 + 4)

    # a part of the period: the incident cut at its edges, the MTTR of those that ended in it
    cut = await archive.report(store.snapshot, first[0] + 60, second[0] + 90)
    api_cut = dict((s.target.name, r) for s, r in cut or ())["api"]
    assert api_cut.downtime == pytest.approx(first[1] - first[0] - 60 + blip[1] - blip[0] + 90)
    assert api_cut.mttr == pytest.approx((first[1] - first[0] + blip[1] - blip[0]) / 2)
    assert (api_cut.checks, api_cut.bad) == (24 * 120, 28)  # by the hour: the 24 hours the period touches

    # the page's budget: 30 days, of which these two had checks
    held = budget(_state(store, "api"), MIDNIGHT - 1)
    assert held is not None and (held.checks, held.bad) == (5760, 28)
    assert held.left == pytest.approx(1 - 28 / (0.01 * 5760))

    doc = report_document(list(zip(store.snapshot(), [api, db], strict=True)), START, MIDNIGHT, MIDNIGHT, None)
    assert doc["targets"][0]["slo"]["budget_spent"] == pytest.approx(28 / 57.6, abs=1e-6)
    assert doc["targets"][0]["incidents"][0]["minutes"] == pytest.approx((first[1] - first[0]) / 60)
    text = report_csv(list(zip(store.snapshot(), [api, db], strict=True)), START, MIDNIGHT, MIDNIGHT, "incidents",
                      "shard 1 of 2")
    assert text.splitlines()[1] == ("shard 1 of 2,api,default,2031-05-10T10:00:00.000Z,2031-05-10T10:10:00.000Z,"
                                    "10.0,timeout,no answer,,True")
    await archive.close(store.snapshot)


async def test_changes_a_failed_write_took_go_back_and_are_written_next_time(tmp_path: Path) -> None:
    clock = SetClock(START)
    store = _store()
    archive = Archive(tmp_path, clock=clock)
    await archive.load(store.snapshot())
    for i in range(OUTAGE[0] - 2, OUTAGE[-1] + 3):
        _check(store, i)
    holder = sqlite3.connect(tmp_path / FILE, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the file: the write fails (after 2 s)
    await archive.write(store.snapshot)
    assert archive.failures == 1
    assert len(_state(store, "api").changes or ()) == 4  # first known, down, confirmed, up: kept for the next write
    holder.execute("ROLLBACK")
    holder.close()
    await archive.write(store.snapshot)
    clock.set(START + 86400)
    reports = dict((s.target.name, r) for s, r in await archive.report(store.snapshot, START, START + 86400) or ())
    assert len(reports["api"].incidents) == 1 and reports["api"].incidents[0].end is not None
    await archive.close(store.snapshot)


@pytest.mark.parametrize("one_by_one", [True, False], ids=["target by target", "each table once for all"])
async def test_days_rolled_up_to_hours_count_by_the_hour_and_whole_days_by_their_totals(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_by_one: bool) -> None:
    monkeypatch.setattr(ledger, "_FEW", 50 if one_by_one else 0)
    day0 = int(MIDNIGHT // 86400)
    clock = SetClock(MIDNIGHT)
    store = _store()
    archive = Archive(tmp_path, clock=clock)
    await archive.load(store.snapshot())
    db = _state(store, "db")
    for d in range(10):  # a check a minute; day d has d + 1 minutes down, from 05:00
        for minute in range(1440 if d < 9 else 720):
            db.day.mark(MIDNIGHT + d * 86400 + minute * 60, Day.DOWN if 300 <= minute <= 300 + d else Day.UP)
        clock.set(MIDNIGHT + d * 86400 + (86399 if d < 9 else 43200))
        await archive.write(store.snapshot)  # the day after a week: rolled up to hours
    with sqlite3.connect(tmp_path / FILE) as file:
        assert [d - day0 for (d,) in file.execute("SELECT day FROM hours ORDER BY day")] == [0, 1, 2]
    reports = dict((s.target.name, r) for s, r in
                   await archive.report(store.snapshot, MIDNIGHT + 5.5 * 3600, MIDNIGHT + 9 * 86400 + 43200) or ())
    # day 0 by the hour, from the first hour that begins in the period (06:00: its down minute is
    # before); days 1 and 2 whole from their totals; 3 to 8 whole by the minute; day 9 to noon
    assert reports["db"].minutes == (18 * 60 + 2 * 1440 + 6 * 1440 + 720, 2 + 3 + sum(range(4, 10)) + 10)
    assert reports["db"].observed == pytest.approx(9 * 86400 + 43200 - 5.5 * 3600)  # checked from the start
    await archive.close(store.snapshot)


def test_a_tally_counts_by_the_hour_and_adopts_what_the_store_kept() -> None:
    tally = Tally()
    hour = int(MIDNIGHT // 3600)
    for minute in range(0, 180, 2):  # three hours, a check every two minutes, one bad in ten
        tally.add(MIDNIGHT + minute * 60, bad=minute % 20 == 0)
    first, counts = tally.hours()
    assert first == hour + 2 - 23 and list(counts[-6:]) == [30, 3, 30, 3, 30, 3] and not any(counts[:-6])
    assert tally.within(3600, MIDNIGHT + 3 * 3600 - 1) == (60, 6)  # the hour now - 1 h falls in, and this one
    assert tally.within(30 * 86400, MIDNIGHT + 3 * 3600) == (90, 9)
    tally.add(MIDNIGHT - 86400 * 2, bad=True)  # older than the ring: not counted
    assert tally.within(30 * 86400, MIDNIGHT + 3 * 3600) == (90, 9)
    # a restart: what the store kept of yesterday's last hour and today's first, added to a new ring
    again = Tally()
    again.add(MIDNIGHT + 3600, bad=False)
    again.adopt(hour - 1, array("I", [5, 1, 30, 3]), MIDNIGHT + 3600)
    first, counts = again.hours()
    assert list(counts[-6:]) == [5, 1, 30, 3, 1, 0]
    again.past.add(int(MIDNIGHT // 86400) - 1, 100, 2)  # yesterday, once the store ended it
    assert again.since(MIDNIGHT - 86400, MIDNIGHT + 3600) == (131, 5)


async def test_a_target_down_before_the_store_took_it_begins_in_its_incident(tmp_path: Path) -> None:
    clock = SetClock(START)
    store = _store()
    for i in OUTAGE[:3]:  # a reload added it: checked, and down, before the store's next minute loads it
        _check(store, i)
    archive = Archive(tmp_path, clock=clock)
    await archive.load(store.snapshot())
    for i in range(OUTAGE[3], OUTAGE[-1] + 2):
        _check(store, i)
    clock.set(START + (OUTAGE[-1] + 2) * STEP)
    reports = dict((s.target.name, r) for s, r in await archive.report(store.snapshot, START, clock()) or ())
    [incident] = reports["api"].incidents
    assert (incident.start, incident.end, incident.confirmed) == (START + OUTAGE[2] * STEP,
                                                                 START + (OUTAGE[-1] + 1) * STEP, True)
    await archive.close(store.snapshot)


def test_changes_held_for_the_store_are_bounded() -> None:
    store = _store()
    api = _state(store, "api")
    api.changes = []
    for i in range(4 * CHANGES_KEPT):
        for up in (False, False, True):  # down after two failures, up after one pass
            store.update(api, CheckResult(up=up, duration=0.0, started_at=START + i * 90 + len(api.history) % 3,
                                          error_type=None if up else ErrorType.TIMEOUT))
    assert len(api.changes) == CHANGES_KEPT and api.changes[-1].up

