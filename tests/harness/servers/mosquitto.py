"""Mosquitto (Debian package ``mosquitto``): an MQTT broker of its own, with logins from a password
file, an ACL (the checker may use ``health/#`` and read ``status/#``, nothing else), a plain and
a TLS listener, and a retained message on ``status/api``."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..procs import Process, free_port, port_open
from ..tls import self_signed
from .common import require

__all__ = ["Mosquitto", "start_mosquitto"]


@dataclass
class Mosquitto:
    port: int
    tls_port: int
    ca_file: Path
    password: str
    process: Process

    def publish(self, topic: str, message: str, *, retain: bool = False) -> None:
        """A message published as the checker, with mosquitto_pub."""
        tool = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
        subprocess.run([tool, "-h", "127.0.0.1", "-p", str(self.port), "-u", "checker", "-P", self.password,
                        "-t", topic, "-m", message, "-q", "1", *(["-r"] if retain else [])],
                       check=True, capture_output=True, timeout=30)

    def stop(self) -> None:
        self.process.stop()


def start_mosquitto(workdir: Path, *, password: str) -> Mosquitto:
    broker = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    require(broker, "mosquitto (Debian package mosquitto)")
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed(workdir / "tls")
    passwords = workdir / "passwords"
    passwords.touch()
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    for user in ("checker", "reader"):
        subprocess.run([tool, "-b", str(passwords), user, password], check=True, capture_output=True, timeout=30)
    acl = workdir / "acl"
    acl.write_text("user checker\ntopic readwrite health/#\ntopic read status/#\ntopic write status/#\n"
                   "user reader\ntopic read status/#\n")
    port, tls_port = free_port(), free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        ""
        # as root it would become the mosquitto user, who cannot read the test's private folder
        + ("user root\n" if os.geteuid() == 0 else "")
        + "per_listener_settings false\nallow_anonymous false\npersistence false\n"
        f"password_file {passwords}\nacl_file {acl}\nlog_dest stderr\n"
        f"listener {port} 127.0.0.1\n"
        f"listener {tls_port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n")
    process = Process("mosquitto", [broker, "-c", str(conf)], log_path=workdir / "mosquitto.log")
    process.wait_ready(lambda: port_open(port) and port_open(tls_port), timeout=30)
    broker_ = Mosquitto(port, tls_port, cert, password, process)
    broker_.publish("status/api", "ok build=42", retain=True)
    return broker_
