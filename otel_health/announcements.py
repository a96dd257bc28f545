"""Operator notes on the status page ("the payment provider is degraded, we are on it"): from the
config (``announcements:``) and from ``POST /api/v1/announcements``, each with a severity, a
message in Markdown, a start and an optional end. Current ones are shown at the top of the page,
upcoming ones beneath them, and past ones in an archive below the targets.

A message is Markdown rendered by markdown-it (CommonMark) with raw HTML off: a ``<script>`` is
shown as text, a link may only be http(s) or mailto, and the page's Content-Security-Policy loads
no image. Those the API makes are kept in ``state_dir/history.sqlite3`` (its ``announcements``
table) and survive restarts; without ``state_dir`` they last as long as the process. A write that
fails is refused (503), never answered as done. At most :data:`MAX_OPEN` current or upcoming
ones; past ones are kept ``history_days``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup

from .clock import WALL, Clock
from .logs import event, iso_time

__all__ = ["MAX_MESSAGE", "MAX_OPEN", "SEVERITIES", "Announcement", "NotSaved", "Notices", "rendered"]

log = logging.getLogger("otel_health.announcements")

_FILE = "history.sqlite3"  # the history store's file (history.FILE): one embedded store

SEVERITIES = ("info", "maintenance", "warning", "outage")
MAX_MESSAGE = 4000  # characters of Markdown
MAX_OPEN = 50  # current and upcoming announcements the API keeps at once
_SCHEMES = ("http://", "https://", "mailto:")


@dataclass(frozen=True, slots=True)
class Announcement:
    id: str  # the config's name, or one the API made
    severity: str
    message: str  # Markdown, as given
    start: float
    end: float | None  # None: until ended
    source: str  # "config" or "api"

    def current(self, now: float) -> bool:
        return self.start <= now and (self.end is None or now < self.end)

    def over(self, now: float) -> bool:
        return self.end is not None and self.end <= now

    def document(self, now: float) -> dict[str, Any]:
        return {"id": self.id, "severity": self.severity, "message": self.message, "source": self.source,
                "start": iso_time(self.start), "end": iso_time(self.end) if self.end is not None else None,
                "current": self.current(now)}


class NotSaved(Exception):
    """An announcement the store could not write: the API answers 503 (or 409 when full)."""

    def __init__(self, reason: str, *, full: bool = False) -> None:
        super().__init__(reason)
        self.full = full


@functools.lru_cache(maxsize=1)
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).disable("image")
    allowed = md.validateLink
    md.validateLink = lambda url: allowed(url) and url.strip().lower().startswith(_SCHEMES)  # type: ignore[method-assign]
    return md


@functools.lru_cache(maxsize=256)
def rendered(message: str) -> Markup:
    """The message's Markdown as HTML safe to put in the page: raw HTML escaped, links http(s)
    or mailto only (others left as text), no images."""
    return Markup(_markdown().render(message))  # noqa: S704 - markdown-it escapes raw HTML (html=False)


class Notices:
    """The announcements the API made (the config's come with each configuration)."""

    def __init__(self, state_dir: Path | None, *, days: int = 90, clock: Clock = WALL) -> None:
        self._path = state_dir / _FILE if state_dir is not None else None
        self._days = days
        self._clock = clock
        self._made: list[Announcement] = []
        self._db: sqlite3.Connection | None = None
        self._mutex = threading.Lock()

    def all(self) -> list[Announcement]:
        return list(self._made)

    async def load(self) -> None:
        """What the file holds (the past ones older than ``history_days`` left out)."""
        if self._path is None:
            return
        try:
            rows = await asyncio.to_thread(self._run, "SELECT id, severity, message, start, end_at FROM "
                                                      "announcements WHERE end_at IS NULL OR end_at > ? ORDER BY start",
                                           (self._clock() - self._days * 86400,))
        except (sqlite3.Error, OSError) as exc:
            event(log, logging.WARNING, "announcements_read_failed", file=str(self._path),
                  reason=f"{type(exc).__name__}: {exc}"[:300], consequence="the API's announcements are not shown")
            return
        self._made = [Announcement(ident, severity, message, start, end, "api")
                      for ident, severity, message, start, end in rows]

    def move(self, state_dir: Path | None, days: int) -> None:
        """A reload's ``state_dir`` (the next load reads the new one) and ``history_days``."""
        self._days = days
        new = state_dir / _FILE if state_dir is not None else None
        if new != self._path:
            with self._mutex:
                if self._db is not None:
                    self._db.close()
                    self._db = None
            self._path = new

    async def add(self, severity: str, message: str, start: float, end: float | None) -> Announcement:
        now = self._clock()
        if sum(1 for a in self._made if not a.over(now)) >= MAX_OPEN:
            raise NotSaved(f"{MAX_OPEN} announcements are current or upcoming already; end one first", full=True)
        made = Announcement(secrets.token_hex(6), severity, message, start, end, "api")
        if self._path is not None:
            await self._save("INSERT INTO announcements (id, severity, message, start, end_at) VALUES (?, ?, ?, ?, ?)",
                             (made.id, severity, message, start, end))
        self._made.append(made)
        await self._trim(now)
        return made

    async def end(self, ident: str) -> bool:
        """End one now (it goes to the archive); False when there is no such current one."""
        now = self._clock()
        found = next((a for a in self._made if a.id == ident and not a.over(now)), None)
        if found is None:
            return False
        ended = Announcement(found.id, found.severity, found.message, min(found.start, now), now, "api")
        if self._path is not None:
            await self._save("UPDATE announcements SET start = ?, end_at = ? WHERE id = ?", (ended.start, now, ident))
        self._made[self._made.index(found)] = ended
        return True

    async def _trim(self, now: float) -> None:
        old = now - self._days * 86400
        if any(a.end is not None and a.end <= old for a in self._made):
            self._made = [a for a in self._made if a.end is None or a.end > old]
            if self._path is not None:
                with contextlib.suppress(NotSaved):  # what is not trimmed now is trimmed next time
                    await self._save("DELETE FROM announcements WHERE end_at IS NOT NULL AND end_at <= ?", (old,))

    async def _save(self, statement: str, values: Sequence[Any]) -> None:
        try:
            await asyncio.to_thread(self._run, statement, values)
        except (sqlite3.Error, OSError) as exc:
            raise NotSaved(f"the announcement could not be kept in {self._path} ({type(exc).__name__}: "
                           f"{str(exc)[:120]}); nothing was changed") from None

    def _run(self, statement: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._mutex:
            if self._db is None:
                assert self._path is not None
                self._path.parent.mkdir(exist_ok=True)  # state_dir, the first time
                db = sqlite3.connect(self._path, timeout=2.0, isolation_level=None, check_same_thread=False)
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("CREATE TABLE IF NOT EXISTS announcements (id TEXT PRIMARY KEY, severity TEXT NOT NULL, "
                               "message TEXT NOT NULL, start REAL NOT NULL, end_at REAL)")
                except BaseException:
                    db.close()
                    raise
                self._db = db
            return self._db.execute(statement, values).fetchall()

    def close(self) -> None:
        with self._mutex:
            if self._db is not None:
                self._db.close()
                self._db = None
