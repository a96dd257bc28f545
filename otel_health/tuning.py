"""Process-wide tuning: garbage collection and thread switching, all in one place.

Everything here changes the whole interpreter, so it lives together and nowhere else:

- **GC thresholds and freeze.** Thousands of long-lived target objects and their per-series
  storage need not be walked by every full collection: :func:`tune_gc` raises the
  young-generation threshold, and :func:`freeze_long_lived` moves what exists now out of
  the collector's way (at start, and again once every target has been checked).
- **No cyclic GC during an export** (:func:`no_cyclic_gc`): an OTLP metric export at 10,000
  targets makes 290,000 short-lived points, freed by reference counting once sent.
- **Fine thread switching** (:func:`fine_switching`) while heavy telemetry work runs on a
  worker thread beside the event loop.
- **Open-file limit** (:func:`raise_descriptor_limit`): every check and every API connection
  is a descriptor; the soft limit is raised to the hard one where the system allows.

The README's performance section has the measurements behind each number.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
import threading
from collections.abc import Callable, Iterator

__all__ = [
    "GC_THRESHOLDS",
    "SWITCH_INTERVAL",
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

_lock = threading.Lock()
_users = 0
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


@contextlib.contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """No cyclic collection while an export builds and sends its points.

    Meanwhile the points would be walked by every young collection (30-90 ms each, measured)
    and push full ones (0.3 s), stalls of the event loop beside it. Process-wide for the
    duration: cyclic garbage made meanwhile waits for the next collection.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def fine_switching() -> Iterator[None]:
    """Switch threads every :data:`SWITCH_INTERVAL` while the block runs.

    The event loop gives up the GIL at every I/O callback. With the interpreter's default
    switch interval (5 ms), each hand-over to a busy worker thread (a ``/metrics`` collect,
    an OTLP metric export at thousands of targets) costs the loop up to 5 ms before it gets
    the GIL back: a convoy in which checks falling due start seconds late. The default comes
    back when the last user ends.
    """
    global _users, _normal
    with _lock:
        if _users == 0:
            _normal = sys.getswitchinterval()
            sys.setswitchinterval(min(SWITCH_INTERVAL, _normal))
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                sys.setswitchinterval(_normal)


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
    ``malloc_trim``): the allocator keeps it otherwise, and at 20,000 targets that was about
    40 MB after every export. A few milliseconds, without the GIL (ctypes releases it); run
    it off the event loop."""
    if _trim is not None:
        _trim(0)
