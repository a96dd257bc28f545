"""Memory when discovered targets come and go: RSS with a full source, then after the file
shrinks to a handful, in one running collector.

    python -m benchmarks.discovery_memory [--targets 10000]

A file_sd source makes ``--targets`` TCP targets on loopback addresses (checked once an hour: what is measured is
holding them, not checking them); the file is then rewritten with ten, the collector reloads
through discovery, and the RSS is read again once the reload has applied. Printed: RSS at
start, with the targets, after they went, and what came back to the system.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from otel_health.collector import Collector
from otel_health.config.loader import load
from otel_health.probes import PROBES


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _groups(n: int) -> str:
    return json.dumps([{"targets": [f"127.{i // 65536 + 1}.{i // 256 % 256}.{i % 256}:9" for i in range(n)],
                        "labels": {"team": "bench", "rack": "r1"}}])


async def _run(targets: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        (base / "sd.json").write_text(_groups(10))
        path = base / "c.yaml"
        path.write_text("listen: 127.0.0.1:0\ndiscovery:\n  - name: inv\n    file_sd: {files: [sd.json]}\n"
                        f"    max_targets: {max(targets, 10)}\n"
                        "    target_template: {kind: tcp, host: '$(host)', port: 9, interval: 1h, timeout: 1s}\n"
                        "targets: []\n")
        collector = Collector(load(path, PROBES), source=lambda found: load(path, PROBES, found=found), otlp=False)
        await collector.start()
        try:
            start = _rss_mb()
            for count in (targets, 10):
                (base / "sd.json").write_text(_groups(count))
                deadline = time.monotonic() + 60
                while len(collector.config.targets) != count and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                await asyncio.sleep(2.0)  # the reload's memory handed back, off the loop
                print(f"{len(collector.config.targets):>6} targets: RSS {_rss_mb():.0f} MB")
            print(f"at start (10 targets): {start:.0f} MB")
        finally:
            await collector.stop(grace=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=10000)
    asyncio.run(_run(parser.parse_args().targets))


if __name__ == "__main__":
    main()
