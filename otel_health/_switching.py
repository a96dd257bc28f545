"""A short thread switch interval while heavy telemetry work runs beside the event loop.

The event loop gives up the GIL at every I/O callback. With the interpreter's default switch
interval (5 ms), each hand-over to a busy worker thread (a `/metrics` collect, an OTLP metric
export at thousands of targets) costs the loop up to 5 ms before it gets the GIL back: a
convoy in which checks falling due start seconds late. While such work runs, threads switch
every :data:`SWITCH_INTERVAL` instead; the default comes back when the last one ends.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator

__all__ = ["SWITCH_INTERVAL", "fine_switching"]

SWITCH_INTERVAL = 0.0002  # seconds

_lock = threading.Lock()
_users = 0
_normal = sys.getswitchinterval()


@contextlib.contextmanager
def fine_switching() -> Iterator[None]:
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
