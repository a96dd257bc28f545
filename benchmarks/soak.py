"""A long run with faults mixed in; memory and file descriptors must stay flat.

    python -m benchmarks.soak [--minutes 30] [--targets 200]

otel-health checks healthy, failing, refused, hanging and TLS targets every 0.5 s (spans
exported to a Collector that drops them, /metrics scraped every 15 s). RSS and open file
descriptors are sampled every 30 s; after a 5-minute warm-up, RSS may not grow by more than
10% nor the median of open descriptors by more than 10, else the exit code is 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._proc import rss_mb, scrape
from benchmarks.bench_http import start_sink
from tests.harness import servers
from tests.harness.procs import free_port, port_open, wait_until


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="otel-health-soak-"))
    h = servers.start_http_targets(workdir / "httpd", password="soak-password")
    sink, sink_port = start_sink(workdir)
    kinds = [h.url("/ok"), h.url("/status/500"), f"http://127.0.0.1:{h.closed_port}/",
             f"http://127.0.0.1:{h.blackhole_port}/", h.url("/ok", tls=True)]
    port = free_port()
    config = workdir / "soak.yaml"
    config.write_text(f"listen: 127.0.0.1:{port}\notlp:\n  endpoint: http://127.0.0.1:{sink_port}\n"
                      "defaults:\n  interval: 0.5s\n  timeout: 0.4s\ntargets:\n"
                      + "".join(f"  - name: t{i}\n    kind: http\n    url: {kinds[i % len(kinds)]}\n"
                                f"    ca_file: {h.cert}\n" for i in range(args.targets)))
    proc = subprocess.Popen([sys.executable, "-m", "otel_health", "run", "--config", str(config), "--log-level",
                             "warning"], stdout=subprocess.DEVNULL, stderr=(workdir / "soak.log").open("wb"))
    samples: list[tuple[float, float, int]] = []
    try:
        wait_until(lambda: port_open(port), timeout=30, what="otel-health")
        start = time.monotonic()
        next_scrape = start
        while time.monotonic() - start < args.minutes * 60:
            if time.monotonic() >= next_scrape:
                scrape(port)
                next_scrape += 15
            fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
            samples.append(((time.monotonic() - start) / 60, rss_mb(proc.pid), fds))
            print(f"{samples[-1][0]:6.1f} min  RSS {samples[-1][1]:7.1f} MB  fds {fds}", flush=True)
            time.sleep(30)
    finally:
        proc.terminate()
        proc.wait(30)
        sink.terminate()
        h.stop()
    after = [s for s in samples if s[0] >= args.warmup]
    if len(after) < 2:
        print("soak: too short to judge")
        return 0
    rss_growth = (after[-1][1] - after[0][1]) / after[0][1]
    # Open descriptors move with the checks in flight at the moment: compare the halves' medians.
    half = len(after) // 2
    fd_growth = statistics.median(s[2] for s in after[half:]) - statistics.median(s[2] for s in after[:half] or after)
    print(f"soak: RSS {after[0][1]:.1f} -> {after[-1][1]:.1f} MB ({rss_growth:+.1%}) after warm-up; "
          f"fds {after[0][2]} -> {after[-1][2]}")
    return 0 if rss_growth < 0.10 and fd_growth <= 10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
