"""A wall clock the test sets, and the instants every test about the date or the time of day runs at.

A collector given a :class:`SetClock` reads the date and the time of day from it (maintenance
windows, heartbeats, the status page, certificates' days left); durations and timeouts still
come from the real monotonic clock, so the set clock runs at the real pace from the instant
it was set to.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from typing import NamedTuple
from zoneinfo import ZoneInfo

from otel_health.config import Config
from otel_health.suppression import Recurring

__all__ = ["INSTANTS", "WEDNESDAY_NOON", "Instant", "SetClock", "at", "reads_the_date"]


def at(iso: str) -> float:
    """Unix time of an ISO 8601 instant with its offset (``2026-12-02T12:00:00Z``)."""
    moment = dt.datetime.fromisoformat(iso)
    assert moment.tzinfo is not None, f"{iso}: give the offset, the test must not read the machine's zone"
    return moment.timestamp()


class SetClock:
    """Unix time starting at an instant the test sets and running at the real pace from there."""

    def __init__(self, start: str | float) -> None:
        self._at = at(start) if isinstance(start, str) else start
        self._since = time.monotonic()

    def __call__(self) -> float:
        return self._at + (time.monotonic() - self._since)

    def set(self, instant: str | float) -> None:
        """Jump to ``instant`` (forward or back, as an operator's clock may be set)."""
        self._at = at(instant) if isinstance(instant, str) else instant
        self._since = time.monotonic()

    def advance(self, seconds: float) -> None:
        self.set(self() + seconds)


class Instant(NamedTuple):
    name: str
    iso: str

    @property
    def time(self) -> float:
        return at(self.iso)

    def local(self, zone: str) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.time, ZoneInfo(zone))


WEDNESDAY_NOON = "2026-12-02T12:00:00Z"

# Each weekday; either side of midnight going into and out of a Sunday, in UTC and in Berlin;
# both of Berlin's daylight-saving changes of 2026 (each on a Sunday) and the hour either side.
_MONDAY_NOON = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

INSTANTS = [
    *(Instant(f"{day}-noon-utc", (_MONDAY_NOON + dt.timedelta(days=i)).isoformat()) for i, day in enumerate(_DAYS)),
    Instant("saturday-before-midnight-utc", "2026-12-05T23:59:59Z"),
    Instant("sunday-after-midnight-utc", "2026-12-06T00:00:00Z"),
    Instant("sunday-before-midnight-utc", "2026-12-06T23:59:59Z"),
    Instant("monday-after-midnight-utc", "2026-12-07T00:00:00Z"),
    Instant("saturday-before-midnight-berlin", "2026-12-05T23:59:59+01:00"),
    Instant("sunday-after-midnight-berlin", "2026-12-06T00:00:00+01:00"),
    Instant("sunday-before-midnight-berlin", "2026-12-06T23:59:59+01:00"),
    Instant("monday-after-midnight-berlin", "2026-12-07T00:00:00+01:00"),
    Instant("before-spring-forward-berlin", "2026-03-29T01:59:59+01:00"),
    Instant("after-spring-forward-berlin", "2026-03-29T03:00:00+02:00"),
    Instant("monday-after-spring-forward-berlin", "2026-03-30T00:00:00+02:00"),
    Instant("before-fall-back-berlin", "2026-10-25T02:59:59+02:00"),
    Instant("after-fall-back-berlin", "2026-10-25T02:00:00+01:00"),
    Instant("saturday-before-fall-back-berlin", "2026-10-24T23:59:59+02:00"),
]


def reads_the_date(config: Config, *, start: float = 0.0) -> bool:
    """Whether what ``config`` suppresses depends on the date or the time of day: a recurring
    window that is open at some minutes of a week and closed at others."""
    schedules = {w.schedule for w in config.maintenance if isinstance(w.schedule, Recurring)}
    return any(len(_states(s, (start + minute * 60 for minute in range(8 * 24 * 60)))) > 1
               for s in schedules)


def _states(schedule: Recurring, instants: Iterable[float]) -> set[bool]:
    return {schedule.active(t) for t in instants}
