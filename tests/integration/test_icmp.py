"""The icmp kind against real hosts: loopback (IPv4 and IPv6), which answers, and a host in a
network namespace of its own that never does; its loss held to iputils' ``ping`` on the same
hosts; both ways of sending without root (a datagram socket where ``ping_group_range`` allows,
a raw socket with ``CAP_NET_RAW``), and the configuration error when neither is allowed, each
in a process of its own in a network namespace of its own."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_health.errors import ErrorType
from otel_health.probes import ProbeSettings
from tests.harness import servers, targets
from tests.harness.checks import check_once

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def silent() -> Iterator[servers.SilentHost]:
    host = servers.start_silent_host()
    yield host
    host.stop()


def _ping_loss(address: str) -> float:
    """iputils' verdict: the share of 3 echo requests lost."""
    done = subprocess.run(["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", address], capture_output=True,
                          text=True, timeout=30, check=False)
    found = re.search(r"([\d.]+)% packet loss", done.stdout)
    assert found, done.stdout + done.stderr
    return float(found.group(1)) / 100


async def test_loss_and_round_trips_agree_with_ping(silent: servers.SilentHost) -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    results = await check_once(
        targets.entry("lo4", "icmp", host="127.0.0.1", packets=3, packet_interval="50ms", timeout="2s")
        + targets.entry("lo6", "icmp", host="::1", packets=3, packet_interval="50ms", timeout="2s")
        + targets.entry("by-name", "icmp", host="localhost", ip_protocol="ip4", packets=2, timeout="2s")
        + targets.entry("silent", "icmp", host=silent.address, packets=3, packet_interval="50ms", timeout="1s"),
        ProbeSettings(tracer=provider.get_tracer("test")))
    for name in ("lo4", "lo6", "by-name"):
        result = results[name]
        assert result.up, (name, result.detail)
        assert result.loss_ratio == _ping_loss("::1" if name == "lo6" else "127.0.0.1") == 0.0
        assert 0 < result.phases["rtt_min"] <= result.phases["rtt_avg"] <= result.phases["rtt_max"] < 1.0, name
    assert results["lo4"].info["icmp_socket"] in ("datagram", "raw")

    lost = results["silent"]
    assert (lost.up, lost.error_type, lost.loss_ratio) == (False, ErrorType.PACKET_LOSS, _ping_loss(silent.address))
    assert lost.loss_ratio == 1.0
    assert lost.detail == f"{silent.address}: 3 of 3 echo requests unanswered (100%, max_loss 50%)"
    assert "rtt_avg" not in lost.phases
    # A lost request is decided by nine tenths of the timeout: a verdict with its loss, not a timeout.
    assert 0.85 < lost.duration < 1.0

    spans = [s for s in exported.get_finished_spans() if s.name.startswith("ping ")]
    assert {s.attributes["network.peer.address"] for s in spans} >= {"127.0.0.1", "::1", silent.address}


def _in_namespace(script: str, *, datagram: bool, raw: bool, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``script`` run by this Python in a new network namespace (loopback up), with datagram ICMP
    sockets allowed or not (``ping_group_range``) and CAP_NET_RAW kept or dropped."""
    (tmp_path / "run.py").write_text(script)
    steps = ["ip link set lo up"]
    if datagram:
        steps.append("sysctl -qw net.ipv4.ping_group_range='0 2147483647'")
    drop = "" if raw else "setpriv --inh-caps=-net_raw --bounding-set=-net_raw "
    steps.append(f"{drop}{sys.executable} {tmp_path / 'run.py'}")
    repo = Path(__file__).parents[2]
    return subprocess.run(["unshare", "-n", "sh", "-c", " && ".join(steps)], capture_output=True, text=True,
                          timeout=60, check=False, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})


_CHECK = """
import asyncio, json
from tests.harness import targets
from tests.harness.checks import check_once
results = asyncio.run(check_once(targets.entry("lo", "icmp", host="127.0.0.1", packets=2, timeout="2s")))
r = results["lo"]
print(json.dumps({"up": r.up, "detail": r.detail, "socket": r.info.get("icmp_socket"), "loss": r.loss_ratio}))
"""


@pytest.mark.parametrize(("datagram", "raw", "socket"), [(True, False, "datagram"), (False, True, "raw"),
                                                         (True, True, "datagram")])
def test_each_way_to_send_without_root_works(tmp_path: Path, datagram: bool, raw: bool, socket: str) -> None:
    done = _in_namespace(_CHECK, datagram=datagram, raw=raw, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    said = json.loads(done.stdout.strip().splitlines()[-1])
    assert said == {"up": True, "detail": "", "socket": socket, "loss": 0.0}


def test_neither_way_allowed_is_a_configuration_error_saying_how_to_grant_one(tmp_path: Path) -> None:
    config = tmp_path / "icmp.yaml"
    config.write_text(targets.config(targets.entry("lo", "icmp", host="127.0.0.1")))
    done = _in_namespace(f"from otel_health.cli import main\nraise SystemExit(main(['validate', '{config}']))\n",
                         datagram=False, raw=False, tmp_path=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"{config}:3:11: targets[0] (lo): field 'kind': icmp: this process may not send ICMP echo requests; "
        "allow datagram ICMP sockets to the process's group (sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"; "
        "in Kubernetes, the pod's securityContext.sysctls) or grant it CAP_NET_RAW (setcap cap_net_raw+ep on the "
        "Python binary, or the container's capabilities)"]
