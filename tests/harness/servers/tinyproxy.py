"""tinyproxy: a forward proxy, with and without credentials."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..procs import Process, free_port, port_open
from .common import require

__all__ = ["Tinyproxy", "start_tinyproxy"]


# -- A forward proxy ------------------------------------------------------------------------
@dataclass
class Tinyproxy:
    """tinyproxy (Debian), a forward proxy: absolute-form requests and CONNECT to any port."""

    port: int
    log: Path
    process: Process
    user: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[str]:
        """The request lines the proxy was asked, in order ("CONNECT 127.0.0.1:443 HTTP/1.1")."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line.split("): ", 1)[1] for line in text.splitlines() if "Request (file descriptor" in line]

    def stop(self) -> None:
        self.process.stop()


def start_tinyproxy(workdir: Path, *, user: str | None = None, password: str | None = None) -> Tinyproxy:
    """tinyproxy on a free port, in the foreground; with ``user`` it requires Basic credentials."""
    binary = require(shutil.which("tinyproxy") or "/usr/bin/tinyproxy", "tinyproxy")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "tinyproxy.log"
    conf = workdir / "tinyproxy.conf"
    conf.write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 200\nAllow 127.0.0.1\nLogLevel Connect\n"
        f'LogFile "{log}"\nPidFile "{workdir / "tinyproxy.pid"}"\n'
        + (f"BasicAuth {user} {password}\n" if user else "")
    )
    conf.chmod(0o600)
    process = Process("tinyproxy", [str(binary), "-d", "-c", str(conf)], log_path=workdir / "stdout.log")
    process.wait_ready(lambda: port_open(port), timeout=30)
    return Tinyproxy(port, log, process, user)
