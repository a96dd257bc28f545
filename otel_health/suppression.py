"""When a target's alerts are suppressed, and why: maintenance windows and dependencies.

Checks never stop and history keeps the truth: a target in maintenance, or one whose
dependency is down, is still checked and still reported as it is. Suppression is data beside
the verdict (``tta_service_suppressed``, the root span's ``tta.check.suppressed``, ``/health``
saying ``warn``) for the alerting side to act on.

A window's schedule is recurring (weekdays and times of day in a time zone, in the shape of
Alertmanager's ``time_intervals``) or one-off (a start and an end). Windows opened through the
API live in a :class:`Book`, kept in ``state_dir`` when one is set.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._files import NotFound, Unreadable, append_line, clean_temporaries, read_bounded, set_aside, write_json
from .clock import WALL, Clock
from .logs import event

__all__ = [
    "DAY",
    "WEEKDAYS",
    "Book",
    "NotKept",
    "OneOff",
    "Recurring",
    "Suppressed",
    "Window",
    "clock_minutes",
    "gap_hint",
    "in_zone",
    "instant",
    "utc",
    "weekday_set",
    "zone",
]

log = logging.getLogger("otel_health")

# Alertmanager's order: the week begins on Sunday.
WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
DAY = 24 * 60  # minutes
MAX_ZONE_NAME = 64


class Suppressed(NamedTuple):
    """Why a target's alerts are held back now: the windows open on it, the dependencies down."""

    maintenance: tuple[str, ...] = ()
    dependency: tuple[str, ...] = ()

    def sources(self) -> list[str]:
        """``reason:source`` for each, maintenance first (the span's ``tta.check.suppressed_by``)."""
        return [f"maintenance:{name}" for name in self.maintenance] + [f"dependency:{name}" for name in self.dependency]

    def describe(self) -> str:
        parts = []
        if self.maintenance:
            parts.append(f"maintenance {', '.join(self.maintenance)}")
        if self.dependency:
            parts.append(f"dependency {', '.join(self.dependency)} down")
        return "; ".join(parts)


def zone(name: str) -> ZoneInfo | None:
    """The IANA time zone ``name``, or None when there is no such zone."""
    if not name or len(name) > MAX_ZONE_NAME or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def utc() -> ZoneInfo:
    return ZoneInfo("UTC")


def clock_minutes(value: Any) -> int | None:
    """``HH:MM`` (00:00 to 24:00) as minutes after midnight. YAML 1.1 reads an unquoted
    ``22:00`` as the base-60 number 1320: that is taken as the time it was written as."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= DAY else None
    if not isinstance(value, str):
        return None
    hours, sep, minutes = value.strip().partition(":")
    if not sep or not (hours.isdigit() and minutes.isdigit()) or len(minutes) != 2 or len(hours) > 2:
        return None
    total = int(hours) * 60 + int(minutes)
    return total if int(minutes) < 60 and total <= DAY else None


def weekday_set(items: Iterable[Any]) -> tuple[frozenset[int] | None, str | None]:
    """Alertmanager's ``weekdays`` (names and inclusive ``start:end`` ranges within one week,
    Sunday first) as day numbers, Sunday 0; or the problem."""
    days: set[int] = set()
    for item in items:
        if not isinstance(item, str):
            return None, f"entries are day names or ranges such as monday:friday, got {item!r}"
        first, sep, last = item.strip().lower().partition(":")
        if first not in WEEKDAYS or (sep and last not in WEEKDAYS):
            return None, f"{item!r} is not a day name or a range of them; use {', '.join(WEEKDAYS)}"
        start, end = WEEKDAYS.index(first), WEEKDAYS.index(last if sep else first)
        if start > end:
            return None, (f"{item!r} runs backwards (the week begins on Sunday, as in Alertmanager); "
                          f"list the days or write two ranges")
        days.update(range(start, end + 1))
    return frozenset(days), None


def instant(value: Any, where: ZoneInfo) -> float | None:
    """An ISO 8601 time (or a YAML timestamp) as Unix time; without an offset it is read in ``where``."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=where)
        if not in_zone(moment):
            return None
    return moment.timestamp()


