"""The wall clock, one callable passed to whatever reads the date or the time of day.

Maintenance windows open on weekdays and times of day, heartbeats are late after a period,
the status page draws the last 24 hours, a certificate has days left: each reads ``now`` from
the :data:`Clock` it was given, never from :func:`time.time` itself, so that a test can run
the collector at any instant it sets (a Sunday, a minute before midnight, a DST change) and
pass on every day of the week. Durations are not the wall clock's business: they come from
``time.perf_counter`` or ``time.monotonic``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["WALL", "Clock"]

Clock = Callable[[], float]
"""Unix time now, in seconds."""

WALL: Clock = time.time
