"""What the history store keeps beside the minutes: each target's incidents (the periods its
last check had failed, as ``tta_service_up`` said them: from a failed check to the next one
that passed; confirmed when its debounced state went down in it, as the alerts saw) and, for
targets with an SLO, the checks it counts and those that spent the budget, by the hour; and the
report over a period read from all three.

Called by :mod:`otel_health.history` on its thread, within its transaction, with its
connection: nothing here runs on the event loop.
"""

from __future__ import annotations

import math
import sqlite3
import zlib
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .config.slo import Slo, window_name
from .days import DAY_MINUTES, Day, day_counts
from .state import Change, TargetState

__all__ = ["SCHEMA", "WINDOWS", "Budget", "Incident", "Ledger", "Tallies", "TargetReport", "budget", "read_report",
           "spent", "uptimes"]

SCHEMA = (
    # an incident: start (Unix time of the check that failed first), end (of the check that
    # passed next; NULL while it lasts), that first check's error type and detail, what held its
    # alerts back when it began, and whether its debounced state went down in it
    "CREATE TABLE IF NOT EXISTS incidents (target INTEGER NOT NULL, start REAL NOT NULL, end REAL, "
    "cause TEXT, detail TEXT NOT NULL DEFAULT '', held_back TEXT, confirmed INTEGER NOT NULL DEFAULT 0, "
    "PRIMARY KEY (target, start)) WITHOUT ROWID",
    # counts: zlib of 24 hours of (checks the SLO counts, bad ones), unsigned 32-bit each; checks
    # and bad: the day's totals (what a start and a report of whole days read)
    "CREATE TABLE IF NOT EXISTS tallies (target INTEGER NOT NULL, day INTEGER NOT NULL, checks INTEGER NOT NULL, "
    "bad INTEGER NOT NULL, counts BLOB NOT NULL, PRIMARY KEY (target, day)) WITHOUT ROWID",
)

_EMPTY_DAY = array("I", bytes(4 * 48))


def _counts(blob: bytes) -> array[int]:
    counts = array("I")
    counts.frombytes(zlib.decompress(blob))
    return counts


@dataclass(slots=True)
class Tallies:
    """What the store holds of one target's tally: the hours of yesterday and today (from
    ``first``, two counts a hour) and each day before today's totals."""

    first: int
    hours: array[int]
    days: array[int] = field(default_factory=lambda: array("q"))  # (day, checks, bad) a day


