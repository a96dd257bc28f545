"""Reloads under load: every target changed, ten times, while thousands of checks run.

    python -m benchmarks.reload_under_load [--targets 3000] [--reloads 10] [--interval 5]

otel-health checks --targets TCP targets on a healthy local listener every --interval seconds
(timeout 1 s);
once every target has been checked, the config is rewritten (a label of every target
changes) and reloaded by POST /-/reload, --reloads times in a row. Prints how long the
reloads took, the checks started meanwhile, how many were down (every one of them is a false
down: the listener is healthy) and the share of checks that started over 100 ms late.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks._proc import lag_buckets, quantile, scrape, share_above
from tests.harness.procs import free_port, port_open, wait_until

LISTENER = """
import asyncio, sys
async def answer(reader, writer):
    writer.close()
async def main():
    server = await asyncio.start_server(answer, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    await server.serve_forever()
asyncio.run(main())
"""


def write_tcp_config(path: Path, *, port: int, listener: int, targets: int, interval: float, timeout: float,
                     revision: int) -> None:
    """``targets`` TCP targets on ``listener``, served on ``port``; ``revision`` is a label of each."""
    path.write_text(f"listen: 127.0.0.1:{port}\ndefaults: {{interval: {interval}s, timeout: {timeout}s}}\ntargets:\n"
                    + "".join(f"  - {{name: t{i}, kind: tcp, host: 127.0.0.1, port: {listener}, "
                              f"labels: {{rev: r{revision}}}}}\n" for i in range(targets)))


def _downs(text: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("tta_service_checks_total{") and 'outcome="down"' in line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=3000)
    parser.add_argument("--reloads", type=int, default=10)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="otel-health-reload-"))
    listen, port = free_port(), free_port()
    config = workdir / "config.yaml"

    def write(revision: int) -> None:
        write_tcp_config(config, port=port, listener=listen, targets=args.targets, interval=args.interval,
                         timeout=1.0, revision=revision)

    write(0)
    listener = subprocess.Popen([sys.executable, "-c", LISTENER, str(listen)])
    process = subprocess.Popen([sys.executable, "-m", "otel_health", "run", "--config", str(config)],
                               stderr=(workdir / "otel-health.log").open("wb"))
    try:
        wait_until(lambda: port_open(port) and f"otel_health_targets {args.targets}" in scrape(port), timeout=60,
                   what="otel-health")
        time.sleep(2 * args.interval + 2)  # every target checked twice or more
        before = scrape(port)
        started = time.monotonic()
        for revision in range(1, args.reloads + 1):
            write(revision)
            request = urllib.request.Request(f"http://127.0.0.1:{port}/-/reload", method="POST")
            with urllib.request.urlopen(request, timeout=120) as response:
                assert json.load(response)["status"] == "success"
        took = time.monotonic() - started
        time.sleep(6)
        after = scrape(port)
    finally:
        process.terminate()
        process.wait(timeout=30)
        listener.terminate()
    lag_before, lag_after = lag_buckets(before), lag_buckets(after)
    checks = lag_after[float("inf")] - lag_before[float("inf")]
    # Every series after the reloads carries the new label: its downs all came since the first reload.
    print(f"{args.reloads} reloads of {args.targets} changed targets under load: {took:.1f} s; "
          f"{checks:.0f} checks started meanwhile; down before: {_downs(before):.0f}, since: {_downs(after):.0f} "
          f"(each a false down); started over 100 ms late: {share_above(lag_before, lag_after, 0.1):.1%}, "
          f"lag p99 <= {quantile(lag_before, lag_after, 0.99) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
