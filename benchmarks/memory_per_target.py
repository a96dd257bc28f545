"""Memory per target by component: what the collector holds for each target once histories are full.

    python -m benchmarks.memory_per_target [--targets 5000] [--rounds 20] [--otlp]

Builds a collector for --targets HTTP targets (not started: no server, no network), records
--rounds checks per target through the collector's own path (root span, state store, meters;
a failure now and then), with a /metrics render and, with --otlp, an OTLP metric export
after each round (encoded, not sent), then compares tracemalloc snapshots taken before and
after and sorts what stays by the file that allocated it. Figures are per target, in bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import time
import tracemalloc
from collections import defaultdict
from typing import Any

COMPONENTS = (  # the first match wins
    ("otel_health/state.py", "state store: last result, debounced state, history"),
    ("otel_health/probes/_base.py", "state store: last result, debounced state, history"),
    ("otel_health/result.py", "state store: last result, debounced state, history"),
    ("<string>", "state store: last result, debounced state, history"),  # dataclass and tuple constructors
    # the results this run makes, as a probe would (the state holds the last one, the history its numbers)
    ("benchmarks/memory_per_target.py", "state store: last result, debounced state, history"),
    ("opentelemetry/sdk/metrics", "SDK metric storage (duration histogram, checks counter)"),
    ("otel_health/telemetry/wire.py", "OTLP encoder caches (encoded attribute sets)"),
    ("otel_health/telemetry/push.py", "OTLP export"),
    ("otel_health/telemetry/bridge.py", "bridge caches (rendered label sets)"),
    ("otel_health/telemetry/instruments.py", "telemetry: counter attribute sets"),
    ("otel_health/config/", "config: the targets"),
    ("otel_health/scheduler.py", "scheduler: timers, runs"),
)


class _Accepted:
    success = True


class _Discard:
    """In place of the OTLP exporter's HTTP client: the request is encoded, then dropped."""

    def export(self, payload: bytes) -> _Accepted:
        return _Accepted()


def _component(filename: str) -> str:
    name = filename.replace("\\", "/")
    return next((label for key, label in COMPONENTS if key in name), "other (imports, interpreter, the run itself)")


async def measure(targets: int, rounds: int, otlp: bool) -> dict[str, int]:
    from otel_health.collector import Collector
    from otel_health.config.loader import load_text
    from otel_health.errors import ErrorType
    from otel_health.probes import PROBES
    from otel_health.result import CheckResult

    endpoint = "otlp:\n  endpoint: http://127.0.0.1:9\n  export_interval: 3600s\n" if otlp else ""
    text = (f"listen: 127.0.0.1:0\n{endpoint}defaults:\n  interval: 15s\n  timeout: 5s\ntargets:\n"
            + "".join(f"  - name: svc-{i:05d}\n    kind: http\n    url: http://127.0.0.1:8080/\n"
                      for i in range(targets)))
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    config = load_text(text, "memory.yaml", PROBES)
    collector = Collector(config, otlp=otlp)
    for pusher in collector.telemetry._pushers:
        pusher._exporter._client = _Discard()  # type: ignore[attr-defined]
    collector.store.set_targets(config.targets)
    collector.scheduler.set_targets(config.targets)
    telemetry, store = collector.telemetry, collector.store
    now = time.time()
    for r in range(rounds):
        for target in config.targets:
            up = r % 7 != 3 or not target.name.endswith("7")
            with telemetry.check_span(target) as span:
                result = CheckResult(up=up, duration=0.002 + r * 1e-4, started_at=now + r * 15,
                                     status_code=200 if up else 503,
                                     error_type=None if up else ErrorType.HTTP_STATUS, detail="" if up else "HTTP 503",
                                     phases={"dns": 0.0, "connect": 0.0005, "request": 0.001, "body": 0.0001})
                state = store.current(target)
                assert state is not None
                state.update(result, telemetry.kept_trace_id(span, result), 0.001)
                telemetry.record(state.attrs, result, span)
        out: list[bytes] = []
        for _ in collector.bridge.render_steps(collector.bridge.collect_sdk(), out):
            pass
        del out
        for pusher in telemetry._pushers:
            pusher._collect_now()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    sizes: dict[str, int] = defaultdict(int)
    for stat in after.compare_to(before, "filename"):
        sizes[_component(stat.traceback[0].filename)] += stat.size_diff
    return dict(sizes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=20, help="checks per target (20 fill the history)")
    parser.add_argument("--otlp", action="store_true", help="with an OTLP metric export after each round")
    args = parser.parse_args()
    logging.getLogger("otel_health").setLevel(logging.CRITICAL)  # the failures it records are not news
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    sizes: Any = asyncio.run(measure(args.targets, args.rounds, args.otlp))
    total = sum(sizes.values())
    print(f"{args.targets} targets, {args.rounds} checks each, OTLP {'on' if args.otlp else 'off'}: "
          f"{total / args.targets:,.0f} bytes per target held (tracemalloc)")
    for label, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        print(f"  {size / args.targets:8,.0f}  {label}")


if __name__ == "__main__":
    main()
