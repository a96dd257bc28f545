"""A WebSocket server on the ``websockets`` package (tests/harness/wsd.py), plain and TLS, and a
port of hand-made handshakes for the faults."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ..procs import Process, free_port, port_open
from ..tls import self_signed
from .common import REPO

__all__ = ["Wsd", "start_wsd"]


@dataclass
class Wsd:
    port: int  # /echo, /greet, /forbidden, /crash, /headers
    tls_port: int  # the same over TLS (certificate for localhost and 127.0.0.1)
    raw_port: int  # /bad-accept, /deaf, /http
    cert: Path
    process: Process

    def url(self, path: str, *, tls: bool = False, raw: bool = False) -> str:
        port = self.raw_port if raw else self.tls_port if tls else self.port
        return f"{'wss' if tls else 'ws'}://{'localhost' if tls else '127.0.0.1'}:{port}{path}"

    def stop(self) -> None:
        self.process.stop()


def start_wsd(workdir: Path) -> Wsd:
    cert, key = self_signed(workdir / "tls")
    port, tls_port, raw_port = free_port(), free_port(), free_port()
    process = Process("WebSocket server", [sys.executable, "-m", "tests.harness.wsd", "--port", str(port),
                                           "--tls-port", str(tls_port), "--raw-port", str(raw_port),
                                           "--cert", str(cert), "--key", str(key)],
                      log_path=workdir / "wsd.log", cwd=REPO)
    process.wait_ready(lambda: all(port_open(p) for p in (port, tls_port, raw_port)), timeout=30)
    return Wsd(port, tls_port, raw_port, cert, process)
