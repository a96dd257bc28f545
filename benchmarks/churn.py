"""A day of discovery churn: what the SDK holds, with the series of removed targets forgotten
and without (the SDK's own behaviour), side by side in one run.

    python -m benchmarks.churn [--targets 2000] [--rounds 288] [--replace 0.05]

--targets targets, every one checked once per round; each round (a refresh every five minutes:
288 make a day) replaces a --replace share of them with new ones, as an inventory in
service discovery does when hosts are replaced, and a reload applies the change. Both runs
record the same results through the collector's store and telemetry; the one "without" has
the forgetting switched off. Printed: the series the SDK holds at the end against the series
of live targets (the ratio that counts: 1.0 means nothing piles up), whether any series fell
into the overflow series (the cardinality limit is fixed at start), the Python memory held
(tracemalloc, which slows every allocation: the times are for comparison within the run),
the time a reload's apply takes and the part of it forgetting takes, and one render of
/metrics. Fails (exit 1) when, with forgetting, any series overflowed or more than three are
held per live target.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from typing import Any

from otel_health.config import Target
from otel_health.errors import ErrorType
from otel_health.probes.http import HttpOptions
from otel_health.result import CheckResult
from otel_health.telemetry import BridgeReader, cardinality_limits
from otel_health.telemetry import instruments as instruments_module
from tests.harness.pipeline import Pipeline, sdk_series


def _target(name: str) -> Target:
    return Target(name=name, kind="http", environment="prod", interval=15.0, timeout=5.0, retries=0,
                  slow_threshold=1.0, labels=(("team", "web"),), options=HttpOptions(url=f"http://{name}/"))


def _held(bridge: BridgeReader) -> tuple[int, int]:
    """(series, of which overflow) the SDK holds for ``bridge``."""
    held = [attributes for series in sdk_series(bridge).values() for attributes in series]
    return len(held), sum("otel.metric.overflow" in attributes for attributes in held)


def run(targets: int, rounds: int, replace: float, *, forgetting: bool) -> dict[str, Any]:
    original = instruments_module.forget
    spent = [0.0]

    def timed(reader: Any, keep: Any) -> int | None:
        started = time.perf_counter()
        try:
            return original(reader, keep)
        finally:
            spent[0] += time.perf_counter() - started

    instruments_module.forget = timed if forgetting else lambda reader, keep: None  # type: ignore[assignment]
    try:
        gc.collect()
        tracemalloc.start()
        readers: list[BridgeReader] = []
        pipeline = Pipeline(lambda families, resource: readers.append(  # type: ignore[func-returns-value]
            BridgeReader(families=families, cardinality_limits=cardinality_limits(targets))) or readers)
        bridge = readers[0]
        generation = list(range(targets))
        up = CheckResult(up=True, duration=0.01, started_at=time.time())
        down = CheckResult(up=False, duration=0.2, started_at=time.time(), error_type=ErrorType.HTTP_STATUS,
                           detail="HTTP 503")
        apply_s = 0.0
        fresh = targets
        per_round = max(1, int(targets * replace))
        for round_ in range(rounds):
            for i in range(per_round):
                generation[(round_ * per_round + i) % targets] = fresh
                fresh += 1
            live = [_target(f"host-{g}") for g in generation]
            started = time.perf_counter()
            pipeline.set_targets(live)
            apply_s += time.perf_counter() - started
            for n, target in enumerate(live):
                pipeline.record(target, down if (n + round_) % 50 == 0 else up)
        gc.collect()
        memory, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        series, overflow = _held(bridge)
        rendered = time.perf_counter()
        bridge.render()
        render_s = time.perf_counter() - rendered
        return {"series": series, "overflow": overflow, "memory_mb": memory / 2**20,
                "apply_ms": apply_s / rounds * 1000, "forget_ms": spent[0] / rounds * 1000,
                "render_ms": render_s * 1000, "retired": fresh - targets}
    finally:
        instruments_module.forget = original


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=288)
    parser.add_argument("--replace", type=float, default=0.05)
    args = parser.parse_args()
    with_ = run(args.targets, args.rounds, args.replace, forgetting=True)
    without = run(args.targets, args.rounds, args.replace, forgetting=False)
    print(f"{args.targets} targets, {args.rounds} reloads each replacing {args.replace:.0%} "
          f"({with_['retired']} targets retired)")
    for name, r in (("forgetting", with_), ("SDK as is", without)):
        print(f"  {name:10}  series held {r['series']:>8} ({r['series'] / args.targets:5.2f} per live target)  "
              f"overflow {r['overflow']:>6}  memory {r['memory_mb']:7.1f} MB  reload apply {r['apply_ms']:6.2f} ms "
              f"(forgetting {r['forget_ms']:5.2f} ms)  "
              f"render {r['render_ms']:7.1f} ms")
    print(f"  SDK as is / forgetting: series x{without['series'] / with_['series']:.1f}, "
          f"memory x{without['memory_mb'] / with_['memory_mb']:.1f}, reload apply "
          f"x{without['apply_ms'] / with_['apply_ms']:.2f}")
    limit = cardinality_limits(args.targets)[next(iter(cardinality_limits(args.targets)))]
    per_day = (without["series"] - with_["series"]) / max(args.rounds / 288, 1e-9)
    print(f"  cardinality limit {limit} per instrument; the SDK as is would reach it in about "
          f"{limit / max(per_day / 2, 1):.1f} days at this churn (new series per day across both instruments: "
          f"{per_day:.0f})")
    return 0 if with_["overflow"] == 0 and with_["series"] <= 3 * args.targets else 1


if __name__ == "__main__":
    raise SystemExit(main())
