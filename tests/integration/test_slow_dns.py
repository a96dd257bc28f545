"""A DNS server that answers slowly must not stall checks of other targets nor the scrape.

The whole scene runs in a network namespace of the test's own, whose resolv.conf (bind-mounted
by `ip netns exec` from /etc/netns/NAME/) points at a local DNS server that delays its answers
for names starting with "slow". No traffic leaves the namespace's loopback.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.procs import Process

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 to make a network namespace")
    name = f"ohdns{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    etc = Path("/etc/netns") / name
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=30)
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:10 attempts:1\n")
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], timeout=30)
        shutil.rmtree(etc, ignore_errors=True)


def _in(netns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv]


def _metrics(netns: str, port: int) -> tuple[str, float]:
    start = time.monotonic()
    out = subprocess.run(_in(netns, sys.executable, "-c",
                             f"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics',"
                             "timeout=5).read().decode())"), capture_output=True, text=True, timeout=20, check=True)
    return out.stdout, time.monotonic() - start


def _count(text: str, service: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(f'tta_service_checks_total{{service="{service}"'))


def test_slow_name_resolution_costs_only_its_own_checks(netns: str, tmp_path: Path) -> None:
    dns = Process("slow DNS", _in(netns, sys.executable, "-m", "tests.harness.slowdns", "--delay", "60"),
                  log_path=tmp_path / "dns.log", env={"PYTHONPATH": str(REPO)})
    httpd = Process("HTTP target", _in(netns, sys.executable, "-m", "tests.harness.httpd", "--port", "8081"),
                    log_path=tmp_path / "httpd.log", env={"PYTHONPATH": str(REPO), "HTTPD_USER": "u",
                                                          "HTTPD_PASSWORD": "p"})
    config = tmp_path / "dns.yaml"
    slow = "".join(f"  - name: slow{i}\n    kind: http\n    url: http://slow{i}.test:8081/ok\n" for i in range(12))
    config.write_text("listen: 127.0.0.1:8090\ndefaults:\n  interval: 0.5s\n  timeout: 0.5s\ntargets:\n" + slow
                      + "  - name: fast\n    kind: http\n    url: http://fast.test:8081/ok\n"
                      + "  - name: by-ip\n    kind: http\n    url: http://127.0.0.1:8081/ok\n")
    health = None
    try:
        dns.wait_ready(lambda: "DNS READY" in dns.log_path.read_text(), timeout=30)
        httpd.wait_ready(lambda: '{"ready": true}' in httpd.log_path.read_text(), timeout=30)
        health = Process("otel-health", _in(netns, sys.executable, "-m", "otel_health", "run", "--config",
                                            str(config)), log_path=tmp_path / "otel-health.log",
                         env={"PYTHONPATH": str(REPO)})
        health.wait_ready(lambda: "by-ip" in _metrics(netns, 8090)[0], timeout=30)
        text, _ = _metrics(netns, 8090)
        before = {s: _count(text, s) for s in ("fast", "by-ip")}
        # No answer ever comes in time (resolv.conf gives up after 10 s, the server answers after 60 s),
        # so nothing lands in aiohttp's DNS cache: twelve lookups hang at the DNS server all along.
        time.sleep(4.0)
        text, took = _metrics(netns, 8090)
        for service in ("fast", "by-ip"):
            assert _count(text, service) - before[service] >= 6, service  # every 0.5 s, on cadence
            assert f'tta_service_up{{service="{service}",environment="default",kind="http"}} 1' in text
        for i in range(12):
            assert f'tta_service_up{{service="slow{i}",environment="default",kind="http"}} 0' in text
        assert 'error_type="timeout"' in text
        assert took < 3.0  # the scrape does not wait behind the resolver
        # Lookups still hang in getaddrinfo; they must not hold up the exit.
        start = time.monotonic()
        health.signal(signal.SIGTERM)
        assert health.popen.wait(timeout=15) == 0
        assert time.monotonic() - start < 5.0, "exit waited for hung name lookups"
    finally:
        if health is not None:
            health.stop()
        httpd.stop()
        dns.stop()
