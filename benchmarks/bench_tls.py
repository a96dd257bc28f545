"""The TLS kinds against Prometheus blackbox_exporter, side by side: CPU per 1,000 checks.

    python -m benchmarks.bench_tls [--kinds https,http2,tcp_tls,grpc_tls] [--seconds 20] [--rounds 2]
                                   [--targets 500] [--interval 1]

Each pairing checks the same local server with a full TLS handshake per check on both sides:

- ``https``: nginx (Debian), an RSA-2048 certificate, HTTP/1.1 only on that port, session cache
  and session tickets off (no resumption is possible); verification off on both sides
  (blackbox_exporter ``tls_config.insecure_skip_verify``, otel-health ``tls_verify: false``).
- ``http2``: the same nginx on a port that speaks HTTP/2 by ALPN; both ask for HTTP/2 and require
  it (``valid_http_versions: [HTTP/2.0]``; blackbox_exporter ``enable_http2``).
- ``tcp_tls``: a TLS connect to that nginx and nothing more (``tls: true``, verification off).
- ``grpc_tls``: grpcio's reference health service over TLS, ``grpc.health.v1.Health/Check`` of
  service ``api``; both verify the certificate against its CA (grpcio always verifies).

blackbox_exporter (Debian's) is driven flat out through its /probe endpoint by 64 workers, its
own HTTP handling included; otel-health runs its whole process (scheduler, metrics, one trace
per check exported over OTLP to a Collector that drops it) with ``--targets`` every
``--interval`` seconds. Rounds are interleaved; CPU comes from /proc; the last lines print the
medians [ranges] and each ratio otel-health / blackbox_exporter.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._proc import checks_total, cpu_seconds, lag_buckets, quantile, rss_mb, scrape, summary
from benchmarks.bench_http import CONCURRENCY, blackbox_round, start_sink
from tests.harness import servers
from tests.harness.procs import free_port, port_open, wait_until
from tests.harness.tls import self_signed

KINDS = ("https", "http2", "tcp_tls", "grpc_tls")


class TlsNginx:
    """nginx with a full handshake for every connection: no session cache, no tickets."""

    def __init__(self, workdir: Path) -> None:
        self.cert, key = self_signed(workdir / "tls")
        self.h1, self.h2 = free_port(), free_port()
        user = "user root;\n" if os.geteuid() == 0 else ""
        tls = (f"ssl_certificate {self.cert}; ssl_certificate_key {key}; ssl_session_cache off; "
               "ssl_session_tickets off;")
        conf = workdir / "nginx-tls.conf"
        conf.write_text(
            f"daemon off;\n{user}worker_processes 1;\npid {workdir}/nginx-tls.pid;\nerror_log {workdir}/nginx.log;\n"
            "events { worker_connections 4096; }\n"
            f"http {{ access_log off; client_body_temp_path {workdir}; proxy_temp_path {workdir};\n"
            f"  fastcgi_temp_path {workdir}; uwsgi_temp_path {workdir}; scgi_temp_path {workdir};\n"
            f"  server {{ listen 127.0.0.1:{self.h1} ssl; {tls} location / {{ return 200 \"ok\\n\"; }} }}\n"
            f"  server {{ listen 127.0.0.1:{self.h2} ssl http2; {tls} location / {{ return 200 \"ok\\n\"; }} }}\n"
            "}\n")
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(workdir)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(lambda: port_open(self.h1) and port_open(self.h2), timeout=30, what="nginx with TLS")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def pairings(nginx: TlsNginx, grpcd: servers.Grpcd | None) -> dict[str, tuple[str, str, str]]:
    """kind -> (blackbox_exporter's module, its target, otel-health's target fields)."""
    insecure = "    tls_config: {insecure_skip_verify: true}\n"
    found = {
        "https": ("  prober: http\n  timeout: 5s\n  http:\n" + insecure,
                  f"https://127.0.0.1:{nginx.h1}/",
                  f"kind: http\n    url: https://127.0.0.1:{nginx.h1}/\n    tls_verify: false\n"),
        "http2": ("  prober: http\n  timeout: 5s\n  http:\n" + insecure
                  + "    enable_http2: true\n    valid_http_versions: [HTTP/2.0]\n",
                  f"https://127.0.0.1:{nginx.h2}/",
                  f"kind: http\n    url: https://127.0.0.1:{nginx.h2}/\n    tls_verify: false\n    http2: true\n"
                  "    valid_http_versions: [HTTP/2.0]\n"),
        "tcp_tls": ("  prober: tcp\n  timeout: 5s\n  tcp:\n    tls: true\n" + insecure,
                    f"127.0.0.1:{nginx.h1}",
                    f"kind: tcp\n    host: 127.0.0.1\n    port: {nginx.h1}\n    tls: true\n    tls_verify: false\n"),
    }
    if grpcd is not None:
        found["grpc_tls"] = (f"  prober: grpc\n  timeout: 5s\n  grpc:\n    service: api\n    tls: true\n"
                             f"    tls_config: {{ca_file: {grpcd.cert}}}\n",
                             f"127.0.0.1:{grpcd.tls_port}",
                             f"kind: grpc\n    host: 127.0.0.1\n    port: {grpcd.tls_port}\n    service: api\n"
                             f"    tls: true\n    ca_file: {grpcd.cert}\n")
    return found


def otel_health_round(fields: str, seconds: float, targets: int, interval: float, sink_port: int,
                      workdir: Path) -> dict[str, float]:
    port = free_port()
    config = workdir / "otel-health-tls.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nconcurrency: {CONCURRENCY}\n"
        f"otlp:\n  endpoint: http://127.0.0.1:{sink_port}\n  export_interval: 15s\n"
        f"defaults:\n  interval: {interval}s\n  timeout: {interval}s\ntargets:\n"
        + "".join(f"  - name: t{i}\n    {fields}" for i in range(targets)))
    proc = subprocess.Popen([sys.executable, "-m", "otel_health", "run", "--config", str(config),
                             "--log-level", "warning"], stdout=subprocess.DEVNULL,
                            stderr=(workdir / "otel-health.log").open("wb"))
    try:
        wait_until(lambda: port_open(port), timeout=30, what="otel-health")
        time.sleep(interval * 2 + 1)
        before = scrape(port)
        cpu0 = cpu_seconds(proc.pid)
        start = time.monotonic()
        time.sleep(seconds)
        after = scrape(port)
        cpu = cpu_seconds(proc.pid) - cpu0
        elapsed = time.monotonic() - start
        checks = checks_total(after) - checks_total(before)
        down = [line for line in after.splitlines() if line.startswith("tta_service_up{") and line.endswith(" 0")]
        assert not down, f"{len(down)} targets down: the pairing does not measure what it says ({down[0]})"
        b0, b1 = lag_buckets(before), lag_buckets(after)
        return {"cpu_per_1000": cpu / checks * 1000, "rate": checks / elapsed, "rss": rss_mb(proc.pid),
                "lag_p99": quantile(b0, b1, 0.99)}
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--targets", type=int, default=500)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    workdir = Path(tempfile.mkdtemp(prefix="otel-health-bench-tls-"))
    nginx = TlsNginx(workdir)
    grpcd = servers.start_grpcd(workdir / "grpcd", token="bench") if "grpc_tls" in kinds else None
    sink, sink_port = start_sink(workdir)
    pairs = pairings(nginx, grpcd)
    theirs: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    ours: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    try:
        for i in range(args.rounds):
            for kind in kinds:
                module, target, fields = pairs[kind]
                theirs[kind].append(blackbox_round(target, args.seconds, workdir, None, module))
                ours[kind].append(otel_health_round(fields, args.seconds, args.targets, args.interval, sink_port,
                                                    workdir))
                print(f"round {i + 1} {kind}: blackbox_exporter {theirs[kind][-1]['cpu_per_1000']:.3f}, "
                      f"otel-health {ours[kind][-1]['cpu_per_1000']:.3f} CPU-s/1000", flush=True)
    finally:
        sink.terminate()
        nginx.stop()
        if grpcd is not None:
            grpcd.stop()
    print(f"Full TLS handshake per check; blackbox_exporter flat out ({CONCURRENCY} workers), otel-health "
          f"{args.targets} targets every {args.interval:g}s with OTLP on; {args.rounds} interleaved rounds of "
          f"{args.seconds:g}s (median [range]):")
    for kind in kinds:
        ratios = [o["cpu_per_1000"] / b["cpu_per_1000"] for o, b in zip(ours[kind], theirs[kind], strict=True)]
        bb, oh = theirs[kind], ours[kind]
        print(f"  {kind:9s} blackbox_exporter {summary([r['cpu_per_1000'] for r in bb])} "
              f"({summary([r['rate'] for r in bb], '{:.0f}')}/s)  otel-health "
              f"{summary([r['cpu_per_1000'] for r in oh])} ({summary([r['rate'] for r in oh], '{:.0f}')}/s, "
              f"lag p99 <= {summary([r['lag_p99'] for r in oh], '{:.3f}')}s)  ratio {summary(ratios, '{:.2f}')}")
    if "https" in kinds and "http2" in kinds:
        h2 = [a["cpu_per_1000"] / b["cpu_per_1000"] for a, b in zip(ours["http2"], ours["https"], strict=True)]
        print(f"  otel-health HTTP/2 over TLS / HTTPS on HTTP/1.1: {summary(h2, '{:.2f}')}")
    if "https" in kinds and "grpc_tls" in kinds:
        grpc = [a["cpu_per_1000"] / b["cpu_per_1000"] for a, b in zip(ours["grpc_tls"], ours["https"], strict=True)]
        print(f"  otel-health gRPC over TLS / HTTPS on HTTP/1.1: {summary(grpc, '{:.2f}')}")


if __name__ == "__main__":
    main()
