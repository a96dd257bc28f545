"""The status page's history kept beyond the day, in ``state_dir`` (SQLite, from the standard
library): each target's minutes for a week, rolled up to hours after that, for
``history_days`` days (90 by default).

What is kept of a minute is what the page shows of it: no check, up, slow or down (the worst
check of the minute), as :class:`~otel_health.state.Day` marks it. A day of minutes is one row
(the 1,440 states, zlib-compressed: a day that was up throughout is a few dozen bytes); a day
older than a week becomes one row of 24 hourly counts (minutes up, slow, down). Targets are
kept by service and environment: a renamed target starts over, a relabelled one keeps its
history, and a target a reload removed finds its history again if it comes back within
``history_days``. Beside the minutes the same file keeps each target's incidents and, for a
target with an SLO, its checks counted by the hour (:mod:`.ledger`, which also reads reports).

Every write happens on a thread, once a minute (:data:`FLUSH`), in one transaction: the event
loop only copies each target's 360-byte day. A write that fails (a full disk, a file another
process locked, a read-only folder) is a warning in the log and a count in
``otel_health_history_write_failures_total``, never a stalled check; the next write carries
what it missed (the in-memory day holds the last 24 hours). SQLite's write-ahead log makes a
write all or nothing: a process killed mid-write loses that minute's write, never the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import zlib
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .announcements import Notices
from .clock import WALL, Clock
from .days import DAY_MINUTES, Day, Tally, day_counts, merge_max, pack_minutes, tally_hours, unpack_minutes
from .ledger import SCHEMA as LEDGER_SCHEMA
from .ledger import Ledger, Tallies, TargetReport, read_report
from .logs import event
from .state import CHANGES_KEPT, Change, TargetState

__all__ = ["DEFAULT_DAYS", "FILE", "FLUSH", "Archive", "Unreadable", "Written"]

log = logging.getLogger("otel_health.history")

FILE = "history.sqlite3"
DEFAULT_DAYS = 90
FLUSH = 60.0            # seconds between writes
MINUTE_DAYS = 7         # days kept by the minute before they are rolled up to hours
_BUSY_MS = 2000         # how long a write waits for a lock another process holds

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS targets (id INTEGER PRIMARY KEY, service TEXT NOT NULL, "
    "environment TEXT NOT NULL, UNIQUE (service, environment))",
    # states: zlib of one byte a minute (0 no check, 1 up, 2 slow, 3 down), 1,440 of them
    "CREATE TABLE IF NOT EXISTS minutes (target INTEGER NOT NULL, day INTEGER NOT NULL, states BLOB NOT NULL, "
    "PRIMARY KEY (target, day)) WITHOUT ROWID",
    # counts: zlib of 24 hours of (minutes up, slow, down), one byte each; up and checked: the
    # day's minutes up (slow ones too) and with a check, what a start reads
    "CREATE TABLE IF NOT EXISTS hours (target INTEGER NOT NULL, day INTEGER NOT NULL, up INTEGER NOT NULL, "
    "checked INTEGER NOT NULL, counts BLOB NOT NULL, PRIMARY KEY (target, day)) WITHOUT ROWID",
    *LEDGER_SCHEMA,  # incidents, and the checks SLOs count
)


class Unreadable(Exception):
    """A report could not read the file (the reason is in the log)."""


Key = tuple[str, str]
DayCounts = list[tuple[Key, int, int, int]]  # (target, day, and two counts of it)
# What a read or a write of the file may meet: SQLite's errors (locked, full, not a database),
# the file system's, and a row whose compressed states do not decompress (damaged)
_STORE_ERRORS = (sqlite3.Error, OSError, zlib.error)


def _hourly(states: bytes) -> bytes:
    return bytes(n for hour in range(24) for n in (
        states.count(Day.UP, hour * 60, hour * 60 + 60), states.count(Day.SLOW, hour * 60, hour * 60 + 60),
        states.count(Day.DOWN, hour * 60, hour * 60 + 60)))


@dataclass(frozen=True, slots=True)
class Loaded:
    """What the file holds of one target: its last day as a :class:`Day` ring (and that ring's
    newest minute), and the counts of each day before today."""

    ring: bytes
    last: int
    days: array[int]  # for Past: (day, minutes up, minutes checked) a day, by day
    tallies: Tallies | None  # the checks its SLO counted, when it has any


class Written(NamedTuple):
    """What a write takes of one target: its day ring and that ring's newest minute, its state's
    changes since the last write, and its SLO's tally ring and that ring's newest hour
    (:meth:`Archive.take` makes them as plain tuples)."""

    key: Key
    ring: bytes
    last: int
    changes: Sequence[Change]
    tally: tuple[array[int], int] | None


class _File:
    """The SQLite file, on threads one at a time (its mutex: a write a cancelled task left
    running on its thread ends before the next use begins). A write of 10,000 targets is
    slicing and zlib on each changed day, in C: see Performance."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mutex = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._ids: dict[Key, int] = {}
        # (target id, day) -> the row last written of the days a ring can still reach (yesterday,
        # today), compressed as written: a few dozen bytes a target
        self._written: dict[tuple[int, int], bytes] = {}
        self._told: set[tuple[int, int]] = set()  # (target id, day): yesterdays whose counts were given
        self.ledger = Ledger()  # incidents and tallies

    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(exist_ok=True)  # state_dir, the first time (its parent exists: the config says)
            db = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                for statement in _SCHEMA:
                    db.execute(statement)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def set_aside(self) -> Path:
        """Rename the file (and its write-ahead log) out of the way; the next use makes a new one."""
        aside = self.path.with_name(f"{self.path.name}.unreadable")
        with self.mutex:
            self._close()
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
        return aside

    def close(self) -> None:
        with self.mutex:
            self._close()

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
            self._forget()

    def _forget(self) -> None:
        """What this process holds of the file: read again from it at the next use."""
        self._ids.clear()
        self._written.clear()
        self._told.clear()
        self.ledger.forget()

    def _id(self, key: Key) -> int:
        known = self._ids.get(key)
        if known is None:
            db = self.db()
            db.execute("INSERT OR IGNORE INTO targets (service, environment) VALUES (?, ?)", key)
            known = db.execute("SELECT id FROM targets WHERE service = ? AND environment = ?", key).fetchone()[0]
            self._ids[key] = known
        return known

    def load(self, keys: Iterable[Key], today: int, days: int, slo_days: int = 0) -> dict[Key, Loaded]:
        """What the file holds of each of ``keys`` it knows (one pass over each table); of the
        SLOs' tallies, the ``slo_days`` days the longest SLO window reaches."""
        with self.mutex:
            return self._load(keys, today, days, slo_days)

    def _load(self, keys: Iterable[Key], today: int, days: int, slo_days: int) -> dict[Key, Loaded]:
        db = self.db()
        wanted = set(keys)
        for ident, service, environment in db.execute("SELECT id, service, environment FROM targets"):
            if (service, environment) in wanted:
                self._ids[(service, environment)] = ident
        by_id = {self._ids[key]: key for key in wanted if key in self._ids}
        recent: dict[int, bytearray] = {}  # yesterday's and today's minutes
        counts: dict[int, list[tuple[int, int, int]]] = {}
        for ident, day, blob in db.execute("SELECT target, day, states FROM minutes WHERE day > ?", (today - days,)):
            if ident not in by_id:
                continue
            states = zlib.decompress(blob)
            if day >= today - 1:
                self._written[(ident, day)] = blob
            if today - 1 <= day <= today:
                at = (day - today + 1) * DAY_MINUTES
                recent.setdefault(ident, bytearray(2 * DAY_MINUTES))[at:at + DAY_MINUTES] = states
            if day < today:
                counts.setdefault(ident, []).append((day, *day_counts(states)))
            if day == today - 1:  # the one day before today a ring still reaches: its counts given
                self._told.add((ident, day))
        for ident, day, up, checked in db.execute("SELECT target, day, up, checked FROM hours WHERE day > ?",
                                                  (today - days,)):
            if ident in by_id:
                counts.setdefault(ident, []).append((day, up, checked))
        tallies = self.ledger.load(db, by_id, today, min(days, slo_days)) if slo_days else {}
        loaded = {}
        for ident, key in by_id.items():
            ring, last = pack_minutes((today - 1) * DAY_MINUTES, bytes(recent.get(ident, b"")))
            loaded[key] = Loaded(ring, last, array("q", (n for day in sorted(counts.get(ident, ())) for n in day)),
                                 tallies.get(ident))
        return loaded

    def write(self, rings: Sequence[Written]) -> tuple[DayCounts, DayCounts]:
        """Each target's day ring merged into its day rows (a minute keeps its worst state), its
        changes into its incidents, its tally into its tally rows; the counts of each day the
        write saw end, for the targets' Past, and the tallies' (checks, bad) of each."""
        with self.mutex:
            return self._write(rings)

    def _write(self, rings: Sequence[Written]) -> tuple[DayCounts, DayCounts]:
        db = self.db()
        ended, tallied = [], []
        db.execute("BEGIN IMMEDIATE")
        try:
            for key, bits, last, changes, tally in rings:
                if changes:
                    self.ledger.changes(db, self._id(key), changes)
                if tally is not None and tally[1] >= 0:
                    first, counts = tally_hours(*tally)
                    tallied += [(key, *day) for day in self.ledger.tally(db, self._id(key), first, counts)]
                if last < 0:
                    continue
                ident = self._id(key)
                first, states = unpack_minutes(bits, last)
                for day in range(first // DAY_MINUTES, last // DAY_MINUTES + 1):
                    start = max(first, day * DAY_MINUTES)
                    end = min(last, day * DAY_MINUTES + DAY_MINUTES - 1)
                    part = states[start - first:end - first + 1]
                    if not part.strip(b"\0"):
                        continue
                    row = self._written.get((ident, day))
                    if row is None:  # a day not written by this process nor loaded: its row, if any
                        found = db.execute("SELECT states FROM minutes WHERE target = ? AND day = ?",
                                           (ident, day)).fetchone()
                        row = found[0] if found is not None else None
                    before = zlib.decompress(row) if row is not None else bytes(DAY_MINUTES)
                    offset = start - day * DAY_MINUTES
                    merged = before[:offset] + merge_max(before[offset:offset + len(part)], part) \
                        + before[offset + len(part):]  # each minute its worse state, in C
                    changed = merged != before
                    if changed:
                        row = zlib.compress(merged, 6)
                        db.execute("INSERT INTO minutes (target, day, states) VALUES (?, ?, ?) ON CONFLICT "
                                   "(target, day) DO UPDATE SET states = excluded.states", (ident, day, row))
                    if row is not None:
                        self._written[(ident, day)] = row
                    # a day over (the ring's newest minute is a later day's): its counts, once, and
                    # again if a late minute changed them
                    if day < last // DAY_MINUTES and (changed or (ident, day) not in self._told):
                        self._told.add((ident, day))
                        ended.append((key, day, *day_counts(merged)))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._forget()  # what it holds may be what was rolled back (a target's id too)
            raise
        return ended, tallied

    def report(self, targets: Sequence[tuple[Key, float, bool]], start: float, end: float,
               now: float) -> list[TargetReport]:
        """Each of ``targets`` (key, interval, has an SLO) over [start, end): see :mod:`.ledger`."""
        with self.mutex:
            db = self.db()
            known = {}
            for ident, service, environment in db.execute("SELECT id, service, environment FROM targets"):
                known[(service, environment)] = ident
            return read_report(db, [(known.get(key), interval, slo) for key, interval, slo in targets],
                               start, end, now)

    def tidy(self, today: int, days: int) -> None:
        """Days older than a week rolled up to hours; days older than ``days`` gone."""
        with self.mutex:
            self._tidy(today, days)

    def _tidy(self, today: int, days: int) -> None:
        db = self.db()
        db.execute("BEGIN IMMEDIATE")
        try:
            old = db.execute("SELECT target, day, states FROM minutes WHERE day <= ?",
                             (today - MINUTE_DAYS,)).fetchall()
            for ident, day, blob in old:
                states = zlib.decompress(blob)
                db.execute("INSERT OR REPLACE INTO hours (target, day, up, checked, counts) VALUES (?, ?, ?, ?, ?)",
                           (ident, day, *day_counts(states), zlib.compress(_hourly(states), 6)))
                self._written.pop((ident, day), None)
                self._told.discard((ident, day))
            for key in [k for k in self._written if k[1] < today - 1]:  # no ring reaches them now
                del self._written[key]
            self._told = {k for k in self._told if k[1] >= today - 1}
            db.execute("DELETE FROM minutes WHERE day <= ?", (today - MINUTE_DAYS,))
            db.execute("DELETE FROM hours WHERE day <= ?", (today - days,))
            self.ledger.tidy(db, today, days)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class Archive:
    """The history store of one collector (nothing is kept without ``state_dir``)."""

    def __init__(self, state_dir: Path | None, *, days: int = DEFAULT_DAYS, clock: Clock = WALL) -> None:
        self._file = _File(state_dir / FILE) if state_dir is not None else None
        self._days = days
        self._clock = clock
        self._lock = asyncio.Lock()  # one thread at a time on the file
        self._loaded: set[Key] = set()
        self._tidied = -1  # the day the file was last tidied
        self.failures = 0  # writes that failed: otel_health_history_write_failures_total
        self._failing = False
        # The API's announcements, in the same file (table announcements): read once a file.
        self.notices = Notices(state_dir, days=days, clock=clock)
        self._notices_read = False

    @property
    def path(self) -> Path | None:
        return self._file.path if self._file is not None else None

    def move(self, state_dir: Path | None, days: int) -> None:
        """A reload's ``state_dir`` and ``history_days`` (a new folder: what it holds is loaded for
        the targets, the old file is left as it is)."""
        self._days = days
        self.notices.move(state_dir, days)
        new = state_dir / FILE if state_dir is not None else None
        if new != self.path:
            old, self._file = self._file, _File(new) if new is not None else None
            self._loaded.clear()
            self._notices_read = False
            if old is not None:
                old.close()

    async def load(self, states: Sequence[TargetState]) -> None:
        """Give each target not loaded yet what the file holds of it: its last two days by the
        minute, and its days before today."""
        try:
            await self._load(states)
        finally:
            if not self._notices_read:  # after the history: a file set aside is not read twice
                self._notices_read = True
                await self.notices.load()

    async def _load(self, states: Sequence[TargetState]) -> None:
        if self._file is None:
            return
        file = self._file
        async with self._lock:
            waiting = [s for s in states if s.target.key not in self._loaded]
            if not waiting or file is not self._file:
                return
            today = int(self._clock() // 86400)
            try:
                slo_days = max((int(-(-s.target.slo.window // 86400)) + 1 for s in waiting if s.target.slo), default=0)
                loaded = await asyncio.to_thread(file.load, [s.target.key for s in waiting], today, self._days,
                                                 slo_days)
            except _STORE_ERRORS as exc:
                self._failed("history_read_failed", exc)
                damaged = isinstance(exc, zlib.error | sqlite3.DatabaseError)
                if damaged and not isinstance(exc, sqlite3.OperationalError):
                    # not a database, or damaged: kept aside for a look, a new file from the next minute
                    aside = await asyncio.to_thread(file.set_aside)
                    event(log, logging.WARNING, "history_set_aside", file=str(file.path), kept_as=str(aside))
                return
            now = self._clock()
            for state in waiting:  # within the lock: a write never sees a target half loaded
                self._loaded.add(state.target.key)
                state.keep_changes()  # its incidents from now on
                held = loaded.get(state.target.key)
                if held is not None:
                    state.day.adopt(held.ring, held.last)
                    state.past.adopt(held.days)
                    if held.tallies is not None and state.target.slo is not None:
                        if state.tally is None:
                            state.tally = Tally()
                        state.tally.adopt(held.tallies.first, held.tallies.hours, now)
                        state.tally.past.adopt(held.tallies.days)

    async def write(self, states: Callable[[], Sequence[TargetState]]) -> None:
        """One write of every target's day (and, once a day, the roll-up and the retention)."""
        if self._file is None:
            return
        current = {s.target.key: s for s in states()}
        rings = self.take(current)
        today = int(self._clock() // 86400)
        file = self._file
        async with self._lock:
            try:
                ended, tallied = await asyncio.to_thread(file.write, rings)
                if self._tidied != today:
                    await asyncio.to_thread(file.tidy, today, self._days)
                    self._tidied = today
            except BaseException as exc:
                for key, _, _, changes, _ in rings:  # the changes not written go back, before any since
                    kept = current[key].changes
                    if changes and kept is not None:
                        kept[:0] = changes
                        del kept[:-CHANGES_KEPT]
                if not isinstance(exc, _STORE_ERRORS):
                    raise
                self._failed("history_write_failed", exc)
                return
        if self._failing:
            self._failing = False
            event(log, logging.INFO, "history_write_recovered", file=str(file.path))
        for key, day, up, checked in ended:
            if (held := current.get(key)) is not None:
                held.past.add(day, up, checked)
        for key, day, checks, bad in tallied:
            if (held := current.get(key)) is not None and held.tally is not None:
                held.tally.past.add(day, checks, bad)

    def take(self, current: dict[Key, TargetState]) -> list[Written]:
        """What a write takes of each loaded target, on the event loop: copies of its rings (a few
        hundred bytes), and its changes (handed over). Plain tuples: 10,000 targets a minute."""
        loaded, rings = self._loaded, []
        for key, state in current.items():
            if key in loaded:
                changes = state.changes
                if changes:
                    state.changes = []
                bits, last = state.day.raw()
                tally = state.tally
                rings.append((key, bits, last, changes or (), tally.raw() if tally is not None else None))
        return rings  # type: ignore[return-value]  # Written's fields, as a tuple

    async def report(self, states: Callable[[], Sequence[TargetState]], start: float, end: float
                     ) -> list[tuple[TargetState, TargetReport]] | None:
        """Each target over [start, end) from the file, written up to now first; None without a
        file."""
        if self._file is None:
            return None
        await self.write(states)
        shown = list(states())
        file, now = self._file, self._clock()
        async with self._lock:
            try:
                asked = [(s.target.key, s.target.interval, s.target.slo is not None) for s in shown]
                reports = await asyncio.to_thread(file.report, asked, start, end, now)
            except _STORE_ERRORS as exc:
                self._failed("history_read_failed", exc)
                raise Unreadable(f"the history store could not be read ({type(exc).__name__}); see the log") from exc
        return list(zip(shown, reports, strict=True))

    async def keep(self, states: Callable[[], Sequence[TargetState]]) -> None:
        """Write every :data:`FLUSH` seconds, for good (a background task)."""
        while True:
            await asyncio.sleep(FLUSH)
            try:
                await self.load(states())  # targets a reload added
                await self.write(states)
            except Exception as exc:  # noqa: BLE001 - the writes go on whatever one of them met
                self._failed("history_write_failed", exc)

    async def close(self, states: Callable[[], Sequence[TargetState]]) -> None:
        """The last write, then the file closed."""
        await self.write(states)
        await asyncio.to_thread(self.notices.close)
        if self._file is not None:
            file = self._file
            async with self._lock:
                await asyncio.to_thread(file.close)

    def _failed(self, what: str, exc: BaseException) -> None:
        self.failures += 1
        if not self._failing:  # once a streak: the next success says it is over
            self._failing = True
            event(log, logging.WARNING, what, file=str(self.path), reason=f"{type(exc).__name__}: {exc}"[:300],
                  consequence="checks go on; the page keeps the last 24 hours in memory and the next write "
                              "tries again")
