"""FreeRADIUS (Debian package ``freeradius``): an instance of its own on a free loopback port, its
configuration the package's copied and cut down to PAP against a users file, one client
(127.0.0.1) with a shared secret, and a user whose Access-Accept and Access-Reject carry a
Reply-Message."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..procs import Process, free_port
from .common import require

__all__ = ["Freeradius", "start_freeradius"]

PACKAGE_CONFIG = Path("/etc/freeradius/3.0")


@dataclass
class Freeradius:
    port: int
    secret: str
    user: str
    password: str
    process: Process

    def stop(self) -> None:
        self.process.stop()


def _answers(port: int, secret: str, user: str, password: str) -> bool:
    tool = shutil.which("radclient") or "/usr/bin/radclient"
    done = subprocess.run([tool, "-t", "1", "-r", "1", f"127.0.0.1:{port}", "auth", secret],
                          input=f"User-Name={user},User-Password={password}\n", capture_output=True, text=True,
                          timeout=10, check=False)
    return "Access-Accept" in done.stdout


def start_freeradius(workdir: Path, *, password: str) -> Freeradius:
    server = shutil.which("freeradius") or "/usr/sbin/freeradius"
    require(server, "freeradius (Debian package freeradius)")
    require(PACKAGE_CONFIG, "FreeRADIUS's configuration (Debian package freeradius)")
    config = workdir / "raddb"
    if config.exists():
        shutil.rmtree(config)
    shutil.copytree(PACKAGE_CONFIG, config, symlinks=True)
    for folder in ("sites-enabled", "mods-enabled"):
        for entry in (config / folder).iterdir():
            entry.unlink()
    for module in ("pap", "files", "always"):
        (config / "mods-enabled" / module).symlink_to(f"../mods-available/{module}")
    (config / "log").mkdir()
    (config / "run").mkdir()
    radiusd = (config / "radiusd.conf").read_text()
    radiusd = re.sub(r"(?m)^logdir = .*$", f"logdir = {config / 'log'}", radiusd)
    radiusd = re.sub(r"(?m)^run_dir = .*$", f"run_dir = {config / 'run'}", radiusd)
    radiusd = re.sub(r"(?m)^(\s*)(user|group) = freerad$", r"\1#\2 = freerad", radiusd)  # as whoever runs it
    (config / "radiusd.conf").write_text(radiusd)
    port, secret, user = free_port(), f"shared-{password}", "checker"
    (config / "sites-enabled" / "check").write_text(
        "server check {\n"
        f"  listen {{\n    type = auth\n    ipaddr = 127.0.0.1\n    port = {port}\n  }}\n"
        "  authorize {\n    files\n    pap\n  }\n"
        "  authenticate {\n    Auth-Type PAP {\n      pap\n    }\n  }\n"
        "  post-auth {\n  }\n}\n")
    (config / "clients.conf").write_text(
        f"client local {{\n  ipaddr = 127.0.0.1\n  secret = {secret}\n  require_message_authenticator = no\n}}\n")
    (config / "mods-config" / "files" / "authorize").write_text(
        f'{user} Cleartext-Password := "{password}"\n\tReply-Message := "hello {user}"\n')
    process = Process("freeradius", [server, "-f", "-d", str(config), "-l", "stdout"],
                      log_path=workdir / "freeradius.log")
    process.wait_ready(lambda: _answers(port, secret, user, password), timeout=30)
    return Freeradius(port, secret, user, password, process)