def in_zone(moment: dt.datetime) -> bool:
    """Whether a local time exists in its zone: one in the hour the clocks skip when they move
    forward (02:30 in Berlin on the last Sunday of March) does not, and would be read with an
    offset it never had."""
    tz = moment.tzinfo
    if tz is None:
        return True
    there = moment.astimezone(dt.UTC).astimezone(tz)
    return there.replace(tzinfo=None, fold=0) == moment.replace(tzinfo=None, fold=0)


def gap_hint(value: Any, where: ZoneInfo) -> str:
    """Why ``value`` is not an instant, when the reason is a local time the clocks skip; else ''."""
    try:
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value).strip())
    except ValueError:
        return ""
    if moment.tzinfo is None and not in_zone(moment.replace(tzinfo=where)):
        return (f"; {moment:%Y-%m-%d %H:%M} does not exist in {where.key} (the clocks move forward then): "
                "give a time outside that hour, or an offset")
    return ""


@dataclass(frozen=True, slots=True)
class Recurring:
    """Times of day on some weekdays, in a time zone. A range whose end is at or before its
    start runs past midnight into the next day (Alertmanager's own ranges cannot: see
    :meth:`time_intervals`)."""

    ranges: tuple[tuple[int, int], ...]  # minutes after midnight: start, end (exclusive)
    weekdays: frozenset[int] | None  # None: every day
    location: str = "UTC"

    def active(self, now: float) -> bool:
        local = dt.datetime.fromtimestamp(now, ZoneInfo(self.location))
        minute = local.hour * 60 + local.minute
        today = (local.weekday() + 1) % 7  # Python's Monday 0 to Sunday 0
        yesterday = (today + 6) % 7
        days = self.weekdays
        for start, end in self.ranges:
            if start < end:
                if (days is None or today in days) and start <= minute < end:
                    return True
            elif ((days is None or today in days) and minute >= start) or \
                    ((days is None or yesterday in days) and minute < end):
                return True
        return False

    def time_intervals(self) -> list[dict[str, Any]]:
        """The Alertmanager ``time_intervals`` entries for this schedule. A range across midnight
        is split in two: to 24:00 on its own days, and from 00:00 on the day after each."""
        same = [(s, e) for s, e in self.ranges if s < e]
        crossing = [(s, e) for s, e in self.ranges if s >= e]
        entries: list[dict[str, Any]] = []
        first = same + [(s, DAY) for s, _ in crossing]
        if first:
            entries.append(self._entry(first, self.weekdays))
        after = [(0, e) for _, e in crossing if e > 0]
        if after:
            shifted = None if self.weekdays is None else frozenset((d + 1) % 7 for d in self.weekdays)
            entries.append(self._entry(after, shifted))
        return entries

    def _entry(self, ranges: list[tuple[int, int]], days: frozenset[int] | None) -> dict[str, Any]:
        entry: dict[str, Any] = {}
        if ranges != [(0, DAY)]:
            entry["times"] = [{"start_time": _clock(s), "end_time": _clock(e)} for s, e in ranges]
        if days is not None:
            entry["weekdays"] = _day_ranges(days)
        if self.location != "UTC":
            entry["location"] = self.location
        return entry

    def as_written(self) -> dict[str, Any]:
        """The schedule in the config's own shape."""
        doc: dict[str, Any] = {"times": [{"start_time": _clock(s), "end_time": _clock(e)} for s, e in self.ranges],
                               "location": self.location}
        if self.weekdays is not None:
            doc["weekdays"] = _day_ranges(self.weekdays)
        return doc


@dataclass(frozen=True, slots=True)
class OneOff:
    start: float
    end: float

    def active(self, now: float) -> bool:
        return self.start <= now < self.end


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _day_ranges(days: frozenset[int]) -> list[str]:
    """Day numbers as Alertmanager's names and ranges, each within one week."""
    out: list[str] = []
    ordered = sorted(days)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        first, last = WEEKDAYS[ordered[i]], WEEKDAYS[ordered[j]]
        out.append(first if i == j else f"{first}:{last}")
        i = j + 1
    return out


Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Window:
    """A maintenance window on some targets (``targets`` None: on every target)."""

    name: str
    schedule: Recurring | OneOff
    targets: frozenset[Key] | None
    comment: str = ""
    source: str = "config"  # or "api"
    created: float = 0.0

    def covers(self, key: Key) -> bool:
        return self.targets is None or key in self.targets


