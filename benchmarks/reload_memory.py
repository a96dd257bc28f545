"""Do reloads leak? RSS of a running otel-health over forty reloads, with a failing threshold.

    python -m benchmarks.reload_memory [--targets 2000] [--reloads 40] [--budget-mb 5]

otel-health checks --targets TCP targets on a local listener every second; once every
target's history is full, it is reloaded by SIGHUP --reloads times, one a second (a label
changes every other time). RSS is read after the first five reloads and after the last; the
run fails (exit 1) when it grew by more than --budget-mb.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._proc import rss_mb, scrape
from benchmarks.reload_under_load import LISTENER, write_tcp_config
from tests.harness.procs import free_port, port_open, wait_until


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--reloads", type=int, default=40)
    parser.add_argument("--budget-mb", type=float, default=5.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="otel-health-reload-memory-"))
    listen, port = free_port(), free_port()
    config = workdir / "config.yaml"

    def write(revision: int) -> None:
        write_tcp_config(config, port=port, listener=listen, targets=args.targets, interval=1.0, timeout=0.5,
                         revision=revision % 2)

    write(0)
    listener = subprocess.Popen([sys.executable, "-c", LISTENER, str(listen)])
    process = subprocess.Popen([sys.executable, "-m", "otel_health", "run", "--config", str(config)],
                               stderr=(workdir / "otel-health.log").open("wb"))
    sizes: list[float] = []
    try:
        wait_until(lambda: port_open(port) and f"otel_health_targets {args.targets}" in scrape(port), timeout=60,
                   what="otel-health")
        time.sleep(25)  # twenty checks of every target: histories full
        for revision in range(1, args.reloads + 1):
            write(revision)
            process.send_signal(signal.SIGHUP)
            time.sleep(1.5)  # a reload reads the config in a process of its own, about a second
            if revision in (5, args.reloads):
                time.sleep(5)  # the collector settles (collects and freezes) after a reload
                sizes.append(rss_mb(process.pid))
        assert "otel_health_config_last_reload_successful 1" in scrape(port)
    finally:
        process.terminate()
        process.wait(timeout=30)
        listener.terminate()
    applied = (workdir / "otel-health.log").read_text().count("msg=reloaded")
    assert applied == args.reloads, f"{applied} of {args.reloads} reloads applied"
    growth = sizes[-1] - sizes[0]
    print(f"{args.targets} targets, {args.reloads} reloads: RSS {sizes[0]:.1f} MB after 5, {sizes[-1]:.1f} MB after "
          f"{args.reloads}: {growth:+.1f} MB (budget {args.budget_mb:g} MB)")
    return 0 if growth <= args.budget_mb else 1


if __name__ == "__main__":
    sys.exit(main())
