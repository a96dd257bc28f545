"""Scheduling: cadence, spread, the concurrency limit, never two checks of one target at once."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

from otel_health.scheduler import Scheduler, Start


async def test_each_target_runs_on_its_own_interval(make_target) -> None:
    calls: Counter[str] = Counter()

    async def check(target, start: Start) -> None:
        calls[target.name] += 1

    scheduler = Scheduler(check, concurrency=10)
    scheduler.set_targets([make_target("fast", interval=0.1, timeout=0.1), make_target("slow", interval=0.5,
                                                                                       timeout=0.1)])
    await asyncio.sleep(1.05)
    await scheduler.stop(grace=1)
    assert 8 <= calls["fast"] <= 11
    assert 2 <= calls["slow"] <= 3


async def test_a_target_still_running_is_skipped_and_counted_never_doubled(make_target) -> None:
    running = 0
    most = 0

    async def check(target, start: Start) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.35)
        running -= 1

    scheduler = Scheduler(check, concurrency=10)
    target = make_target("slowpoke", interval=0.1, timeout=0.1)
    scheduler.set_targets([target])
    await asyncio.sleep(1.0)
    await scheduler.stop(grace=1)
    assert most == 1
    assert scheduler.skipped(target.key) >= 4


async def test_concurrency_limit_holds_and_lag_is_reported(make_target) -> None:
    running = 0
    most = 0
    lags: list[float] = []

    async def check(target, start: Start) -> None:
        nonlocal running, most
        lags.append(start.lag)
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1

    scheduler = Scheduler(check, concurrency=3)
    scheduler.set_targets([make_target(f"t{i}", interval=0.2, timeout=0.1) for i in range(12)])
    await asyncio.sleep(0.7)
    await scheduler.stop(grace=1)
    assert most == 3
    assert lags and max(lags) > 0.0  # some waited for a slot


async def test_start_times_are_spread_over_the_first_interval(make_target) -> None:
    first: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    began = loop.time()

    async def check(target, start: Start) -> None:
        first.setdefault(target.name, loop.time() - began)

    scheduler = Scheduler(check, concurrency=100)
    scheduler.set_targets([make_target(f"t{i}", interval=1.0, timeout=0.5) for i in range(40)])
    await asyncio.sleep(1.1)
    await scheduler.stop(grace=1)
    assert len(first) == 40
    offsets = sorted(first.values())
    assert offsets[-1] - offsets[0] > 0.6  # not all at once
    assert sum(1 for o in offsets if o < 0.5) < 35


async def test_set_targets_keeps_unchanged_schedules_and_drops_removed(make_target) -> None:
    calls: Counter[str] = Counter()
    dues: dict[str, list[float]] = {}

    async def check(target, start: Start) -> None:
        calls[target.name] += 1
        dues.setdefault(target.name, []).append(start.due)

    scheduler = Scheduler(check, concurrency=10)
    keep, gone = make_target("keep", interval=0.1, timeout=0.05), make_target("gone", interval=0.1, timeout=0.05)
    scheduler.set_targets([keep, gone])
    await asyncio.sleep(0.35)
    before = len(dues["keep"])
    scheduler.set_targets([keep])
    gone_calls = calls["gone"]
    await asyncio.sleep(0.3)
    await scheduler.stop(grace=1)
    assert calls["gone"] == gone_calls
    # the same timer: due times go on at the same cadence across the reload, none restarted
    assert len(dues["keep"]) > before >= 2
    assert all(abs((b - a) - 0.1) < 1e-6 for a, b in itertools.pairwise(dues["keep"]))


async def test_stop_cancels_checks_that_outlive_the_grace(make_target) -> None:
    cancelled = asyncio.Event()

    async def check(target, start: Start) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    scheduler = Scheduler(check, concurrency=10)
    scheduler.set_targets([make_target("hang", interval=0.05, timeout=0.05)])
    await asyncio.sleep(0.2)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await scheduler.stop(grace=0.2)
    assert cancelled.is_set()
    assert loop.time() - t0 < 1.5


async def test_checks_due_within_one_window_start_together_and_keep_their_cadence(make_target) -> None:
    loop = asyncio.get_running_loop()
    starts: dict[str, list[float]] = {}
    runs: dict[str, list[Start]] = {}

    async def check(target, start: Start) -> None:
        starts.setdefault(target.name, []).append(loop.time())
        runs.setdefault(target.name, []).append(start)

    scheduler = Scheduler(check, concurrency=100, batch_window=0.1)
    targets = [make_target(f"t{i}", interval=0.5, timeout=0.1) for i in range(40)]
    scheduler.set_targets(targets)
    await asyncio.sleep(1.6)
    await scheduler.stop(grace=1)
    firsts = sorted(times[0] for times in starts.values())
    # Forty start times spread over 0.5 s fall into at most six 0.1 s windows (five, plus an edge).
    groups = 1 + sum(1 for a, b in itertools.pairwise(firsts) if b - a > 0.05)
    assert len(firsts) == 40 and groups <= 6
    for target in targets:
        ran = runs[target.name]
        assert len(ran) >= 3
        assert all(0 <= r.started - r.due < 0.1 + 0.05 for r in ran)  # at most one window late
        dues = [r.due for r in ran]
        assert all(abs((b - a) - 0.5) < 1e-6 for a, b in itertools.pairwise(dues))  # cadence exact