STATE_FILE = "maintenance.json"
JOURNAL_FILE = "maintenance.journal"
FORMAT = 1
MAX_API_WINDOWS = 1000  # windows opened through the API and not ended, at once
MAX_API_WINDOW_TARGETS = 200_000  # targets named by those windows, added up
MAX_STATE_BYTES = 64 * 1024 * 1024  # the snapshot or the journal, read back
LATEST = 253402300799.0  # 9999-12-31T23:59:59Z: the latest instant every output can write


class NotKept(Exception):
    """A window the book could not take: full (``full``), or not saved (the reason)."""

    def __init__(self, reason: str, *, full: bool) -> None:
        super().__init__(reason)
        self.full = full


def _document(window: Window) -> dict[str, Any]:
    assert isinstance(window.schedule, OneOff)
    return {"id": window.name, "targets": sorted([n, e] for n, e in window.targets or ()),
            "start": window.schedule.start, "end": window.schedule.end, "comment": window.comment,
            "created": window.created}


def _window(item: Any) -> Window:
    """A window as the state files hold it; ValueError, KeyError or TypeError when it is not one."""
    targets = frozenset((str(n), str(e)) for n, e in item["targets"])
    start, end, created = float(item["start"]), float(item["end"]), float(item["created"])
    if not all(0.0 <= t <= LATEST for t in (start, end, created)) or end <= start:
        raise ValueError("a window's times are out of range")
    return Window(str(item["id"]), OneOff(start, end), targets, str(item["comment"])[:500], "api", created)


