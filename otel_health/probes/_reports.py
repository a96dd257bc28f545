"""What jobs report in: the last report of each heartbeat target, kept in ``state_dir``.

One record per configured target, replaced by each report: a flood of reports costs no memory.
With a ``state_dir`` the records are written (whole, to a new file that then replaces the old)
at most once a second and when the collector stops, and read back at start, so a restart does
not forget that a nightly job reported in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .._files import set_aside, write_json
from ..clock import WALL, Clock
from ..logs import event

__all__ = ["STATE_FILE", "Report", "Reports"]

log = logging.getLogger("otel_health")
STATE_FILE = "heartbeats.json"
FORMAT = 1
MESSAGE_LIMIT = 500

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Report:
    at: float  # Unix time it arrived
    ok: bool
    duration: float | None  # seconds the job says it ran
    message: str


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

    def save(self, *, force: bool = False) -> None:
        """Write the records if they changed since the last write (or ``force``)."""
        if self._dir is None or not (self._dirty or force):
            return
        self._dirty = False
        doc = {"format": FORMAT, "reports": [
            {"name": n, "environment": e, "at": r.at, "ok": r.ok, "duration": r.duration, "message": r.message}
            for (n, e), r in self._last.items()]}
        write_json(self._dir / STATE_FILE, doc, failed="heartbeats_not_saved")

    def _read(self, path: Path) -> dict[Key, Report]:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("reports"), list):
                raise ValueError(f"not a format {FORMAT} heartbeats file")
            out = {}
            for item in doc["reports"]:
                duration = item["duration"]
                out[(str(item["name"]), str(item["environment"]))] = Report(
                    float(item["at"]), bool(item["ok"]), None if duration is None else float(duration),
                    str(item["message"])[:MESSAGE_LIMIT])
            return out
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            aside = set_aside(path)
            reason = getattr(exc, "strerror", None) or (str(exc) if isinstance(exc, ValueError) else "malformed")
            event(log, logging.ERROR, "heartbeats_state_unreadable", path=str(path), kept_as=str(aside),
                  reason=f"{reason[:200]}; heartbeat targets start unknown")
            return {}
