"""What a CEL assertion and a TCP dialog cost against a plain check, side by side in one run.

    python -m benchmarks.bench_assertions [--checks 2000] [--rounds 5]

The servers run in a process of their own (an HTTP server answering a typical health JSON, a
TCP port that answers nothing, a Redis-like PING/PONG, an SMTP-like dialog with STARTTLS), so
the CPU measured is otel-health's alone: its process time per check, each variant run
``--checks`` times one after another through the real probe (``Probe.run``), the variants
interleaved over ``--rounds`` and the median taken. Printed: microseconds of CPU per check, and
each variant's ratio to the plain check of its kind. The last line is one evaluation of the CEL
expression alone, and the longest an expression may run (``MAX_STEPS``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from otel_health.config.loader import load_text
from otel_health.probes import PROBES, ProbeSettings
from otel_health.probes._cel import MAX_STEPS, CelExpression, values_in
from tests.harness import tls
from tests.harness.procs import free_port, port_open, wait_until

BODY = json.dumps({"status": "ok", "version": "4.2.1", "checks": [
    {"name": "database", "status": "up"}, {"name": "cache", "status": "up"}, {"name": "queue", "status": "up"}],
    "uptime_seconds": 351234}).encode()

SERVER = r'''
import asyncio, ssl, sys
body, cert, key = sys.argv[1].encode(), sys.argv[2], sys.argv[3]
ports = [int(p) for p in sys.argv[4:]]
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)

async def http(reader, writer):
    try:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
                         + body)
            await writer.drain()
    except Exception:
        pass
    writer.close()

async def silent(reader, writer):
    await reader.read(100)
    writer.close()

async def redis(reader, writer):
    try:
        await reader.readline()
        writer.write(b"+PONG\r\n")
        await writer.drain()
        await reader.read(100)
    except Exception:
        pass
    writer.close()

async def smtp(reader, writer):
    try:
        writer.write(b"220 bench ESMTP\r\n")
        await reader.readline()
        writer.write(b"250-bench\r\n250-STARTTLS\r\n250 OK\r\n")
        line = await reader.readline()
        if line.startswith(b"STARTTLS"):
            writer.write(b"220 ready\r\n")
            await writer.drain()
            await writer.start_tls(context)
            await reader.readline()
            writer.write(b"250-bench\r\n250 OK\r\n")
            line = await reader.readline()
        writer.write(b"221 bye\r\n")
        await writer.drain()
    except Exception:
        pass
    writer.close()

async def main():
    servers = [await asyncio.start_server(h, "127.0.0.1", p, backlog=512)
               for h, p in zip((http, silent, redis, smtp), ports)]
    await asyncio.Event().wait()

asyncio.run(main())
'''


def _variants(ports: list[int], ca: Path) -> dict[str, str]:
    http, silent, redis, smtp = ports
    url = f"http://127.0.0.1:{http}/health"
    plain_smtp = ('[{expect: "^220 "}, {send: "EHLO bench\\r\\n"}, {expect: "^250 "}, {send: "QUIT\\r\\n"}, '
                  '{expect: "^221"}]')
    starttls = ('[{expect: "^220 "}, {send: "EHLO bench\\r\\n"}, {expect: "^250-STARTTLS"}, '
                '{send: "STARTTLS\\r\\n"}, {expect: "^220 "}, {starttls: true}, {send: "EHLO bench\\r\\n"}, '
                '{expect: "^250 "}, {send: "QUIT\\r\\n"}, {expect: "^221"}]')
    return {
        "http plain": f"kind: http\n    url: {url}",
        "http json_equals": f"kind: http\n    url: {url}\n    json_equals: {{status: ok}}",
        "http body_cel": f"kind: http\n    url: {url}\n    body_cel: \"body.status == 'ok'\"",
        "http body_cel all()": f"kind: http\n    url: {url}\n    body_cel: \"body.checks.all(c, c.status == 'up')\"",
        "tcp connect": f"kind: tcp\n    host: 127.0.0.1\n    port: {silent}",
        "tcp send/expect": f"kind: tcp\n    host: 127.0.0.1\n    port: {redis}\n    send: \"PING\\r\\n\"\n"
                           f"    expect: \"^\\\\+PONG\"",
        "tcp dialog (5 steps)": f"kind: tcp\n    host: 127.0.0.1\n    port: {smtp}\n    dialog: {plain_smtp}",
        "tcp dialog STARTTLS": f"kind: tcp\n    host: 127.0.0.1\n    port: {smtp}\n    ca_file: {ca}\n"
                               f"    dialog: {starttls}",
    }


async def _round(targets: dict[str, object], checks: int) -> dict[str, float]:
    settings = ProbeSettings()
    cpu: dict[str, float] = {}
    for name, target in targets.items():
        probe = PROBES[target.kind](settings)  # type: ignore[attr-defined]
        try:
            result = await probe.run(target)  # type: ignore[arg-type]
            assert result.up, (name, result.detail)
            start = time.process_time()
            for _ in range(checks):
                await probe.run(target)  # type: ignore[arg-type]
            cpu[name] = (time.process_time() - start) / checks
        finally:
            await probe.close()
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = tls.self_signed(Path(tmp))
        ports = [free_port() for _ in range(4)]
        server = subprocess.Popen([sys.executable, "-c", SERVER, BODY.decode(), str(cert), str(key),
                                   *map(str, ports)])
        try:
            wait_until(lambda: all(port_open(p) for p in ports), timeout=30, what="the bench servers")
            text = "targets:\n" + "".join(f"  - name: v{i}\n    timeout: 5s\n    {body}\n"
                                          for i, body in enumerate(_variants(ports, cert).values()))
            config = load_text(text, "bench.yaml", PROBES)
            targets = dict(zip(_variants(ports, cert), config.targets, strict=True))
            rounds = [asyncio.run(_round(targets, args.checks)) for _ in range(args.rounds)]
        finally:
            server.terminate()
            server.wait(10)
    median = {name: statistics.median(r[name] for r in rounds) for name in targets}
    for name, seconds in median.items():
        base = median["http plain" if name.startswith("http") else "tcp connect"]
        print(f"{name:24} {seconds * 1e6:8.1f} us CPU per check   x{seconds / base:.2f} of the plain check")
    expression = CelExpression.compile("body.checks.all(c, c.status == 'up')")
    document = json.loads(BODY)
    start = time.perf_counter()
    for _ in range(20000):
        expression.holds(document, values_in(BODY), "body_cel")
    print(f"one CEL evaluation alone: {(time.perf_counter() - start) / 20000 * 1e6:.2f} us; "
          f"an evaluation is refused over {MAX_STEPS:,} steps")


if __name__ == "__main__":
    main()
