"""One asyncio loop that runs every target on its own interval.

Each target has a timer on the event loop (``call_at``); when it fires, the check waits for
a slot under the global concurrency limit, and its timeout starts only once it starts. A
target whose previous check still runs when it is due again is skipped and counted: never
two checks of one target at once. Start times are spread over the first interval by a
stable hash of the target, so a thousand targets do not all fire together.

Timers fire on a coarse grid (:data:`BATCH_WINDOW`): checks falling due within one window
start together, a little late, in one turn of the loop. Their connects, writes and reads then
share the loop's wake-ups instead of paying one each, which halves the CPU per check when
checks are spread evenly in time (docs/performance.md); the cost is at most one
window of scheduler lag.

The check function is told when its check was due and when it started (:class:`Start`), so
lag is measured where it happens; the scheduler's own counters are :attr:`Scheduler.in_flight`
and :meth:`Scheduler.skipped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from .config import Target

__all__ = ["BATCH_WINDOW", "CheckFn", "Scheduler", "Start"]

BATCH_WINDOW = 0.02  # seconds


@dataclass(frozen=True, slots=True)
class Start:
    """When a check was due and when it got its slot and started (event-loop clock, seconds)."""

    due: float
    started: float

    @property
    def lag(self) -> float:
        return max(self.started - self.due, 0.0)


CheckFn = Callable[[Target, Start], Awaitable[None]]


@dataclass(slots=True)
class _Entry:
    target: Target
    due: float = 0.0
    handle: asyncio.TimerHandle | None = None
    task: asyncio.Task[None] | None = None
    skipped: int = 0


class Scheduler:
    def __init__(
        self,
        check: CheckFn,
        *,
        concurrency: int,
        batch_window: float = BATCH_WINDOW,
    ) -> None:
        self._check = check
        self._window = batch_window
        self._limit = asyncio.Semaphore(concurrency)
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._batches: dict[int, tuple[asyncio.TimerHandle, list[_Entry]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = 0
        self._stopping = False

    @property
    def in_flight(self) -> int:
        """Checks running now."""
        return self._running

    def skipped(self, key: tuple[str, str]) -> int:
        """Checks of the target not started because its previous one still ran."""
        entry = self._entries.get(key)
        return entry.skipped if entry is not None else 0

    def set_targets(self, targets: Iterable[Target]) -> None:
        """Schedule ``targets``. Unchanged targets keep their timers; changed ones restart."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        wanted = {t.key: t for t in targets}
        for key, entry in list(self._entries.items()):
            if wanted.get(key) != entry.target:
                if entry.handle is not None:
                    entry.handle.cancel()
                del self._entries[key]
        for key, target in wanted.items():
            if key in self._entries:
                continue
            entry = _Entry(target)
            spread = (zlib.crc32(f"{target.name}\0{target.environment}".encode()) % 10_000) / 10_000
            entry.due = now + spread * target.interval
            self._entries[key] = entry
            self._arm(loop, entry)

    def _arm(self, loop: asyncio.AbstractEventLoop, entry: _Entry) -> None:
        window = self._window
        if window <= 0:
            entry.handle = loop.call_at(entry.due, self._fire, entry)
            return
        # One timer per window, however many checks fall due in it.
        slot = math.ceil(entry.due / window)
        batch = self._batches.get(slot)
        if batch is None:
            batch = self._batches[slot] = (loop.call_at(slot * window, self._fire_batch, slot), [])
        batch[1].append(entry)

    def _fire_batch(self, slot: int) -> None:
        _, entries = self._batches.pop(slot)
        for entry in entries:
            self._fire(entry)

    def _fire(self, entry: _Entry) -> None:
        if self._stopping or self._entries.get(entry.target.key) is not entry:
            return
        loop = asyncio.get_running_loop()
        due = entry.due
        interval = entry.target.interval
        entry.due = due + interval
        now = loop.time()
        if entry.due <= now:  # the loop fell more than an interval behind: keep the phase, drop the backlog
            entry.due += ((now - entry.due) // interval + 1) * interval
        self._arm(loop, entry)
        if entry.task is not None and not entry.task.done():
            entry.skipped += 1
            return
        task = loop.create_task(self._execute(entry, due))
        entry.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, entry: _Entry, due: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with self._limit:
                if self._stopping:
                    return
                self._running += 1
                try:
                    await self._check(entry.target, Start(due, loop.time()))
                finally:
                    self._running -= 1
        finally:
            entry.task = None  # a finished task (and its coroutine) need not live until the next check

    async def stop(self, grace: float) -> None:
        """Stop firing; let running checks end for up to ``grace`` seconds, then cancel them."""
        self._stopping = True
        for entry in self._entries.values():
            if entry.handle is not None:
                entry.handle.cancel()
        for handle, _ in self._batches.values():
            handle.cancel()
        self._batches.clear()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            if still:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait(still, timeout=1.0)
