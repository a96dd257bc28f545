"""What one Collector running the shipped pipeline takes: spans and metric points per core.

    python -m benchmarks.collector_capacity [--targets 5000] [--interval 5] [--keep 100] [--seconds 60]

otel-health checks a local nginx for --targets HTTP targets every --interval seconds and sends
every metric (every 15 s) and the traces --keep percent of healthy checks (every failed or
slow one) over OTLP to a real Collector running otel-collector.yaml (memory limiter, tail
sampling, batch, the Prometheus exporter, scraped every 15 s here), its kept traces dropped
by the debug exporter (benchmarks/otelcol-capacity.yaml). The window starts after two
intervals. Prints the spans and metric points the Collector accepted per second (its own
telemetry), its CPU and RSS, and per core: the figures docs/discovery-and-scaling.md's Scaling section divides by.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks._nginx import Nginx
from benchmarks._proc import checks_total, cpu_seconds, rss_mb, scrape
from tests.harness import servers
from tests.harness.procs import free_port, port_open, wait_until

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _accepted(port: int) -> tuple[float, float]:
    """(spans, metric points) the Collector's receivers accepted so far."""
    text = scrape(port)
    spans = points = 0.0
    for line in text.splitlines():
        if line.startswith("otelcol_receiver_accepted_spans"):
            spans += float(line.rsplit(" ", 1)[1])
        elif line.startswith("otelcol_receiver_accepted_metric_points"):
            points += float(line.rsplit(" ", 1)[1])
    return spans, points


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--keep", type=float, default=100.0, help="percent of healthy checks' traces sent")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="otel-health-collector-"))
    nginx = Nginx()
    collector = servers.start_otelcol(workdir / "otelcol", [REPO / "otel-collector.yaml",
                                                            HERE / "otelcol-capacity.yaml"],
                                      {"OTEL_HEALTH_KEEP_PERCENT": f"{args.keep:g}", "OTELCOL_LOG_LEVEL": "warn"})
    port = free_port()
    config = workdir / "capacity.yaml"
    config.write_text(f"listen: 127.0.0.1:{port}\nconcurrency: 512\n"
                      f"otlp:\n  endpoint: http://127.0.0.1:{collector.otlp_http}\n  export_interval: 15s\n"
                      f"  keep_percent: {args.keep:g}\n"
                      f"defaults:\n  interval: {args.interval}s\n  timeout: 5s\ntargets:\n"
                      + "".join(f"  - name: svc-{i:05d}\n    kind: http\n    url: {nginx.url}\n"
                                for i in range(args.targets)))
    proc = subprocess.Popen([sys.executable, "-m", "otel_health", "run", "--config", str(config), "--log-level",
                             "warning"], stdout=subprocess.DEVNULL, stderr=(workdir / "otel-health.log").open("wb"))
    exporter = f"http://127.0.0.1:{collector.prometheus_port}/metrics"
    try:
        wait_until(lambda: port_open(port), timeout=60, what="otel-health")
        time.sleep(max(args.interval * 2, 20.0))
        pid = collector.process.pid
        before, checks0 = _accepted(collector.telemetry_port), checks_total(scrape(port))
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        next_scrape = t0
        while time.monotonic() - t0 < args.seconds:
            if time.monotonic() >= next_scrape:  # as Prometheus would, every 15 s
                with urllib.request.urlopen(exporter, timeout=30) as response:
                    response.read()
                next_scrape += 15.0
            time.sleep(0.5)
        cpu, elapsed = cpu_seconds(pid) - cpu0, time.monotonic() - t0
        after, checks1 = _accepted(collector.telemetry_port), checks_total(scrape(port))
        spans, points = (after[0] - before[0]) / elapsed, (after[1] - before[1]) / elapsed
        cores = cpu / elapsed
        print(f"{args.targets} targets every {args.interval:g}s ({(checks1 - checks0) / elapsed:.0f} checks/s), "
              f"traces of {args.keep:g}% of healthy checks and of every failed or slow one, metrics every 15 s:")
        print(f"  Collector accepted {spans:.0f} spans/s and {points:.0f} metric points/s at {cores:.2f} cores, "
              f"RSS {rss_mb(pid):.0f} MB")
        if cores > 0:
            print(f"  per core: {spans / cores:.0f} spans/s with {points / cores:.0f} metric points/s beside them")
    finally:
        proc.terminate()
        proc.wait(30)
        collector.stop()
        nginx.stop()


if __name__ == "__main__":
    main()
