"""A host on the other end of a virtual cable that never answers a ping: a network namespace
of its own (iproute2's ``ip netns``), joined to this one by a veth pair, with
``net.ipv4.icmp_echo_ignore_all`` set inside it. Names and addresses are the test process's
own (by PID), so two test workers never share one; ``stop()`` deletes the namespace, which
takes the pair with it."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from ..procs import StartError


@dataclass
class SilentHost:
    namespace: str
    address: str  # the namespace's end: reachable, silent
    local: str  # this end's address

    def stop(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.namespace], capture_output=True, timeout=30, check=False)


def _ip(*args: str, namespace: str | None = None) -> None:
    argv = ["ip", *(("-n", namespace) if namespace else ()), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode:
        raise StartError(f"{' '.join(argv)}: {done.stderr.strip()}")


def start_silent_host() -> SilentHost:
    pid = os.getpid()
    namespace, outer, inner = f"otel-health-silent-{pid}", f"ohs{pid % 10**8}a", f"ohs{pid % 10**8}b"
    subnet = f"10.{200 + pid % 50}.{pid // 50 % 256}"
    host = SilentHost(namespace, f"{subnet}.2", f"{subnet}.1")
    host.stop()  # one left behind by a test process of the same PID
    _ip("netns", "add", namespace)
    try:
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner, "netns", namespace)
        _ip("addr", "add", f"{host.local}/30", "dev", outer)
        _ip("link", "set", outer, "up")
        _ip("addr", "add", f"{host.address}/30", "dev", inner, namespace=namespace)
        _ip("link", "set", inner, "up", namespace=namespace)
        _ip("link", "set", "lo", "up", namespace=namespace)
        done = subprocess.run(["ip", "netns", "exec", namespace, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1"],
                              capture_output=True, text=True, timeout=30, check=False)
        if done.returncode:
            raise StartError(f"sysctl in {namespace}: {done.stderr.strip()}")
    except BaseException:
        host.stop()
        raise
    return host
