"""Redis with a password, ACL users and TLS."""

from __future__ import annotations

import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ..procs import Process, free_port
from ..tls import self_signed
from .common import require

__all__ = ["REDIS_USERS", "Redis", "start_redis"]


# -- Redis ----------------------------------------------------------------------------------
@dataclass
class Redis:
    port: int
    tls_port: int
    password: str
    ca_file: Path
    process: Process

    def command(self, *args: str) -> bytes:
        """One command over a raw RESP connection (AUTH first); returns the raw reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            payload = b""
            for cmd in (("AUTH", self.password), args) if self.password else (args,):
                payload += f"*{len(cmd)}\r\n".encode() + b"".join(
                    f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in cmd)
            s.sendall(payload)
            time.sleep(0.05)
            return s.recv(1 << 20)

    def stop(self) -> None:
        self.process.stop()


# Least-privilege users: what docs/checks.md says a check needs, and one that lacks INFO.
REDIS_USERS = {"monitor": "+ping +info", "pingonly": "+ping"}


def start_redis(workdir: Path, *, password: str, extra_conf: str = "") -> Redis:
    """Redis with ``requirepass``, a TLS port and the :data:`REDIS_USERS` (same password);
    ``extra_conf`` lines are appended to its config."""
    binary = require(shutil.which("redis-server") or "/usr/bin/redis-server", "redis-server")
    cert, key = self_signed(workdir / "tls")
    port, tls_port = free_port(), free_port()
    conf = workdir / "redis.conf"
    users = "".join(f"user {name} on >{password} {rights}\n" for name, rights in REDIS_USERS.items())
    conf.write_text(
        f"bind 127.0.0.1\nport {port}\ndir {workdir}\nsave \"\"\nappendonly no\n"
        f"requirepass {password}\nprotected-mode yes\n"
        f"tls-port {tls_port}\ntls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {cert}\n"
        f"tls-auth-clients no\n{users}{extra_conf}"
    )
    conf.chmod(0o600)
    process = Process("Redis", [str(binary), str(conf)], log_path=workdir / "redis.log")
    redis = Redis(port, tls_port, password, cert, process)
    process.wait_ready(lambda: b"redis_version:" in redis.command("INFO", "server"), timeout=30)
    return redis
