"""Where an HTTP check's CPU goes: py-spy samples otel-health under load, grouped by function.

    python -m benchmarks.profile_http [--targets 200] [--interval 0.5] [--seconds 20]

otel-health checks a local nginx with everything on (spans exported over OTLP to a
Collector that drops them, metrics, scheduler) while py-spy samples every thread at 200 Hz.
Prints the share of samples per thread, per function (self) and per function with what it
calls (inclusive). Needs py-spy (`pip install -e '.[bench]'`) and, for py-spy, ptrace rights.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._nginx import Nginx
from benchmarks.bench_http import start_sink
from tests.harness.procs import free_port, port_open, wait_until

_FRAME = re.compile(r"(.*) \((.*?):(\d+)\)$")


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    function, path, _ = match.groups()
    return f"{function} ({path.split('site-packages/')[-1].split(str(Path.cwd()) + '/')[-1]})"


def summarise(raw: Path, top: int) -> None:
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[re.sub(r"\s*\(\d+\)", "", frames[0])[:60]] += n
        names = [_short(f) for f in frames[1:]]
        if names:
            self_time[names[-1]] += n
        for name in set(names):
            inclusive[name] += n
    print(f"{total} samples")
    for title, counter, rows in (("threads", threads, 6), ("self", self_time, top), ("inclusive", inclusive, top)):
        print(title)
        for name, n in counter.most_common(rows):
            print(f"  {n / total:6.1%}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    py_spy = Path(sys.executable).with_name("py-spy")
    assert py_spy.exists(), "py-spy not found: pip install -e '.[bench]'"
    workdir = Path(tempfile.mkdtemp(prefix="otel-health-profile-"))
    nginx = Nginx()
    sink, sink_port = start_sink(workdir)
    port = free_port()
    config = workdir / "otel-health.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nconcurrency: 64\n"
        f"otlp:\n  endpoint: http://127.0.0.1:{sink_port}\n  export_interval: 15s\n"
        f"defaults:\n  interval: {args.interval}s\n  timeout: {min(args.interval, 5)}s\ntargets:\n"
        + "".join(f"  - name: t{i}\n    kind: http\n    url: {nginx.url}\n" for i in range(args.targets)))
    proc = subprocess.Popen([sys.executable, "-m", "otel_health", "run", "--config", str(config), "--log-level",
                             "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    raw = workdir / "profile.txt"
    try:
        wait_until(lambda: port_open(port), timeout=30, what="otel-health")
        time.sleep(args.interval * 2 + 1)
        subprocess.run([str(py_spy), "record", "-p", str(proc.pid), "-d", str(args.seconds), "-r", "200", "-f", "raw",
                        "-o", str(raw), "--threads", "--nonblocking"], check=True, capture_output=True,
                       timeout=args.seconds + 60)
    finally:
        proc.terminate()
        proc.wait(15)
        sink.terminate()
        nginx.stop()
    print(f"otel-health, {args.targets} HTTP targets every {args.interval:g}s, everything on; py-spy {args.seconds}s:")
    summarise(raw, args.top)


if __name__ == "__main__":
    main()
