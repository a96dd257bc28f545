"""What jobs report in: the last report of each heartbeat target, kept in ``state_dir``.

One record per configured target, replaced by each report: a flood of reports costs no memory.
With a ``state_dir`` the records are written (whole, to a new file that then replaces the old)
at most once a second and when the collector stops, and read back at start, so a restart does
not forget that a nightly job reported in.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .._files import NotFound, Unreadable, clean_temporaries, read_bounded, set_aside, write_json
from ..clock import WALL, Clock
from ..logs import event

__all__ = [
    "MESSAGE_LIMIT",
    "STATE_FILE",
    "Report",
    "Reports",
]

log = logging.getLogger("otel_health")
STATE_FILE = "heartbeats.json"
FORMAT = 1
MESSAGE_LIMIT = 500
MAX_STATE_BYTES = 16 * 1024 * 1024  # the file read back: one record per heartbeat target
FUTURE_SKEW = 300.0  # seconds a report read back may be dated ahead of now (clocks drift)

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Report:
    at: float  # Unix time it arrived
    ok: bool
    duration: float | None  # seconds the job says it ran
    message: str
    # time.monotonic() when it arrived in this process (None: read back after a restart): how
    # old it is does not move when the wall clock is set back or forward
    arrived: float | None = None

    def age(self, now: float) -> float:
        """Seconds since it arrived; a report dated ahead of ``now`` (read back) is as old as ``now``."""
        if self.arrived is not None:
            return time.monotonic() - self.arrived
        return max(0.0, now - self.at)


class Reports:
    def __init__(self, state_dir: Path | None = None, *, clock: Clock = WALL) -> None:
        self.clock = clock
        self._dir = state_dir
        self._last: dict[Key, Report] = {}
        self._dirty = False
        self.started = clock()  # before the first report, a target is unknown until period + grace from here
        if state_dir is not None:
            self._last = self._read(state_dir / STATE_FILE)

    def __len__(self) -> int:
        return len(self._last)

    def last(self, key: Key) -> Report | None:
        return self._last.get(key)

    def add(self, key: Key, report: Report) -> None:
        self._last[key] = report
        self._dirty = self._dir is not None

    def retain(self, live: Iterable[Key]) -> None:
        keep = set(live)
        for key in [k for k in self._last if k not in keep]:
            del self._last[key]

    def move(self, state_dir: Path | None) -> None:
        if state_dir != self._dir:
            self._dir = state_dir
            self._dirty = state_dir is not None

    def pending(self, *, force: bool = False) -> Callable[[], bool] | None:
        """The write of the records if they changed since the last one (or ``force``), to run off
        the event loop; None when there is nothing to write."""
        if self._dir is None or not (self._dirty or force):
            return None
        self._dirty = False
        doc = {"format": FORMAT, "reports": [
            {"name": n, "environment": e, "at": r.at, "ok": r.ok, "duration": r.duration, "message": r.message}
            for (n, e), r in self._last.items()]}
        path = self._dir / STATE_FILE
        return functools.partial(write_json, path, doc, failed="heartbeats_not_saved")

    def save(self, *, force: bool = False) -> None:
        """Write the records now if they changed (or ``force``): at stop, when nothing else runs."""
        write = self.pending(force=force)
        if write is not None:
            write()

    def _read(self, path: Path) -> dict[Key, Report]:
        clean_temporaries(path.parent, path.name)
        now = self.clock()
        try:
            doc = json.loads(read_bounded(path, MAX_STATE_BYTES))
            if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("reports"), list):
                raise ValueError(f"not a format {FORMAT} heartbeats file")
            out = {}
            for item in doc["reports"]:
                duration = item["duration"]
                at = float(item["at"])
                if not 0.0 <= at <= now + FUTURE_SKEW or (duration is not None and not 0.0 <= float(duration) < 1e9):
                    raise ValueError(f"a report of {str(item['name'])[:60]!r} is dated {at!r}, not a time it "
                                     "could have arrived")
                out[(str(item["name"]), str(item["environment"]))] = Report(
                    at, bool(item["ok"]), None if duration is None else float(duration),
                    str(item["message"])[:MESSAGE_LIMIT])
            return out
        except NotFound:
            return {}
        except Unreadable as exc:
            reason = str(exc)
        except (ValueError, KeyError, TypeError) as exc:
            reason = str(exc) if isinstance(exc, ValueError) else "malformed"
        aside = set_aside(path)
        event(log, logging.ERROR, "heartbeats_state_unreadable", path=str(path), kept_as=str(aside),
              reason=f"{reason[:200]}; heartbeat targets start unknown")
        return {}
