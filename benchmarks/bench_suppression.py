"""What suppression costs: 10,000 targets with three dependencies each, and maintenance windows.

    python -m benchmarks.bench_suppression [--targets 10000] [--edges 3] [--windows 200] [--budget-ms 50]

Measured in one process, each the median of several runs:

- a full evaluation of every target's suppression (``StateStore.recompute``: after a reload,
  or a window on every target opening), against the budget (fails, exit 1, above it);
- the same store's pass over every target with no dependencies, as the reference a ratio is
  taken against (what walking the states costs on this machine);
- a dependency's debounced state flipping (its dependents re-evaluated, per check that flips);
- a tick of the window clock with ``--windows`` recurring windows (once a second);
- reading and validating the config with and without the dependencies (cycle check included).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable

from otel_health.config.loader import load_text
from otel_health.errors import ErrorType
from otel_health.probes import PROBES
from otel_health.result import CheckResult
from otel_health.state import StateStore


def config_text(targets: int, edges: int, windows: int) -> str:
    lines = ["environment: bench", "maintenance:"]
    for w in range(windows):
        lines.append(f"  - {{name: w{w}, targets: [t{w}], times: [{{start_time: '{w % 24:02d}:00', "
                     f"end_time: '{(w + 1) % 24:02d}:30'}}], weekdays: [monday:friday], location: Europe/Berlin}}")
    if not windows:
        lines.pop()
    lines.append("targets:")
    pick = random.Random(1)
    for i in range(targets):
        deps = [f"t{k}" for k in pick.sample(range(i), edges)] if i >= edges else []  # earlier ones: no cycle
        lines.append(f"  - {{name: t{i}, kind: tcp, host: 127.0.0.1, port: 9, depends_on: [{', '.join(deps)}]}}")
    return "\n".join(lines) + "\n"


def median_ms(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--edges", type=int, default=3)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--budget-ms", type=float, default=50.0)
    args = parser.parse_args()

    text = config_text(args.targets, args.edges, args.windows)
    plain = config_text(args.targets, 0, 0)
    load_with = median_ms(lambda: load_text(text, "bench.yaml", PROBES), 3)
    load_without = median_ms(lambda: load_text(plain, "bench.yaml", PROBES), 3)
    config = load_text(text, "bench.yaml", PROBES)
    edges = sum(len(t.depends_on) for t in config.targets)

    store = StateStore()
    store.set_targets(config.targets)
    now = time.time()
    store.set_windows(config.maintenance, now)
    down = CheckResult(up=False, duration=0.01, error_type=ErrorType.TIMEOUT, detail="no answer", started_at=now)
    up = CheckResult(up=True, duration=0.01, started_at=now)
    states = store.snapshot()
    for i, state in enumerate(states):
        store.update(state, down if i % 3 == 0 else up)  # a third of the dependencies down
    suppressed = sum(1 for s in states if s.suppressed is not None)

    reference = StateStore()
    reference.set_targets(load_text(plain, "bench.yaml", PROBES).targets)
    full = median_ms(store.recompute, args.runs)
    walk = median_ms(reference.recompute, args.runs)

    counts = Counter(name for t in config.targets for name in t.depends_on)
    name, dependents = counts.most_common(1)[0]
    busiest = store.get((name, "bench"))
    assert busiest is not None

    def flip() -> None:
        store.update(busiest, up if busiest.debounced_up is False else down)

    flip_ms = median_ms(flip, args.runs)
    clock = [now]

    def tick() -> None:
        clock[0] += 1.0
        store.tick(clock[0])

    tick_ms = median_ms(tick, args.runs)

    print(f"{args.targets} targets, {edges} dependency edges, {len(config.maintenance)} recurring windows; "
          f"{suppressed} targets suppressed")
    print(f"full evaluation of every target:    {full:7.2f} ms (budget {args.budget_ms:g} ms)")
    print(f"  the same pass without dependencies: {walk:7.2f} ms (ratio {full / walk:.2f})")
    print(f"a dependency flips ({dependents} dependents):   {flip_ms:7.3f} ms")
    print(f"a tick of the window clock:          {tick_ms:7.3f} ms")
    print(f"config read and checked:             {load_with:7.0f} ms with the dependencies and windows, "
          f"{load_without:.0f} ms without (ratio {load_with / load_without:.2f})")
    if full > args.budget_ms:
        print(f"FAIL: the full evaluation took {full:.1f} ms, over the {args.budget_ms:g} ms budget")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