class Book:
    """The windows opened through the API: kept across reloads, and across restarts in
    ``state_dir``. Each change is one line appended to a journal and synced, on a thread,
    before it counts (a change that could not be saved is refused, and nothing of it kept);
    now and then the windows are written whole to a snapshot that replaces the old one, and
    the journal starts again. A file that cannot be read is reported and set aside, never
    fatal; windows that have ended are not kept."""

    def __init__(self, state_dir: Path | None = None, *, clock: Clock = WALL) -> None:
        self._dir = state_dir
        self._clock = clock
        self._windows: dict[str, Window] = {}
        self._targets = 0  # targets named by the windows, added up
        self._journal_lines = 0
        self._lock = asyncio.Lock()  # one change written at a time, in order
        if state_dir is not None:
            clean_temporaries(state_dir, STATE_FILE)
            self._windows = self._read(state_dir)
            self._targets = sum(len(w.targets or ()) for w in self._windows.values())

    def windows(self) -> list[Window]:
        return list(self._windows.values())

    def get(self, window_id: str) -> Window | None:
        return self._windows.get(window_id)

    def room(self, targets: int) -> str | None:
        """Why a window on ``targets`` targets cannot be opened now, or None."""
        if len(self._windows) >= MAX_API_WINDOWS:
            return (f"{MAX_API_WINDOWS} windows are open or planned already; end some "
                    "(DELETE /api/v1/maintenance/ID) or name several targets in one window")
        if self._targets + targets > MAX_API_WINDOW_TARGETS:
            return (f"the open and planned windows would name more than {MAX_API_WINDOW_TARGETS} targets; "
                    "end some, or cover a group with a configured window ('match' by labels)")
        return None

    async def open(self, targets: Iterable[Key], start: float, end: float, comment: str) -> Window:
        """A new window, saved; :class:`NotKept` when there is no room or it could not be saved."""
        window = Window(secrets.token_hex(8), OneOff(start, end), frozenset(targets), comment, "api", self._clock())
        async with self._lock:
            full = self.room(len(window.targets or ()))
            if full is not None:
                raise NotKept(full, full=True)
            await self._write({"open": _document(window)})
            self._windows[window.name] = window
            self._targets += len(window.targets or ())
        await self._compact_if_long()
        return window

    async def end(self, window_id: str) -> bool:
        """End a window; False when there is none. :class:`NotKept` when the end could not be saved."""
        async with self._lock:
            window = self._windows.get(window_id)
            if window is None:
                return False
            await self._write({"end": window_id})
            del self._windows[window_id]
            self._targets -= len(window.targets or ())
        await self._compact_if_long()
        return True

    def expire(self, now: float) -> list[Window]:
        """Forget the windows that have ended (a restart would not read them back): those windows."""
        ended = [w for w in self._windows.values() if isinstance(w.schedule, OneOff) and w.schedule.end <= now]
        for window in ended:
            del self._windows[window.name]
            self._targets -= len(window.targets or ())
        return ended

    def move(self, state_dir: Path | None) -> None:
        """Keep the windows in ``state_dir`` from now on (a reload changed it): written whole there."""
        if state_dir != self._dir:
            self._dir = state_dir
            if state_dir is not None:
                self._snapshot(state_dir, self._document(), failed="maintenance_not_saved")

    async def _write(self, change: dict[str, Any]) -> None:
        if self._dir is None:
            return
        line = json.dumps(change, separators=(",", ":")).encode("utf-8")
        try:
            await asyncio.to_thread(append_line, self._dir / JOURNAL_FILE, line)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            event(log, logging.ERROR, "maintenance_not_saved", path=str(self._dir / JOURNAL_FILE), reason=reason)
            raise NotKept(f"the change could not be saved ({reason}); nothing was changed", full=False) from None
        self._journal_lines += 1

    async def _compact_if_long(self) -> None:
        """The windows written whole once the journal is longer than they are (and 64 lines)."""
        if self._dir is None or self._journal_lines <= max(64, 2 * len(self._windows)):
            return
        async with self._lock:
            if self._journal_lines > max(64, 2 * len(self._windows)):
                doc = self._document()  # on the loop: the windows change only here
                if await asyncio.to_thread(self._snapshot, self._dir, doc, failed="maintenance_not_saved"):
                    self._journal_lines = 0

    def _document(self) -> dict[str, Any]:
        return {"format": FORMAT, "windows": [_document(w) for w in self._windows.values()]}

    @staticmethod
    def _snapshot(folder: Path, doc: dict[str, Any], *, failed: str) -> bool:
        """``doc`` written whole to ``folder``, then the journal emptied (a crash between the two
        replays changes the snapshot already holds: harmless)."""
        if not write_json(folder / STATE_FILE, doc, failed=failed):
            return False
        try:
            (folder / JOURNAL_FILE).unlink(missing_ok=True)
        except OSError as exc:
            event(log, logging.ERROR, failed, path=str(folder / JOURNAL_FILE), reason=exc.strerror or "unknown")
            return False
        return True

    def _read(self, folder: Path) -> dict[str, Window]:
        out: dict[str, Window] = {}
        path = folder / STATE_FILE
        try:
            doc = json.loads(read_bounded(path, MAX_STATE_BYTES))
            if not isinstance(doc, Mapping) or doc.get("format") != FORMAT or not isinstance(doc.get("windows"), list):
                raise ValueError(f"not a format {FORMAT} maintenance file")
            for item in doc["windows"]:
                window = _window(item)
                out[window.name] = window
        except NotFound:
            pass
        except Unreadable as exc:
            self._unreadable(path, str(exc))
        except (ValueError, KeyError, TypeError) as exc:
            self._unreadable(path, str(exc) if isinstance(exc, ValueError) else "a window is malformed")
            out = {}
        journal = folder / JOURNAL_FILE
        try:
            lines = read_bounded(journal, MAX_STATE_BYTES).splitlines()
        except NotFound:
            lines = []
        except Unreadable as exc:
            self._unreadable(journal, str(exc))
            lines = []
        for number, line in enumerate(lines, 1):
            try:
                change = json.loads(line)
                if "open" in change:
                    window = _window(change["open"])
                    out[window.name] = window
                else:
                    out.pop(str(change["end"]), None)
            except (ValueError, KeyError, TypeError):
                if number == len(lines):
                    break  # the last line, cut short by a crash while it was written: never counted
                self._unreadable(journal, f"line {number} is not a change")
                break
        self._journal_lines = len(lines)
        now = self._clock()
        return {k: w for k, w in out.items() if isinstance(w.schedule, OneOff) and w.schedule.end > now}

    def _unreadable(self, path: Path, reason: str) -> None:
        aside = set_aside(path)
        event(log, logging.ERROR, "maintenance_state_unreadable", path=str(path), kept_as=str(aside),
              reason=f"{reason[:200]}; the windows opened through the API before the restart are not restored")
