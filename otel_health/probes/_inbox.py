"""What a push kind is told from outside: a job that reports in (a heartbeat) rather than a
target the collector asks. One interface for every such kind: the server's report route
takes a report through it, and the collector keeps what it holds where a restart finds it.

A kind that takes reports gives its probe an :class:`Inbox` (``Probe.inbox``); the collector
gathers them in :class:`Inboxes` and hands that one object to the server and to its tick.
Neither knows which kinds push."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from ..config import Target

__all__ = ["Inbox", "Inboxes"]

Key = tuple[str, str]


class Inbox(Protocol):
    """A push kind's reports: taken in (the API), read by its probe, kept in ``state_dir``."""

    def takes(self, target: Target) -> bool:
        """Whether ``target`` takes reports here."""
        ...

    def knows(self, target: Target, token: str) -> bool:
        """Whether ``token`` is ``target``'s own (compared in constant time)."""
        ...

    def accept(self, target: Target, token: str, *, ok: bool, duration: float | None, message: str) -> bool:
        """Take a report for ``target`` if ``token`` is its own; False when it is not."""
        ...

    def pending(self) -> Callable[[], bool] | None:
        """The write of what changed, to run off the event loop; None when nothing did."""
        ...

    def save(self) -> None:
        """Write what changed now: at stop, when nothing else runs."""
        ...

    def move(self, state_dir: Path | None) -> None:
        """Keep what it holds in ``state_dir`` from now on (a reload changed it)."""
        ...

    def retain(self, live: Iterable[Key]) -> None:
        """Forget the targets no longer configured."""
        ...


class Inboxes:
    """Every push kind's inbox as one: the first that takes a target answers for it."""

    def __init__(self, inboxes: Iterable[Inbox]) -> None:
        self._all = tuple(inboxes)

    def _of(self, target: Target) -> Inbox | None:
        return next((inbox for inbox in self._all if inbox.takes(target)), None)

    def takes(self, target: Target) -> bool:
        return self._of(target) is not None

    def knows(self, target: Target, token: str) -> bool:
        inbox = self._of(target)
        return inbox is not None and inbox.knows(target, token)

    def accept(self, target: Target, token: str, *, ok: bool, duration: float | None, message: str) -> bool:
        inbox = self._of(target)
        return inbox is not None and inbox.accept(target, token, ok=ok, duration=duration, message=message)

    def pending(self) -> Callable[[], bool] | None:
        writes = [write for inbox in self._all if (write := inbox.pending()) is not None]
        if not writes:
            return None
        return lambda: all([write() for write in writes])  # every write runs, whatever the first says

    def save(self) -> None:
        for inbox in self._all:
            inbox.save()

    def move(self, state_dir: Path | None) -> None:
        for inbox in self._all:
            inbox.move(state_dir)

    def retain(self, live: Iterable[Key]) -> None:
        keys = list(live)
        for inbox in self._all:
            inbox.retain(keys)
