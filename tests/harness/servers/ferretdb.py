"""FerretDB (Go modules, built by ``components/build.sh ferretdb``): MongoDB's wire protocol on
SQLite, a plain and a TLS listener. MongoDB itself is in no registry this project installs from
(its licence keeps it out of Debian); FerretDB answers as a standalone MongoDB 7.0 does, without
logins (its embedded server has no authentication)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..procs import CACHE, Process, free_port, port_open
from ..tls import self_signed
from .common import require

__all__ = ["Ferretdb", "start_ferretdb"]


@dataclass
class Ferretdb:
    port: int
    tls_port: int
    ca_file: Path
    process: Process

    def stop(self) -> None:
        self.process.stop()


def start_ferretdb(workdir: Path) -> Ferretdb:
    binary = require(CACHE / "bin" / "ferretdb", "FerretDB")
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed(workdir / "tls")
    port, tls_port = free_port(), free_port()
    process = Process("ferretdb", [str(binary), "-listen", f"127.0.0.1:{port}", "-tls-listen", f"127.0.0.1:{tls_port}",
                                   "-cert", str(cert), "-key", str(key), "-data", str(workdir / "data")],
                      log_path=workdir / "ferretdb.log")
    process.wait_ready(lambda: port_open(port) and port_open(tls_port), timeout=30)
    return Ferretdb(port, tls_port, cert, process)
