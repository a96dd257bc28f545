"""What the status page costs: the day kept per target, and rendering the page.

    python -m benchmarks.status_page [--targets 10000]

- memory: tracemalloc over making ``--targets`` days, each with every minute marked (the
  representation's whole cost per target: the 360-byte buffer, its object, the ``Day``);
- the page: rendered for 100, 1,000 and ``--targets`` targets with full histories (the last 20
  checks, and 90 days before today as the history store gives them), a tenth of them down
  (median of 3), its size; listing those that need a look (the default past ``status.LIMIT``
  targets) and every target (``?all=1``); and ``/api/v1/targets``' document for every target,
  uptimes over 24 hours, 7, 30 and 90 days included;
- the same for ``--targets`` with an SLO on every target (its error budget left on each row,
  from 90 days of tallies), beside the same without, in one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc
from array import array

from otel_health import status
from otel_health.config import Target
from otel_health.config.slo import Slo
from otel_health.days import DAY_MINUTES, Day
from otel_health.errors import ErrorType
from otel_health.probes.tcp import TcpOptions
from otel_health.result import CheckResult
from otel_health.server.documents import targets_document
from otel_health.state import StateStore


def day_bytes(count: int) -> float:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    days = [Day() for _ in range(count)]
    for day in days:
        for minute in range(0, DAY_MINUTES):
            day.mark(minute * 60.0, Day.UP if minute % 50 else Day.DOWN)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / count


def store(count: int, now: float, slo: bool = False) -> StateStore:
    objective = Slo(objective=0.999, window=30 * 86400.0) if slo else None
    targets = [Target(name=f"svc-{i:05d}", kind="tcp", environment="prod", interval=15, timeout=5, retries=0,
                      slow_threshold=1, labels=(("group", f"g{i % 20}"),), slo=objective,
                      options=TcpOptions(host="127.0.0.1", port=9)) for i in range(count)]
    s = StateStore()
    s.set_targets(targets)
    for i, state in enumerate(s.snapshot()):
        for k in range(20):
            up = k % 9 != 0 and not (i % 10 == 0 and k == 19)  # a tenth of the targets down now
            s.update(state, CheckResult(up=up, duration=0.01, started_at=now - (20 - k) * 300,
                                        error_type=None if up else ErrorType.TIMEOUT, detail="" if up else "no answer"))
        today = int(now // 86400)
        state.past.adopt(array("q", (n for day in range(today - 90, today) for n in (day, 1430 - i % 7, 1440))))
        if state.tally is not None:
            state.tally.past.adopt(array("q", (n for day in range(today - 90, today) for n in (day, 5760, i % 7))))
    return s


def render_ms(count: int, every: bool, slo: bool = False) -> tuple[float, int]:
    now = time.time()
    states = store(count, now, slo).snapshot()
    times, size = [], 0
    for _ in range(3):
        start = time.perf_counter()
        size = len(status.render(states, now=now, every=every).encode())
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), size


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=10_000)
    args = parser.parse_args()
    print(f"the day kept per target: {day_bytes(args.targets):.0f} bytes (1,440 minutes at two bits: 360)")
    for count in (100, 1_000, args.targets):
        for every in (False, True):
            ms, size = render_ms(count, every)
            shown = "every target" if every or count <= status.LIMIT else "those that need a look (a tenth)"
            print(f"page for {count} targets, listing {shown}: {ms:.0f} ms to render, {size / 1e6:.2f} MB")
    for slo in (False, True):
        now = time.time()
        states = store(args.targets, now, slo).snapshot()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            size = len(json.dumps(targets_document(states, (), now)))
            times.append((time.perf_counter() - start) * 1000)
        said = "an SLO on each" if slo else "no SLO"
        print(f"/api/v1/targets for {args.targets} targets with 90 days of history, {said}: "
              f"{statistics.median(times):.0f} ms to render, {size / 1e6:.1f} MB")
    for slo in (False, True):
        ms, size = render_ms(args.targets, True, slo)
        said = "with its error budget left" if slo else "without an SLO"
        print(f"page for {args.targets} targets, listing every target, each {said}: {ms:.0f} ms to render, "
              f"{size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
