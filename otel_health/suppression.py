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

import datetime as dt
import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._files import set_aside, write_json
from .clock import WALL, Clock
from .logs import event

__all__ = ["DAY", "WEEKDAYS", "Book", "OneOff", "Recurring", "Suppressed", "Window", "clock_minutes", "instant", "utc",
           "weekday_set", "zone"]

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
    return moment.timestamp()


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
FORMAT = 1


class Book:
    """The windows opened through the API: kept across reloads, and across restarts in
    ``state_dir`` (written whole to a new file that then replaces the old, so a crash leaves
    one or the other; a file that cannot be read is reported and set aside, never fatal)."""

    def __init__(self, state_dir: Path | None = None, *, clock: Clock = WALL) -> None:
        self._dir = state_dir
        self._clock = clock
        self._windows: dict[str, Window] = {}
        if state_dir is not None:
            self._windows = self._read(state_dir / STATE_FILE)

    def windows(self) -> list[Window]:
        return list(self._windows.values())

    def get(self, window_id: str) -> Window | None:
        return self._windows.get(window_id)

    def open(self, targets: Iterable[Key], start: float, end: float, comment: str) -> Window:
        window = Window(secrets.token_hex(8), OneOff(start, end), frozenset(targets), comment, "api", self._clock())
        self._windows[window.name] = window
        self._save()
        return window

    def end(self, window_id: str) -> bool:
        if self._windows.pop(window_id, None) is None:
            return False
        self._save()
        return True

    def expire(self, now: float) -> list[str]:
        """Forget the windows that have ended: their ids."""
        ended = [k for k, w in self._windows.items() if isinstance(w.schedule, OneOff) and w.schedule.end <= now]
        for key in ended:
            del self._windows[key]
        if ended:
            self._save()
        return ended

    def move(self, state_dir: Path | None) -> None:
        """Keep the windows in ``state_dir`` from now on (a reload changed it)."""
        if state_dir != self._dir:
            self._dir = state_dir
            self._save()

    def _save(self) -> None:
        if self._dir is None:
            return
        doc = {"format": FORMAT, "windows": [
            {"id": w.name, "targets": sorted([n, e] for n, e in w.targets or ()), "start": w.schedule.start,
             "end": w.schedule.end, "comment": w.comment, "created": w.created}
            for w in self._windows.values() if isinstance(w.schedule, OneOff)]}
        write_json(self._dir / STATE_FILE, doc, failed="maintenance_not_saved")

    def _read(self, path: Path) -> dict[str, Window]:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            self._unreadable(path, getattr(exc, "strerror", None) or type(exc).__name__)
            return {}
        try:
            doc = json.loads(text)
            if not isinstance(doc, Mapping) or doc.get("format") != FORMAT or not isinstance(doc.get("windows"), list):
                raise ValueError(f"not a format {FORMAT} maintenance file")
            out = {}
            for item in doc["windows"]:
                targets = frozenset((str(n), str(e)) for n, e in item["targets"])
                start, end, created = float(item["start"]), float(item["end"]), float(item["created"])
                window = Window(str(item["id"]), OneOff(start, end), targets, str(item["comment"]), "api", created)
                out[window.name] = window
        except (ValueError, KeyError, TypeError) as exc:
            self._unreadable(path, str(exc) if isinstance(exc, ValueError) else "a window is malformed")
            return {}
        now = self._clock()
        return {k: w for k, w in out.items() if isinstance(w.schedule, OneOff) and w.schedule.end > now}

    def _unreadable(self, path: Path, reason: str) -> None:
        aside = set_aside(path)
        event(log, logging.ERROR, "maintenance_state_unreadable", path=str(path), kept_as=str(aside),
              reason=f"{reason[:200]}; the windows opened through the API before the restart are not restored")
