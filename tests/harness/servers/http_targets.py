"""The HTTP targets: our own aiohttp server (tests/harness/httpd.py) with every answer a check
meets, on plain and TLS ports."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..procs import Process, free_port, port_open
from ..tls import authority, client_certificate, expired, self_signed
from .common import REPO, get_json, http_ok

__all__ = ["HttpTargets", "start_http_targets"]


# -- HTTP targets ---------------------------------------------------------------------------
@dataclass
class HttpTargets:
    port: int
    tls_port: int
    blackhole_port: int
    closed_port: int
    cert: Path
    process: Process
    user: str
    password: str
    expired_port: int = 0
    expired_cert: Path | None = None
    wrong_host_port: int = 0
    wrong_host_cert: Path | None = None
    mtls_port: int = 0
    tls12_port: int = 0
    client_certs: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # name: (cert, key)
    oauth_client: str = "otel-health-checker"

    def url(self, path: str, *, tls: bool = False) -> str:
        scheme, port = ("https", self.tls_port) if tls else ("http", self.port)
        return f"{scheme}://127.0.0.1:{port}{path}"

    def seen(self) -> list[dict[str, str]]:
        return list(get_json(self.url("/seen")))

    def oauth_calls(self, key: str) -> dict[str, Any]:
        return dict(get_json(self.url(f"/oauth/calls?key={key}")))

    def stop(self) -> None:
        self.process.stop()


def start_http_targets(workdir: Path, *, password: str) -> HttpTargets:
    """The test HTTP server. Client certificates: ``good`` (signed by the CA the mTLS listener
    trusts), ``encrypted`` (the same CA, its key encrypted with ``password``), ``stranger``
    (another CA)."""
    cert, key = self_signed(workdir / "tls")
    old_cert, old_key = expired(workdir / "tls-expired")
    other_cert, other_key = self_signed(workdir / "tls-other", name="other.example")
    clients_ca = authority(workdir / "clients-ca", "Clients CA")
    stranger_ca = authority(workdir / "stranger-ca", "Stranger CA")
    client_certs = {
        "good": client_certificate(workdir / "client-good", clients_ca, "checker"),
        "encrypted": client_certificate(workdir / "client-encrypted", clients_ca, "checker", passphrase=password),
        "stranger": client_certificate(workdir / "client-stranger", stranger_ca, "checker"),
    }
    port, tls_port, blackhole, closed = free_port(), free_port(), free_port(), free_port()
    expired_port, other_port, mtls_port, tls12_port = free_port(), free_port(), free_port(), free_port()
    process = Process(
        "test HTTP server",
        [sys.executable, "-m", "tests.harness.httpd", "--port", str(port), "--tls-port", str(tls_port),
         "--cert", str(cert), "--key", str(key), "--blackhole-port", str(blackhole),
         "--extra-tls", f"{expired_port}:{old_cert}:{old_key}",
         "--extra-tls", f"{other_port}:{other_cert}:{other_key}",
         "--mtls", f"{mtls_port}:{cert}:{key}:{clients_ca[0]}", "--tls12", f"{tls12_port}:{cert}:{key}"],
        log_path=workdir / "httpd.log", cwd=REPO,
        env={"HTTPD_USER": "checker", "HTTPD_PASSWORD": password, "HTTPD_OAUTH_CLIENT": "otel-health-checker"},
    )
    process.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/ok") and port_open(blackhole)
                       and port_open(other_port) and port_open(mtls_port) and port_open(tls12_port), timeout=30)
    return HttpTargets(port, tls_port, blackhole, closed, cert, process, "checker", password,
                       expired_port, old_cert, other_port, other_cert, mtls_port, tls12_port, client_certs)
