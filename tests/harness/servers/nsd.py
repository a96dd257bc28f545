"""NSD serving a test zone, and UDP responders that answer badly (truncated, garbage)."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..procs import Process, free_port
from .common import require

__all__ = ["BIG_TXT", "ZONE", "Nsd", "dns_answers", "start_nsd"]


# -- An authoritative DNS server -----------------------------------------------------------
ZONE = "example.test"


BIG_TXT = ["x" * 200 + str(i) for i in range(6)]  # about 1.2 kB: truncated over UDP


@dataclass
class Nsd:
    """NSD (Debian) serving :data:`ZONE` on UDP and TCP; beside it, UDP ports that misbehave:
    one never answers, one answers every query truncated (and has no TCP to fall back to), one
    answers with bytes that are not a DNS message beyond the query's id."""

    port: int
    silent_port: int
    truncating_port: int
    garbage_port: int
    process: Process
    sockets: list[socket.socket] = field(default_factory=list)  # the misbehaving ports', held open

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.stop()
        for sock in self.sockets:
            sock.close()


def _zone() -> str:
    big = "\n".join(f'big IN TXT "{text}"' for text in BIG_TXT)
    return (f"$ORIGIN {ZONE}.\n$TTL 300\n"
            f"@ IN SOA ns1.{ZONE}. hostmaster.{ZONE}. 2026120101 3600 600 86400 300\n"
            "@ IN NS ns1\nns1 IN A 127.0.0.1\n"
            "www IN A 192.0.2.10\nwww IN A 192.0.2.11\nwww IN AAAA 2001:db8::10\n"
            "alias IN CNAME www\n@ IN MX 10 mail\n@ IN MX 20 mail2\nmail IN A 192.0.2.25\n"
            '@ IN TXT "v=spf1 -all"\n_http._tcp IN SRV 10 5 80 www\n' + big + "\n")


def start_nsd(workdir: Path) -> Nsd:
    nsd = shutil.which("nsd") or "/usr/sbin/nsd"
    require(nsd, "nsd (Debian package nsd)")
    workdir.mkdir(parents=True, exist_ok=True)
    port, silent_port = free_port(), free_port()
    (workdir / f"{ZONE}.zone").write_text(_zone())
    conf = workdir / "nsd.conf"
    conf.write_text(
        f'server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  username: ""\n  chroot: ""\n'
        f'  zonesdir: "{workdir}"\n  pidfile: "{workdir}/nsd.pid"\n  database: ""\n'
        f'  xfrdfile: "{workdir}/xfrd.state"\n  zonelistfile: "{workdir}/zone.list"\n'
        f'  xfrdir: "{workdir}"\n  server-count: 1\n  do-ip6: no\n  hide-version: yes\n  verbosity: 1\n'
        # no response rate limiting: benchmarks ask the same question hundreds of times a second
        "  rrl-ratelimit: 0\n"
        "remote-control:\n  control-enable: no\n"
        f"zone:\n  name: {ZONE}\n  zonefile: {ZONE}.zone\n")
    process = Process("nsd", [nsd, "-d", "-c", str(conf)], log_path=workdir / "nsd.log", cwd=workdir)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never read: queries go unanswered
    silent.bind(("127.0.0.1", silent_port))
    truncating, garbage = _udp_responder(_truncated), _udp_responder(_garbage)
    process.wait_ready(lambda: dns_answers(port), timeout=30)
    return Nsd(port, silent_port, truncating.getsockname()[1], garbage.getsockname()[1], process,
               [silent, truncating, garbage])


def _truncated(query: bytes) -> bytes:
    """The query sent back as an answer with TC set and no records."""
    return query[:2] + bytes([0x80 | 0x02 | (query[2] & 0x01), 0x00]) + query[4:6] + b"\x00" * 6 + query[12:]


def _garbage(query: bytes) -> bytes:
    return query[:2] + b"\x81\x80\x00\x01\x00\x05" + b"\xff" * 30


def _udp_responder(answer: Callable[[bytes], bytes]) -> socket.socket:
    """A UDP socket on 127.0.0.1 answering every datagram with ``answer(datagram)`` on a
    daemon thread, until it is closed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)

    def serve() -> None:
        while sock.fileno() != -1:
            try:
                data, peer = sock.recvfrom(4096)
                if len(data) >= 12:
                    sock.sendto(answer(data), peer)
            except (TimeoutError, OSError):
                continue

    threading.Thread(target=serve, name="dns-fault", daemon=True).start()
    return sock


def dns_answers(port: int, zone: str = ZONE) -> bool:
    """Whether a UDP query for ``zone``'s SOA gets an answer (a hand-made query: the harness
    does not lean on the library under test)."""
    query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
             + b"".join(bytes([len(p)]) + p.encode() for p in zone.split(".")) + b"\x00\x00\x06\x00\x01")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        try:
            s.sendto(query, ("127.0.0.1", port))
            return s.recv(4096)[:2] == b"\x12\x34"
        except OSError:
            return False
