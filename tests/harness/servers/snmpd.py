"""Net-SNMP's agent (Debian package ``snmpd``): an instance of its own on a free loopback port,
answering SNMPv2c to one community and SNMPv3 to one user (SHA-256 and AES), and describing
itself with a sysDescr the tests know."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..procs import Process, free_port
from .common import require

__all__ = ["SYS_DESCR", "Snmpd", "start_snmpd"]

SYS_DESCR = "otel-health test agent"


@dataclass
class Snmpd:
    port: int
    community: str
    user: str
    auth_password: str
    privacy_password: str
    process: Process

    def stop(self) -> None:
        self.process.stop()


def _answers(port: int, community: str) -> bool:
    tool = shutil.which("snmpget") or "/usr/bin/snmpget"
    done = subprocess.run([tool, "-v2c", "-c", community, "-t", "0.5", "-r", "0", f"127.0.0.1:{port}",
                           "1.3.6.1.2.1.1.1.0"], capture_output=True, text=True, timeout=10, check=False)
    return SYS_DESCR in done.stdout


def start_snmpd(workdir: Path, *, password: str) -> Snmpd:
    agent = shutil.which("snmpd") or "/usr/sbin/snmpd"
    require(agent, "snmpd (Debian package snmpd)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    community, user = f"c-{password}", "checker"
    auth, privacy = f"a-{password}", f"p-{password}"
    conf = workdir / "snmpd.conf"
    conf.write_text(
        f"agentAddress udp:127.0.0.1:{port}\n"
        f"rocommunity {community} 127.0.0.1\n"
        f'createUser {user} SHA-256 "{auth}" AES "{privacy}"\n'
        f"rouser {user} priv\n"
        f"sysDescr {SYS_DESCR}\nsysLocation loopback\n"
        "master no\n")
    process = Process(
        "snmpd", [agent, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(workdir / "snmpd.pid")],
        log_path=workdir / "snmpd.log", env={**os.environ, "SNMP_PERSISTENT_DIR": str(workdir), "MIBS": ""})
    process.wait_ready(lambda: _answers(port, community), timeout=30)
    return Snmpd(port, community, user, auth, privacy, process)
