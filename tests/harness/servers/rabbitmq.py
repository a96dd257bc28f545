"""RabbitMQ (Debian package ``rabbitmq-server``): a broker of its own, with an Erlang port mapper
of its own on a free port (stopped with it, by PID), users, virtual hosts and a queue from a
definitions file, a plain and a TLS listener.

Logins: ``checker`` may do anything on ``/``; ``outsider`` may open ``/`` but nothing in it, and
not ``orders``. The queue ``jobs`` exists on ``/``, durable and empty."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..procs import Process, free_port, port_open
from ..tls import self_signed
from .common import require

__all__ = ["Rabbitmq", "start_rabbitmq"]

_BIN = Path("/usr/lib/rabbitmq/bin")


@dataclass
class Rabbitmq:
    port: int
    tls_port: int
    ca_file: Path
    password: str
    node: str
    env: dict[str, str]
    processes: list[Process] = field(default_factory=list)

    def ctl(self, *args: str) -> str:
        """rabbitmqctl against this broker (about a third of a second: it starts an Erlang node)."""
        done = subprocess.run([str(_BIN / "rabbitmqctl"), "-n", self.node, *args], env={**os.environ, **self.env},
                              capture_output=True, text=True, timeout=60, check=True)
        return done.stdout

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def _hash(password: str) -> str:
    """RabbitMQ's stored password: base64 of a 4-byte salt and SHA-256 of the salt and the password."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def start_rabbitmq(workdir: Path, *, password: str) -> Rabbitmq:
    server = require(_BIN / "rabbitmq-server", "rabbitmq-server (Debian package rabbitmq-server)")
    epmd = require("/usr/bin/epmd", "epmd (Debian package erlang-base, with rabbitmq-server)")
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed(workdir / "tls")
    port, tls_port, dist_port, epmd_port = free_port(), free_port(), free_port(), free_port()
    users = [{"name": name, "password_hash": _hash(password), "hashing_algorithm": "rabbit_password_hashing_sha256",
              "tags": []} for name in ("checker", "outsider")]
    definitions = {
        "users": users, "vhosts": [{"name": "/"}, {"name": "orders"}],
        "permissions": [{"user": "checker", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
                        {"user": "outsider", "vhost": "/", "configure": "", "write": "", "read": ""}],
        "queues": [{"name": "jobs", "vhost": "/", "durable": True, "auto_delete": False, "arguments": {}}],
    }
    (workdir / "definitions.json").write_text(json.dumps(definitions))
    (workdir / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{port}\n"
        f"listeners.ssl.default = 127.0.0.1:{tls_port}\n"
        f"ssl_options.certfile = {cert}\nssl_options.keyfile = {key}\n"
        "ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n"
        "definitions.import_backend = local_filesystem\n"
        f"definitions.local.path = {workdir / 'definitions.json'}\n"
        "log.console = true\nlog.file = false\n")
    (workdir / "enabled_plugins").write_text("[].\n")
    node = f"rabbit-{port}@localhost"
    env = {"HOME": str(workdir), "ERL_EPMD_PORT": str(epmd_port), "RABBITMQ_NODENAME": node,
           "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq.conf"),
           "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
           "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"), "RABBITMQ_LOG_BASE": str(workdir / "log"),
           "RABBITMQ_DIST_PORT": str(dist_port), "RABBITMQ_PID_FILE": str(workdir / "rabbitmq.pid")}
    mapper = Process("epmd", [str(epmd), "-port", str(epmd_port), "-address", "127.0.0.1"],
                     log_path=workdir / "epmd.log", env=env)
    mapper.wait_ready(lambda: port_open(epmd_port), timeout=30)
    broker = Process("rabbitmq", [str(server)], log_path=workdir / "rabbitmq.log", env=env)
    try:
        # the listeners open once the definitions are in
        broker.wait_ready(lambda: port_open(port) and port_open(tls_port), timeout=90)
    except BaseException:
        mapper.stop()
        raise
    return Rabbitmq(port, tls_port, cert, password, node, env, [mapper, broker])
