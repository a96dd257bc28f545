"""Which HTTP client carries the probe: CPU-seconds per 1,000 GETs of a tiny page.

Each client runs in its own process against the same local nginx, a fresh TCP connection
per request, concurrency 64; rounds are interleaved and the median (with range) printed.

    python -m benchmarks.http_clients [--requests 3000] [--rounds 3] [--paced 400]

With --paced, requests start at that rate on a 20 ms grid, as otel-health's scheduler
starts checks, instead of as fast as 64 at a time go.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys

from benchmarks._nginx import Nginx

CONCURRENCY = 64


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


PACE: float | None = None


async def _drive(n: int, one) -> None:
    if PACE:
        await _paced(n, one, PACE)
        return
    sem = asyncio.Semaphore(CONCURRENCY)

    async def task() -> None:
        async with sem:
            await one()

    await asyncio.gather(*(task() for _ in range(n)))


async def _paced(n: int, one, rate: float) -> None:
    window = 0.02
    per_window = max(1, round(rate * window))
    tasks = []
    while len(tasks) < n:
        tasks += [asyncio.ensure_future(one()) for _ in range(min(per_window, n - len(tasks)))]
        await asyncio.sleep(window)
    await asyncio.gather(*tasks)


async def bench_httpx(url: str, n: int, instrumented: bool) -> None:
    import httpx

    client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0, max_connections=None))
    if instrumented:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.sdk.trace import TracerProvider

        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=TracerProvider())

    async def one() -> None:
        response = await client.get(url)
        assert response.status_code == 200

    await _drive(n, one)
    await client.aclose()


async def bench_aiohttp(url: str, n: int) -> None:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))

    async def one() -> None:
        async with session.get(url) as response:
            await response.read()
            assert response.status == 200

    await _drive(n, one)
    await session.close()


async def bench_own_client(url: str, n: int) -> None:
    """otel-health's HTTP/1.1 client alone: no spans, no metrics."""
    from otel_health.probes._client import HttpClient
    from otel_health.probes._messages import Request, Timings

    client = HttpClient()
    request = Request(url, headers=(("User-Agent", "bench"),), max_body=65536)

    async def one() -> None:
        response = await client.fetch(request, Timings())
        assert response.status == 200

    await _drive(n, one)
    client.close()


async def bench_otel_health(url: str, n: int) -> None:
    """The real path: HttpProbe.run, the root span, the child span, telemetry.record."""
    from otel_health.config.loader import load_text
    from otel_health.probes import PROBES
    from otel_health.probes._base import ProbeSettings
    from otel_health.probes.http import HttpProbe
    from otel_health.telemetry import BridgeReader
    from tests.harness.pipeline import Pipeline

    config = load_text(f"targets:\n  - name: bench\n    kind: http\n    url: {url}\n", "bench.yaml", PROBES)
    target = config.targets[0]
    pipeline = Pipeline(lambda families, _: [BridgeReader(families=families)])
    pipeline.set_targets([target])
    telemetry = pipeline.telemetry
    probe = HttpProbe(ProbeSettings(tracer=telemetry.tracer_provider.get_tracer("bench")))

    async def one() -> None:
        with telemetry.check_span(target) as span:
            result = await probe.run(target)
            pipeline.record(target, result, span)
        assert result.up, result.detail

    await _drive(n, one)
    await probe.close()


CLIENTS = {
    "httpx": lambda url, n: bench_httpx(url, n, False),
    "httpx+otel-instrumentation": lambda url, n: bench_httpx(url, n, True),
    "aiohttp": bench_aiohttp,
    "otel-health HTTP/1.1 client": bench_own_client,
    "otel-health probe (own client+spans+metrics)": bench_otel_health,
}


def _child(name: str, url: str, n: int, pace: float | None) -> None:
    global PACE
    PACE = pace
    asyncio.run(CLIENTS[name](url, 50))  # warm-up: imports, first connections
    start = _cpu()
    asyncio.run(CLIENTS[name](url, n))
    print(json.dumps({"cpu": _cpu() - start}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child")
    parser.add_argument("--url")
    parser.add_argument("--paced", type=float)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.url, args.requests, args.paced)
        return
    nginx = Nginx()
    results: dict[str, list[float]] = {name: [] for name in CLIENTS}
    try:
        for _ in range(args.rounds):
            for name in CLIENTS:
                out = subprocess.run([sys.executable, "-m", "benchmarks.http_clients", "--child", name, "--url",
                                      nginx.url, "--requests", str(args.requests)]
                                     + (["--paced", str(args.paced)] if args.paced else []),
                                     capture_output=True, text=True, check=True, timeout=600)
                results[name].append(json.loads(out.stdout.strip().splitlines()[-1])["cpu"] / args.requests * 1000)
    finally:
        nginx.stop()
    base = statistics.median(results["aiohttp"])
    how = f"paced at {args.paced:g}/s" if args.paced else f"concurrency {CONCURRENCY}"
    print(f"CPU-seconds per 1,000 GETs (fresh connection each, {how}, "
          f"{args.requests} requests x {args.rounds} rounds; median [range]):")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"  {name:44s} {med:.3f} [{min(values):.3f}-{max(values):.3f}]  x{med / base:.2f} of bare aiohttp")


if __name__ == "__main__":
    main()
