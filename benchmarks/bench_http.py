"""otel-health against Prometheus blackbox_exporter, side by side: CPU per 1,000 HTTP checks.

    python -m benchmarks.bench_http [--seconds 20] [--rounds 3] [--targets 200] [--interval 0.5]
                                    [--flat-out-targets 1000] [--budget-targets 1000]

Both check a tiny page from a local nginx with a fresh TCP connection per check.
blackbox_exporter (Debian's, module http_2xx) is driven through its /probe endpoint at
concurrency 64, its own HTTP handling included. otel-health runs with everything on: its
scheduler, metrics, one span per check exported over OTLP through the batch processor (to a
Collector that drops them), and a /metrics scrape every --scrape-every seconds. Each is
measured twice: at the same rate (--targets every --interval; blackbox_exporter paced to
match) and flat out (blackbox_exporter by 64 workers; otel-health with --flat-out-targets
every --interval, a rate as high as blackbox_exporter's flat out). The budget rows are the
pairing hardest for otel-health: --budget-targets every second (1,000 checks/s), with OTLP on
(spans decided in the process as the Collector's tail sampling decides, metrics pushed every
15 s) and with the bridge alone, against blackbox_exporter flat out. Rounds are interleaved;
CPU comes from /proc. The last lines print the medians [ranges] and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks._nginx import Nginx
from benchmarks._proc import checks_total, cpu_seconds, lag_buckets, quantile, rss_mb, scrape, summary
from tests.harness.procs import CACHE, free_port, port_open, wait_until

CONCURRENCY = 64
HERE = Path(__file__).parent


def start_sink(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = CACHE / "bin" / "otelcol-otel-health"
    port, health = free_port(), free_port()
    proc = subprocess.Popen([str(binary), f"--config={HERE / 'otelcol-sink.yaml'}"],
                            env={"OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{port}",
                                 "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{health}"},
                            stdout=subprocess.DEVNULL, stderr=(workdir / "sink.log").open("wb"))
    wait_until(lambda: port_open(health), timeout=30, what="the OTLP sink")
    return proc, port


HTTP_2XX = "prober: http\ntimeout: 5s\n"


def blackbox_round(url: str, seconds: float, workdir: Path, rate: float | None,
                   module: str = HTTP_2XX) -> dict[str, float]:
    """Drive blackbox_exporter as fast as 64 workers go (rate None) or at ``rate`` probes/s,
    probing ``url`` (a URL or HOST:PORT) with ``module`` (a module's YAML)."""
    binary = shutil.which("prometheus-blackbox-exporter")
    assert binary, "prometheus-blackbox-exporter not found: apt-get install prometheus-blackbox-exporter"
    config = workdir / "blackbox.yml"
    config.write_text("modules:\n  m:\n" + "".join(f"    {line}\n" for line in module.splitlines()))
    port = free_port()
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_open(port), timeout=30, what="blackbox_exporter")
        probe = f"http://127.0.0.1:{port}/probe?module=m&target={url}"

        async def drive(duration: float) -> int:
            done = 0
            deadline = time.monotonic() + duration
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:
                async def one() -> None:
                    nonlocal done
                    async with session.get(probe) as response:
                        body = await response.read()
                        assert b"probe_success 1" in body, body[-400:]
                    done += 1

                if rate is None:
                    async def worker() -> None:
                        while time.monotonic() < deadline:
                            await one()
                    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
                else:
                    loop = asyncio.get_running_loop()
                    start, tasks, i = loop.time(), [], 0
                    while i / rate < duration:
                        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
                        tasks.append(asyncio.ensure_future(one()))
                        i += 1
                    await asyncio.gather(*tasks)
            return done

        asyncio.run(drive(2.0))  # warm-up
        cpu0 = cpu_seconds(proc.pid)
        start = time.monotonic()
        probes = asyncio.run(drive(seconds))
        elapsed = time.monotonic() - start
        cpu = cpu_seconds(proc.pid) - cpu0
        return {"cpu_per_1000": cpu / probes * 1000, "rate": probes / elapsed, "rss": rss_mb(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(10)


def otel_health_round(url: str, seconds: float, targets: int, interval: float, scrape_every: float,
                      sink_port: int | None, workdir: Path) -> dict[str, float]:
    """One run; ``sink_port`` None: the bridge alone (no OTLP)."""
    port = free_port()
    config = workdir / "otel-health.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nconcurrency: {CONCURRENCY}\n"
        + (f"otlp:\n  endpoint: http://127.0.0.1:{sink_port}\n  export_interval: 15s\n" if sink_port else "")
        + f"defaults:\n  interval: {interval}s\n  timeout: {interval}s\ntargets:\n"
        + "".join(f"  - name: t{i}\n    kind: http\n    url: {url}\n" for i in range(targets))
    )
    proc = subprocess.Popen([sys.executable, "-m", "otel_health", "run", "--config", str(config),
                             "--log-level", "warning"], stdout=subprocess.DEVNULL,
                            stderr=(workdir / "otel-health.log").open("wb"))
    try:
        wait_until(lambda: port_open(port), timeout=30, what="otel-health")
        time.sleep(interval * 2 + 1)  # warm-up: every target checked at least once
        before = scrape(port)
        cpu0 = cpu_seconds(proc.pid)
        start = time.monotonic()
        next_scrape = start + scrape_every
        while time.monotonic() - start < seconds:
            time.sleep(max(0.0, min(next_scrape, start + seconds) - time.monotonic()))
            if time.monotonic() >= next_scrape:
                scrape(port)
                next_scrape += scrape_every
        after = scrape(port)
        cpu = cpu_seconds(proc.pid) - cpu0
        elapsed = time.monotonic() - start
        checks = checks_total(after) - checks_total(before)
        b0, b1 = lag_buckets(before), lag_buckets(after)
        return {"cpu_per_1000": cpu / checks * 1000, "rate": checks / elapsed, "rss": rss_mb(proc.pid),
                "lag_p50": quantile(b0, b1, 0.5), "lag_p99": quantile(b0, b1, 0.99)}
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--scrape-every", type=float, default=5.0)
    parser.add_argument("--flat-out-targets", type=int, default=1000)
    parser.add_argument("--budget-targets", type=int, default=1000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="otel-health-bench-"))
    nginx = Nginx()
    sink, sink_port = start_sink(workdir)
    bb: list[dict[str, float]] = []
    paced: list[dict[str, float]] = []
    oh: list[dict[str, float]] = []
    flat: list[dict[str, float]] = []
    budget: list[dict[str, float]] = []
    budget_bridge: list[dict[str, float]] = []
    try:
        for i in range(args.rounds):
            bb.append(blackbox_round(nginx.url, args.seconds, workdir, None))
            paced.append(blackbox_round(nginx.url, args.seconds, workdir, args.targets / args.interval))
            oh.append(otel_health_round(nginx.url, args.seconds, args.targets, args.interval, args.scrape_every,
                                        sink_port, workdir))
            flat.append(otel_health_round(nginx.url, args.seconds, args.flat_out_targets, args.interval,
                                          args.scrape_every, sink_port, workdir))
            budget.append(otel_health_round(nginx.url, args.seconds, args.budget_targets, 1.0, args.scrape_every,
                                            sink_port, workdir))
            budget_bridge.append(otel_health_round(nginx.url, args.seconds, args.budget_targets, 1.0,
                                                   args.scrape_every, None, workdir))
            print(f"round {i + 1}: blackbox {bb[-1]['cpu_per_1000']:.3f} (paced {paced[-1]['cpu_per_1000']:.3f}), "
                  f"otel-health {oh[-1]['cpu_per_1000']:.3f} (flat out {flat[-1]['cpu_per_1000']:.3f}) CPU-s/1000",
                  flush=True)
    finally:
        sink.terminate()
        nginx.stop()
    ratios = [o["cpu_per_1000"] / b["cpu_per_1000"] for o, b in zip(oh, bb, strict=True)]
    flat_ratios = [o["cpu_per_1000"] / b["cpu_per_1000"] for o, b in zip(flat, bb, strict=True)]
    paced_ratios = [o["cpu_per_1000"] / b["cpu_per_1000"] for o, b in zip(oh, paced, strict=True)]
    print(f"HTTP, fresh connection per check, concurrency {CONCURRENCY}, {args.rounds} interleaved rounds "
          f"of {args.seconds:g}s (median [range]):")
    print(f"  blackbox_exporter  CPU-s/1000 checks {summary([r['cpu_per_1000'] for r in bb])}  "
          f"checks/s {summary([r['rate'] for r in bb], '{:.0f}')}  RSS MB {summary([r['rss'] for r in bb], '{:.0f}')}")
    print(f"  blackbox (paced)   CPU-s/1000 checks {summary([r['cpu_per_1000'] for r in paced])}  "
          f"checks/s {summary([r['rate'] for r in paced], '{:.0f}')}  (driven at otel-health's rate)")
    print(f"  otel-health        CPU-s/1000 checks {summary([r['cpu_per_1000'] for r in oh])}  "
          f"checks/s {summary([r['rate'] for r in oh], '{:.0f}')}  RSS MB {summary([r['rss'] for r in oh], '{:.0f}')}"
          f"  lag p50 <= {summary([r['lag_p50'] for r in oh], '{:.4f}')}s p99 <= "
          f"{summary([r['lag_p99'] for r in oh], '{:.4f}')}s")
    print(f"  otel-health (flat)  CPU-s/1000 checks {summary([r['cpu_per_1000'] for r in flat])}  "
          f"checks/s {summary([r['rate'] for r in flat], '{:.0f}')}  ({args.flat_out_targets} targets every "
          f"{args.interval:g}s)")
    print(f"  ratio otel-health / blackbox_exporter, both at the same rate: {summary(paced_ratios, '{:.2f}')}")
    print(f"  ratio otel-health / blackbox_exporter, both flat out: {summary(flat_ratios, '{:.2f}')}")
    print(f"  ratio otel-health at the same rate / blackbox_exporter flat out: {summary(ratios, '{:.2f}')}")
    for name, runs in (("OTLP on", budget), ("bridge alone", budget_bridge)):
        budget_ratios = [o["cpu_per_1000"] / b["cpu_per_1000"] for o, b in zip(runs, bb, strict=True)]
        print(f"  budget, {args.budget_targets} targets every 1s, {name}: CPU-s/1000 checks "
              f"{summary([r['cpu_per_1000'] for r in runs])} checks/s {summary([r['rate'] for r in runs], '{:.0f}')}"
              f"  ratio to blackbox_exporter flat out {summary(budget_ratios, '{:.2f}')}")


if __name__ == "__main__":
    main()
