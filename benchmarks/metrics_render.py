"""How `/metrics` is rendered at scale: the full contract for N targets, three ways.

    python -m benchmarks.metrics_render [--targets 10000] [--rounds 5]

1. the OpenTelemetry PrometheusMetricReader (prometheus_client objects, then text);
2. otel-health's BridgeReader (the same SDK data straight to text);
3. prometheus_client alone rendering the same samples (no OpenTelemetry at all).
Prints milliseconds per render (median [range]) and the sample count.
"""

from __future__ import annotations

import argparse
import statistics
import time

from otel_health.config import Target
from otel_health.errors import ErrorType
from otel_health.probes.http import HttpOptions
from otel_health.result import CheckResult
from otel_health.telemetry import BridgeReader, cardinality_limits
from tests.harness.pipeline import Pipeline


def _targets(n: int) -> list[Target]:
    return [Target(name=f"svc-{i:05d}", kind="http", environment="prod", interval=15, timeout=5, retries=0,
                   slow_threshold=1, labels=(), options=HttpOptions(url=f"http://10.0.{i // 250}.{i % 250}/"))
            for i in range(n)]


def _fill(pipeline: Pipeline, targets: list[Target]) -> None:
    pipeline.set_targets(targets)
    now = time.time()
    for i, t in enumerate(targets):
        up = i % 10 != 0
        pipeline.record(t, CheckResult(up=up, duration=0.01 + (i % 100) / 1000, started_at=now,
                                       error_type=None if up else ErrorType.TIMEOUT, status_code=200,
                                       version="1.0", phases={"connect": 0.001, "request": 0.005}))


def _prometheus_client_same_samples(text: str):
    """A prometheus_client registry holding exactly the samples of ``text``."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric
    from prometheus_client.parser import text_string_to_metric_families

    families = list(text_string_to_metric_families(text))

    class Static:
        def collect(self):
            for f in families:
                m = Metric(f.name, f.documentation, f.type)
                m.samples = f.samples
                yield m

    registry = CollectorRegistry()
    registry.register(Static())
    return registry


def _time(fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, generate_latest

    targets = _targets(args.targets)
    registry = CollectorRegistry()
    limits = cardinality_limits(args.targets)
    reference = PrometheusMetricReader(disable_target_info=True, scope_info_enabled=False, registry=registry,
                                       cardinality_limits=limits)
    pipeline = Pipeline(lambda families, _: [BridgeReader(families=families, cardinality_limits=limits), reference])
    bridge = pipeline.readers[0]
    assert isinstance(bridge, BridgeReader)
    _fill(pipeline, targets)
    text = bridge.render().decode()
    samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    static = _prometheus_client_same_samples(text)
    results = {
        "OTel PrometheusMetricReader": _time(lambda: generate_latest(registry), args.rounds),
        "otel-health BridgeReader": _time(bridge.render, args.rounds),
        "prometheus_client, same samples": _time(lambda: generate_latest(static), args.rounds),
    }
    base = statistics.median(results["prometheus_client, same samples"])
    print(f"/metrics render, {args.targets} targets, {samples} samples, {args.rounds} rounds; ms median [range]:")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"  {name:34s} {med:8.1f} [{min(values):.1f}-{max(values):.1f}]  x{med / base:.2f} of prometheus_client")


if __name__ == "__main__":
    main()