class Ledger:
    """Incidents and tallies, on the history file's connection (the caller's mutex held)."""

    def __init__(self) -> None:
        self._open: dict[int, float | None] = {}  # target id -> its open incident's start (None: none)
        self._written: dict[tuple[int, int], array[int]] = {}  # (target id, day) -> tally row as written
        self._told: set[tuple[int, int]] = set()  # tally days whose totals were given

    def forget(self) -> None:
        self._open.clear()
        self._written.clear()
        self._told.clear()

    def changes(self, db: sqlite3.Connection, ident: int, changes: Sequence[Change]) -> None:
        """An incident opened by a failed check (unless one is open), confirmed by the debounced
        state going down, ended by a check that passed."""
        if ident not in self._open:
            row = db.execute("SELECT start FROM incidents WHERE target = ? AND end IS NULL ORDER BY start DESC",
                             (ident,)).fetchone()
            self._open[ident] = row[0] if row is not None else None
        for change in changes:
            start = self._open[ident]
            if not change.up and start is None:
                db.execute("INSERT OR IGNORE INTO incidents (target, start, end, cause, detail, held_back, confirmed) "
                           "VALUES (?, ?, NULL, ?, ?, ?, ?)", (ident, change.at, change.cause, change.detail,
                                                             change.held_back, change.confirmed))
                self._open[ident] = change.at
            elif not change.up and change.confirmed:
                db.execute("UPDATE incidents SET confirmed = 1 WHERE target = ? AND start = ?", (ident, start))
            elif change.up and start is not None:
                db.execute("UPDATE incidents SET end = ? WHERE target = ? AND start = ?",
                           (max(change.at, start), ident, start))
                self._open[ident] = None

    def tally(self, db: sqlite3.Connection, ident: int, first: int, counts: array[int]) -> list[tuple[int, int, int]]:
        """A tally ring (:meth:`Tally.hours`) merged into its day rows, each hour the larger count
        (the ring holds what the store had when it was loaded, and more); the totals of each day
        the ring saw end, once, and again when a late check changed them."""
        ended = []
        last = first + len(counts) // 2 - 1
        for day in range(first // 24, last // 24 + 1):
            lo, hi = max(first, day * 24), min(last, day * 24 + 23)
            part = counts[2 * (lo - first):2 * (hi - first + 1)]
            if not any(part):
                continue
            row = self._written.get((ident, day))
            if row is None:
                found = db.execute("SELECT counts FROM tallies WHERE target = ? AND day = ?", (ident, day)).fetchone()
                row = _counts(found[0]) if found is not None else _EMPTY_DAY
            at = 2 * (lo - day * 24)
            changed = row[at:at + len(part)] != part  # the hours already written, as most of them are
            merged = row[:at] + array("I", map(max, row[at:at + len(part)], part)) + row[at + len(part):] \
                if changed else row
            changed = changed and merged != row
            if not changed and (day >= last // 24 or (ident, day) in self._told):
                self._written[(ident, day)] = merged
                continue
            checks, bad = sum(merged[0::2]), sum(merged[1::2])
            if changed:
                db.execute("INSERT INTO tallies (target, day, checks, bad, counts) VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                           "(target, day) DO UPDATE SET checks = excluded.checks, bad = excluded.bad, "
                           "counts = excluded.counts", (ident, day, checks, bad, zlib.compress(merged.tobytes(), 6)))
            self._written[(ident, day)] = merged
            if day < last // 24 and (changed or (ident, day) not in self._told):
                self._told.add((ident, day))
                ended.append((day, checks, bad))
        return ended

    def load(self, db: sqlite3.Connection, ids: Iterable[int], today: int, days: int) -> dict[int, Tallies]:
        wanted = set(ids)
        held: dict[int, Tallies] = {}
        for ident, day, checks, bad, blob in db.execute(
                "SELECT target, day, checks, bad, counts FROM tallies WHERE day > ? ORDER BY day", (today - days,)):
            if ident not in wanted:
                continue
            tallies = held.setdefault(ident, Tallies((today - 1) * 24, array("I", bytes(4 * 96))))
            if day < today:
                tallies.days.extend((day, checks, bad))
            if day >= today - 1:
                self._written[(ident, day)] = counts = _counts(blob)
                at = 48 * (day - today + 1)
                tallies.hours[at:at + 48] = counts
            if day == today - 1:
                self._told.add((ident, day))
        return held

    def tidy(self, db: sqlite3.Connection, today: int, days: int) -> None:
        db.execute("DELETE FROM incidents WHERE end IS NOT NULL AND end < ?", ((today - days + 1) * 86400.0,))
        db.execute("DELETE FROM tallies WHERE day <= ?", (today - days,))
        for key in [k for k in self._written if k[1] < today - 1]:
            del self._written[key]
        self._told = {k for k in self._told if k[1] >= today - 1}


# The uptimes the page and the API show: the last 24 hours by the minute, and N UTC days (today
# so far and the N - 1 days before it).
WINDOWS = (("24h", 0), ("7d", 7), ("30d", 30), ("90d", 90))


def uptimes(state: TargetState, now: float, minutes: bytes | None = None) -> dict[str, float | None]:
    """The share of the minutes with a check in which every check passed, over each of
    :data:`WINDOWS`; None where no minute had a check. ``minutes``: ``state.day.minutes(now)``,
    when the caller has it already. The days before today come from the store (``state.past``);
    yesterday from the last 24 hours while the store has not written it yet."""
    minutes = state.day.minutes(now) if minutes is None else minutes
    minute = int(now // 60)
    today = minute // DAY_MINUTES
    up_today, checked_today = day_counts(minutes[-(minute % DAY_MINUTES + 1):])
    yesterday = (0, 0) if state.past.has(today - 1) else day_counts(minutes[:-(minute % DAY_MINUTES + 1)])
    shares: dict[str, float | None] = {}
    for name, days in WINDOWS:
        if days == 0:
            up, checked = day_counts(minutes)
        else:
            up, checked = state.past.since(today - days + 1, today)
            up, checked = up + up_today + yesterday[0], checked + checked_today + yesterday[1]
        shares[name] = up / checked if checked else None
    return shares


def spent(slo: Slo, checks: int, bad: int) -> float | None:
    """The share of the error budget ``bad`` checks of ``checks`` spent (above 1: overspent);
    None without a check."""
    return bad / ((1 - slo.objective) * checks) if checks else None


@dataclass(frozen=True, slots=True)
class Budget:
    """A target's SLO and its error budget over its window, as its tally counted."""

    objective: float
    window: str  # as PromQL writes it: 30d
    checks: int
    bad: int
    left: float | None  # the share of the budget left (below 0: overspent); None without a check

    def document(self) -> dict[str, object]:
        return {"objective": self.objective, "window": self.window, "checks": self.checks, "bad": self.bad,
                "budget_left": None if self.left is None else round(self.left, 6)}


def budget(state: TargetState, now: float) -> Budget | None:
    """What is left of a target's error budget over its SLO's window, from its tally (the page
    and /api/v1/targets); None without an SLO."""
    slo = state.target.slo
    if slo is None:
        return None
    checks, bad = state.tally.within(slo.window, now) if state.tally is not None else (0, 0)
    share = spent(slo, checks, bad)
    return Budget(slo.objective, window_name(slo.window), checks, bad, None if share is None else 1 - share)


# -- the report ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Incident:
    start: float
    end: float | None  # None: still down
    cause: str | None
    detail: str
    held_back: str | None
    confirmed: bool  # its debounced state went down in it (failure_threshold reached)


@dataclass(frozen=True, slots=True)
class TargetReport:
    """One target over a period (see docs/http-api.md for each figure)."""

    observed: float  # seconds of the period the target was checked in (from its first check)
    downtime: float  # seconds of the period inside incidents
    minutes: tuple[int, int]  # minutes with a check, and those with a failed one (the page's bar)
    incidents: tuple[Incident, ...]  # those overlapping the period, oldest first
    checks: int | None  # with an SLO: the checks it counted in the period, and the bad ones
    bad: int | None
    mttr: float | None  # mean seconds from an incident's start to its end, of those that ended in the period

    @property
    def uptime(self) -> float | None:
        return max(0.0, 1 - self.downtime / self.observed) if self.observed > 0 else None


class _Period:
    """A period in minutes, hours and UTC days: the whole days in it are read from the day
    totals (in SQL, for every target at once), the days it cuts from their rows."""

    def __init__(self, start: float, end: float) -> None:
        self.first, self.end = int(start // 60), math.ceil(end / 60)  # minutes
        self.first_hour, self.end_hour = int(start // 3600), math.ceil(end / 3600)
        self.days = (self.first // DAY_MINUTES, (self.end - 1) // DAY_MINUTES)  # the days it touches
        self.whole = (-(-self.first // DAY_MINUTES), self.end // DAY_MINUTES)  # [from, to): days wholly in it
        self.edges = _edges(self.days, self.whole)


def _edges(days: tuple[int, int], whole: tuple[int, int]) -> tuple[int, int]:
    """The first and last of ``days`` where the period cuts them (-1, no day, where it does not)."""
    return (days[0] if not whole[0] <= days[0] < whole[1] else -1,
            days[1] if not whole[0] <= days[1] < whole[1] else -1)


@dataclass(slots=True)
class _Read:
    checked: int = 0
    down: int = 0
    seen: int | None = None  # the first minute with a check
    checks: int = 0
    bad: int = 0
    incidents: list[Incident] = field(default_factory=list)

    def saw(self, minute: int) -> None:
        self.seen = minute if self.seen is None else min(self.seen, minute)


_FEW = 50  # targets a report reads one by one (by their index); past this, each table once for all


def _read(db: sqlite3.Connection, ids: set[int], p: _Period, now: float) -> dict[int, _Read]:
    """What the file holds of ``ids`` over ``p``."""
    read = {ident: _Read() for ident in ids}
    for lo, hi in [(0, 1 << 62)] if len(ids) > _FEW else [(ident, ident) for ident in ids]:
        _read_into(read, db, (lo, hi), p, now)
    return read


def _read_into(read: dict[int, _Read], db: sqlite3.Connection, ids: tuple[int, int], p: _Period,
               now: float) -> None:
    """Each table once, for the targets whose ids are within ``ids`` (both ends included)."""
    # the days still kept by the minute (a week at most), minute by minute
    for ident, day, blob in db.execute("SELECT target, day, states FROM minutes WHERE target BETWEEN ? AND ? "
                                       "AND day BETWEEN ? AND ?", (*ids, *p.days)):
        if (r := read.get(ident)) is not None:
            base = max(p.first, day * DAY_MINUTES)
            states = zlib.decompress(blob)[base - day * DAY_MINUTES:max(p.end - day * DAY_MINUTES, 0)]
            counted = len(states) - states.count(Day.NONE)
            if counted:
                r.checked += counted
                r.down += states.count(Day.DOWN)
                r.saw(base + len(states) - len(states.lstrip(b"\0")))
    # days rolled up to hours: whole ones from their totals, the ones the period cuts by the hour
    # (an hour counts when it begins in the period)
    for ident, checked, down, day in db.execute(
            "SELECT target, sum(checked), sum(checked - up), min(day) FROM hours WHERE target BETWEEN ? AND ? "
            "AND day >= ? AND day < ? AND checked > 0 GROUP BY target", (*ids, *p.whole)):
        if (r := read.get(ident)) is not None:
            r.checked += checked
            r.down += down
            r.saw(day * DAY_MINUTES)
    for ident, day, blob in db.execute("SELECT target, day, counts FROM hours WHERE target BETWEEN ? AND ? "
                                       "AND day IN (?, ?)", (*ids, *p.edges)):
        if (r := read.get(ident)) is not None:
            counts = zlib.decompress(blob)
            for hour in range(24):
                minute = day * DAY_MINUTES + hour * 60
                if p.first < minute + 60 and minute < p.end and (n := sum(counts[3 * hour:3 * hour + 3])):
                    r.saw(max(p.first, minute))
                    if p.first <= minute:
                        r.checked += n
                        r.down += counts[3 * hour + 2]
    # the SLOs' tallies, the same way by the hour
    whole = (-(-p.first_hour // 24), p.end_hour // 24)
    for ident, checks, bad in db.execute("SELECT target, sum(checks), sum(bad) FROM tallies WHERE target BETWEEN ? "
                                         "AND ? AND day >= ? AND day < ? GROUP BY target", (*ids, *whole)):
        if (r := read.get(ident)) is not None:
            r.checks += checks
            r.bad += bad
    edges = _edges((p.first_hour // 24, (p.end_hour - 1) // 24), whole)
    for ident, day, blob in db.execute("SELECT target, day, counts FROM tallies WHERE target BETWEEN ? AND ? "
                                       "AND day IN (?, ?)", (*ids, *edges)):
        if (r := read.get(ident)) is not None:
            hourly = _counts(blob)
            lo, hi = max(p.first_hour - day * 24, 0), min(p.end_hour - day * 24, 24)
            r.checks += sum(hourly[2 * lo:2 * hi:2])
            r.bad += sum(hourly[2 * lo + 1:2 * hi:2])
    for ident, first, last, cause, detail, held, confirmed in db.execute(
            "SELECT target, start, end, cause, detail, held_back, confirmed FROM incidents "
            "WHERE target BETWEEN ? AND ? AND start < ? AND (end IS NULL OR end > ?) ORDER BY target, start",
            (*ids, min(p.end * 60.0, now), p.first * 60.0)):
        if (r := read.get(ident)) is not None:
            r.incidents.append(Incident(first, last, cause, detail, held, bool(confirmed)))


def read_report(db: sqlite3.Connection, targets: Sequence[tuple[int | None, float, bool]], start: float,
                end: float, now: float) -> list[TargetReport]:
    """Each of ``targets`` (its id in the store, or None when it has none yet; its check
    interval; whether it has an SLO) over [``start``, ``end``), as known at ``now``."""
    end = min(end, now)
    read = _read(db, {ident for ident, _, _ in targets if ident is not None}, _Period(start, end), now) \
        if end > start else {}
    out = []
    for ident, interval, slo in targets:
        r = read.get(ident) if ident is not None else None
        if r is None:
            out.append(TargetReport(0.0, 0.0, (0, 0), (), 0 if slo else None, 0 if slo else None, None))
            continue
        # Observed from the period's start, or from the target's first check when it came later
        # than one interval (and a minute) into the period.
        seen = r.seen
        begin = start if seen is None or seen * 60 <= start + interval + 60 else seen * 60.0
        observed = max(0.0, end - begin) if seen is not None else 0.0
        incidents = tuple(i for i in r.incidents if i.start < end and (i.end is None or i.end > start))
        downtime = sum(max(0.0, min(i.end if i.end is not None else now, end) - max(i.start, begin))
                       for i in incidents)
        ended = [i.end - i.start for i in incidents if i.end is not None and i.end <= end]
        out.append(TargetReport(observed, downtime, (r.checked, r.down), incidents, r.checks if slo else None,
                                r.bad if slo else None, sum(ended) / len(ended) if ended else None))
    return out
