"""Process-wide tuning: the counted pause of cyclic GC, the pacer of worker threads."""

from __future__ import annotations

import gc
import threading
from typing import Any

from otel_health import tuning


def test_cyclic_gc_stays_off_until_the_last_of_overlapping_users_ends() -> None:
    assert gc.isenabled()
    render, export = tuning.no_cyclic_gc(), tuning.no_cyclic_gc()
    render.__enter__()
    export.__enter__()
    assert not gc.isenabled()
    render.__exit__(None, None, None)  # the export still holds its points
    assert not gc.isenabled()
    export.__exit__(None, None, None)
    assert gc.isenabled()


def test_users_overlapping_without_end_still_get_a_full_collection(monkeypatch) -> None:
    monkeypatch.setattr(tuning, "GC_OFF_AT_MOST", 0.0)
    full: list[int] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(1)

    gc.callbacks.append(seen)
    try:
        with tuning.no_cyclic_gc():
            with tuning.no_cyclic_gc():
                pass  # ends while the other goes on: overdue, so it collects
            assert len(full) == 1 and not gc.isenabled()
        assert len(full) == 1 and gc.isenabled()  # the last one just turns collection back on
    finally:
        gc.callbacks.remove(seen)


def test_the_pacer_sleeps_in_proportion_and_stops_pausing_once_told(monkeypatch) -> None:
    clock = iter(range(0, 1000, 1))  # one second per reading
    monkeypatch.setattr(tuning.time, "monotonic", lambda: float(next(clock)))
    waits: list[float] = []

    class Stop(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout or 0.0)
            return len(waits) >= 3

    pacer = tuning.Pacer(Stop())  # created at 0
    assert list(pacer.every(range(10), 4)) == list(range(10))  # pauses after 4, 8 and 10
    assert waits == [tuning.PAUSE_FACTOR, tuning.PAUSE_FACTOR, tuning.PAUSE_FACTOR]
    pacer.pause()  # told to stop at the third: no more waiting
    assert len(waits) == 3


def test_time_the_pacer_is_told_was_not_work_is_not_paused_for(monkeypatch) -> None:
    now = [0.0]
    monkeypatch.setattr(tuning.time, "monotonic", lambda: now[0])
    waits: list[float] = []

    class Recording(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout or 0.0)
            return False

    pacer = tuning.Pacer(Recording())
    now[0] = 5.0  # a request waited five seconds on the network
    pacer.resume()
    now[0] = 5.5  # then half a second of work
    pacer.pause()
    assert waits == [0.5 * tuning.PAUSE_FACTOR]
