"""An HTTP/3 server on aioquic (tests/harness/h3d.py) in a process of its own, on a free UDP
port with a certificate for localhost and 127.0.0.1."""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from ..procs import Process, free_port
from ..tls import self_signed
from .common import REPO

__all__ = ["H3d", "start_h3d"]


@dataclass
class H3d:
    port: int
    cert: Path
    process: Process

    def url(self, path: str) -> str:
        return f"https://localhost:{self.port}{path}"

    def stop(self) -> None:
        self.process.stop()


def _udp_bound(port: int) -> bool:
    """Whether something holds the UDP port (a bind that fails says so)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def start_h3d(workdir: Path) -> H3d:
    cert, key = self_signed(workdir / "tls")
    port = free_port()
    process = Process("HTTP/3 server", [sys.executable, "-m", "tests.harness.h3d", "--port", str(port),
                                        "--cert", str(cert), "--key", str(key)],
                      log_path=workdir / "h3d.log", cwd=REPO)
    process.wait_ready(lambda: _udp_bound(port), timeout=30)
    return H3d(port, cert, process)
