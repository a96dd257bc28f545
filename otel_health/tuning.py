"""Process-wide tuning: garbage collection and thread switching, all in one place.

Everything here changes the whole interpreter, so it lives together and nowhere else:

- **GC thresholds and freeze.** Thousands of long-lived target objects and their per-series
  storage need not be walked by every full collection: :func:`tune_gc` raises the
  young-generation threshold, and :func:`freeze_long_lived` moves what exists now out of
  the collector's way (at start, and again once every target has been checked).
- **No cyclic GC during a render or an export** (:func:`no_cyclic_gc`): an OTLP metric export
  at 10,000 targets makes 290,000 short-lived points, freed by reference counting once sent.
- **Fine thread switching** (:func:`fine_switching`) while heavy telemetry work runs on a
  worker thread beside the event loop, and **pauses** in that work (:class:`Pacer`) so the
  loop holds the interpreter lock most of the time.
- **Open-file limit** (:func:`raise_descriptor_limit`): every check and every API connection
  is a descriptor; the soft limit is raised to the hard one where the system allows.

docs/performance.md has the measurements behind each number.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = [
    "GC_OFF_AT_MOST",
    "GC_THRESHOLDS",
    "PAUSE_FACTOR",
    "SWITCH_INTERVAL",
    "Pacer",
    "fine_switching",
    "freeze_long_lived",
    "no_cyclic_gc",
    "raise_descriptor_limit",
    "release_freed_memory",
    "tune_gc",
]

# Young-generation collections every 10,000 allocations instead of 700: fewer short-lived
# objects (a check's request and result) are caught alive and promoted to the old generation.
GC_THRESHOLDS = (10_000, 10, 10)
SWITCH_INTERVAL = 0.0002  # seconds
GC_OFF_AT_MOST = 60.0  # seconds of renders and exports overlapping before a collection anyway
PAUSE_FACTOR = 2.0  # a worker thread's pause: this many times its work since the last one

T = TypeVar("T")

_lock = threading.Lock()
_gc_was_enabled = True
_normal = sys.getswitchinterval()


def raise_descriptor_limit(ceiling: int = 1 << 20) -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one (at most ``ceiling``); (before, now)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return 0, 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard if hard != resource.RLIM_INFINITY else ceiling, ceiling)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, wanted
    return soft, soft


def tune_gc() -> None:
    """Set the collector's GC thresholds and freeze what start-up built."""
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()


def freeze_long_lived() -> None:
    """Collect once, then freeze the survivors (per-series SDK storage, target state), so
    full GC passes walk only what churns: at 10,000 targets they took 0.1-0.3 s every few
    seconds, each a scheduler stall. What was frozen before is unfrozen first, so what a
    reload made garbage since (in cycles, which only the collector frees) is collected:
    without that, every reload left some behind for good. Call it after start-up and
    reloads, not in a loop."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class _WhileUsed:
    """A process-wide setting held while anyone needs it, from any thread: ``hold()`` when the
    first user comes, ``release()`` when the last one goes."""

    def __init__(self, hold: Callable[[], None], release: Callable[[], None]) -> None:
        self._hold, self._release = hold, release
        self.users = 0
        self.since = 0.0  # when it was last held, or last renewed

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with _lock:
            if self.users == 0:
                self._hold()
                self.since = time.monotonic()
            self.users += 1
        try:
            yield
        finally:
            with _lock:
                self.users -= 1
                if self.users == 0:
                    self._release()

    def renewed_after(self, seconds: float) -> bool:
        """True (once per ``seconds``) when it has been held that long without a break."""
        with _lock:
            if self.users and time.monotonic() - self.since > seconds:
                self.since = time.monotonic()
                return True
            return False


def _gc_off() -> None:
    global _gc_was_enabled
    _gc_was_enabled = gc.isenabled()
    gc.disable()


def _gc_back() -> None:
    if _gc_was_enabled:
        gc.enable()


def _switch_finely() -> None:
    global _normal
    _normal = sys.getswitchinterval()
    sys.setswitchinterval(min(SWITCH_INTERVAL, _normal))


_gc_held = _WhileUsed(_gc_off, _gc_back)
_switching_held = _WhileUsed(_switch_finely, lambda: sys.setswitchinterval(_normal))


@contextlib.contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """No cyclic collection while a render or an export holds its data points.

    They are hundreds of thousands of objects at 20,000 targets, alive for the seconds a paced
    render or export takes and freed by reference counting at its end. Meanwhile every young
    collection would walk them, promote them and trigger full collections (0.1-0.6 s each,
    stalls of the event loop). Process-wide, counted: a render and an export may overlap, and
    collection resumes when the last of them ends. Checks make no reference cycles (a test
    holds them to that), so little waits for the next collection; and should renders and
    exports overlap without end (scrapes every few seconds at a size where a render takes
    that long), one full collection is made every :data:`GC_OFF_AT_MOST` seconds anyway.
    """
    with _gc_held():
        yield
    if _gc_held.renewed_after(GC_OFF_AT_MOST):
        gc.collect()


def fine_switching() -> contextlib.AbstractContextManager[None]:
    """Switch threads every :data:`SWITCH_INTERVAL` while the block runs.

    The event loop gives up the GIL at every I/O callback. With the interpreter's default
    switch interval (5 ms), each hand-over to a busy worker thread (a ``/metrics`` collect,
    an OTLP metric export at thousands of targets) costs the loop up to 5 ms before it gets
    the GIL back: a convoy in which checks falling due start seconds late. The default comes
    back when the last user ends.
    """
    return _switching_held()


class Pacer:
    """Keeps a worker thread busy about a third of the time, in slices: :meth:`pause` sleeps
    :data:`PAUSE_FACTOR` times the wall time since the last pause (waits for the interpreter
    lock included: the busier the event loop, the longer the pauses). Once ``stop`` is set,
    it no longer pauses, so the rest of the work is done at once."""

    __slots__ = ("_since", "_stop")

    def __init__(self, stop: threading.Event | None = None) -> None:
        self._stop: threading.Event | None = stop if stop is not None else threading.Event()
        self._since = time.monotonic()

    def pause(self) -> None:
        if self._stop is not None and self._stop.wait((time.monotonic() - self._since) * PAUSE_FACTOR):
            self._stop = None
        self._since = time.monotonic()

    def resume(self) -> None:
        """Start the next slice now, without a pause: what passed since the last one was not
        this thread's work (a request waiting on the network, or retried through an outage)."""
        self._since = time.monotonic()

    def every(self, items: Iterable[T], n: int) -> Iterator[T]:
        """``items``, pausing after every ``n``."""
        it = iter(items)
        while piece := list(itertools.islice(it, n)):
            yield from piece
            self.pause()


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)
        trim: Callable[[int], int] = libc.malloc_trim  # glibc
    except (OSError, AttributeError):
        return None
    return trim


_trim = _malloc_trim()


def release_freed_memory() -> None:
    """Give the memory freed by a large render or export back to the system (glibc's
    ``malloc_trim``), which the allocator would keep otherwise (docs/performance.md's
    section has how much). A few milliseconds, without the GIL (ctypes releases it); run it
    off the event loop."""
    if _trim is not None:
        _trim(0)
