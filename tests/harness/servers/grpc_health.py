"""grpcio's own health service (tests/harness/grpcd.py), plain and TLS."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ..procs import Process, free_port, port_open
from ..tls import authority, client_certificate, self_signed
from .common import REPO

__all__ = ["Grpcd", "start_grpcd"]


# -- A gRPC health server --------------------------------------------------------------------
@dataclass
class Grpcd:
    port: int            # plain: services "api", "" (the server), "hang", "secured" serving; "db" not
    tls_port: int        # the same over TLS (cert for localhost and 127.0.0.1)
    mtls_port: int       # TLS that asks for a client certificate signed by the clients' CA
    bare_port: int       # gRPC without a health service
    blackhole_port: int  # accepts TCP and never says a word
    cert: Path
    client_cert: tuple[Path, Path]
    stranger_cert: tuple[Path, Path]
    token: str
    process: Process

    def stop(self) -> None:
        self.process.stop()


def start_grpcd(workdir: Path, *, token: str) -> Grpcd:
    """grpcio's reference health service (``tests/harness/grpcd.py``) in a process of its own."""
    cert, key = self_signed(workdir / "tls")
    clients_ca = authority(workdir / "clients-ca", "Clients CA")
    good = client_certificate(workdir / "client-good", clients_ca, "checker")
    stranger = client_certificate(workdir / "client-stranger", authority(workdir / "stranger-ca", "Stranger"))
    port, tls_port, mtls_port, bare_port, blackhole = free_port(), free_port(), free_port(), free_port(), free_port()
    process = Process(
        "gRPC health server",
        [sys.executable, "-m", "tests.harness.grpcd", "--port", str(port), "--serving", "api,",
         "--not-serving", "db", "--tls-port", str(tls_port), "--mtls-port", str(mtls_port),
         "--cert", str(cert), "--key", str(key), "--client-ca", str(clients_ca[0]), "--bare-port", str(bare_port),
         "--blackhole-port", str(blackhole)],
        log_path=workdir / "grpcd.log", cwd=REPO, env={"GRPCD_TOKEN": token},
    )
    process.wait_ready(lambda: all(port_open(p) for p in (port, tls_port, mtls_port, bare_port, blackhole)),
                       timeout=30)
    return Grpcd(port, tls_port, mtls_port, bare_port, blackhole, cert, good, stranger, token, process)
