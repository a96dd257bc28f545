"""10,000 targets at a 15 s interval (about 667 checks/s), scraped by Prometheus every 15 s.

    python -m benchmarks.bench_scale [--targets 10000] [--seconds 90] [--otlp] [--history]

otel-health checks a local nginx (fresh connection per check) for every target while a real
Prometheus scrapes its /metrics; the window starts after two intervals (warm-up). Prints:
checks/s, p50/p99 scheduler lag over the run (scrapes included), RSS, whether every target's
series are present (no overflow series), the scrape time Prometheus measured, and
prometheus_client rendering the same samples, as a ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._nginx import Nginx
from benchmarks._proc import checks_total, cpu_seconds, lag_buckets, quantile, rss_mb, scrape, share_above
from benchmarks.bench_http import start_sink
from benchmarks.metrics_render import _prometheus_client_same_samples
from tests.harness import servers
from tests.harness.procs import free_port, port_open, wait_until


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--history", action="store_true",
                        help="keep the history store in a state_dir (written once a minute)")
    parser.add_argument("--otlp", action="store_true",
                        help="also export metrics and spans over OTLP (to a local Collector that drops them)")
    args = parser.parse_args()
    from prometheus_client import generate_latest

    workdir = Path(tempfile.mkdtemp(prefix="otel-health-scale-"))
    nginx = Nginx()
    port = free_port()
    config = workdir / "scale.yaml"
    sink = None
    otlp = ""
    if args.otlp:
        sink, sink_port = start_sink(workdir)
        otlp = f"otlp:\n  endpoint: http://127.0.0.1:{sink_port}\n  export_interval: {args.interval:g}s\n"
    state = f"state_dir: {workdir / 'state'}\n" if args.history else ""
    if args.history:
        (workdir / "state").mkdir()
    config.write_text(f"listen: 127.0.0.1:{port}\nconcurrency: 512\n{otlp}{state}"
                      f"defaults:\n  interval: {args.interval}s\n  timeout: 5s\ntargets:\n"
                      + "".join(f"  - name: svc-{i:05d}\n    kind: http\n    url: {nginx.url}\n"
                                for i in range(args.targets)))
    proc = subprocess.Popen([sys.executable, "-m", "otel_health", "run", "--config", str(config), "--log-level",
                             "warning"], stdout=subprocess.DEVNULL, stderr=(workdir / "otel-health.log").open("wb"))
    prometheus = servers.start_prometheus(workdir / "prometheus", (
        f"global:\n  scrape_interval: {args.interval:g}s\n  scrape_timeout: 10s\n"
        f"scrape_configs:\n  - job_name: scale\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"))
    try:
        wait_until(lambda: port_open(port), timeout=60, what="otel-health")
        # Every target checked twice, the first scrapes done, and the one-off collection made
        # once every target has been checked (a full collection before the long-lived objects
        # are frozen: about a second at 20,000 targets) behind: the window is the steady state.
        time.sleep(args.interval * 2 + 5)
        before = scrape(port)
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(args.seconds)
        after = scrape(port)
        cpu, elapsed = cpu_seconds(proc.pid) - cpu0, time.monotonic() - t0
        checks = checks_total(after) - checks_total(before)
        b0, b1 = lag_buckets(before), lag_buckets(after)
        up_series = sum(1 for line in after.splitlines() if line.startswith("tta_service_up{"))
        overflow = "otel_metric_overflow" in after
        samples = sum(1 for line in after.splitlines() if line and not line.startswith("#"))
        scrape_times = [float(s["value"][1]) for s in prometheus.query('scrape_duration_seconds{job="scale"}')]
        series_in_prometheus = prometheus.query('count(tta_service_up{job="scale"})')
        static = _prometheus_client_same_samples(after)
        start = time.perf_counter()
        generate_latest(static)
        reference_ms = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        scrape(port)
        ours_ms = (time.perf_counter() - start) * 1000
        print(f"{args.targets} targets every {args.interval:g}s for {args.seconds:g}s, Prometheus scraping every "
              f"{args.interval:g}s" + (", OTLP export of metrics and every span" if args.otlp else "")
              + (", the history store written once a minute" if args.history else "") + ":")
        print(f"  checks/s {checks / elapsed:.0f}  CPU {cpu / elapsed:.2f} cores  "
              f"CPU-s/1000 checks {cpu / checks * 1000:.3f}")
        p50, p99 = quantile(b0, b1, 0.5) * 1000, quantile(b0, b1, 0.99) * 1000
        late = share_above(b0, b1, 0.1) * 100
        print(f"  scheduler lag p50 <= {p50:.1f} ms  p99 <= {p99:.1f} ms (bucket bounds; scrapes included); "
              f"checks started over 100 ms late: {late:.2f}%")
        print(f"  RSS {rss_mb(proc.pid):.0f} MB")
        print(f"  tta_service_up series {up_series} (in Prometheus: "
              f"{series_in_prometheus[0]['value'][1] if series_in_prometheus else 0}); overflow series: {overflow}")
        scrape_ms = scrape_times[0] * 1000 if scrape_times else 0
        print(f"  /metrics: {samples} samples; Prometheus scrape {scrape_ms:.0f} ms;"
              f" one GET {ours_ms:.0f} ms vs prometheus_client rendering the same samples {reference_ms:.0f} ms: "
              f"x{ours_ms / reference_ms:.2f}")
    finally:
        proc.terminate()
        proc.wait(30)
        prometheus.stop()
        nginx.stop()
        if sink is not None:
            sink.terminate()
            sink.wait(30)


if __name__ == "__main__":
    main()
