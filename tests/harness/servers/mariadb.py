"""MariaDB (Debian package ``mariadb-server``): a throwaway server with a checker's login, TLS,
and the logins an operator meets (one limited to a connection at a time, one allowed only over
TLS)."""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..procs import Process, free_port, port_open
from ..tls import self_signed
from .common import require

__all__ = ["Mariadb", "start_mariadb"]


@dataclass
class Mariadb:
    port: int
    password: str
    ca_file: Path
    socket: Path
    process: Process
    run_as: str | None

    def sql(self, statement: str) -> str:
        """A statement run as root over the server's socket (no password: unix_socket, as this
        process's own user)."""
        client = shutil.which("mariadb") or "/usr/bin/mariadb"
        result = subprocess.run([client, "--no-defaults", f"--socket={self.socket}", "-u", getpass.getuser(),
                                 "-N", "-B", "-e", statement], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise AssertionError(f"mariadb -e {statement[:200]!r}: {result.stderr.strip()}")
        return result.stdout.strip()

    def stop(self) -> None:
        self.process.stop()


def start_mariadb(workdir: Path, *, password: str) -> Mariadb:
    server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    require(server, "mariadbd (Debian package mariadb-server)")
    # mariadbd refuses root unless told: it runs as the mysql user the package made, in a
    # directory of its own (the test's tmp dirs are private to root).
    run_as = "mysql" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="otel-health-mariadb-"))
    data, sock = base / "data", base / "mysqld.sock"
    cert, key = self_signed(base / "tls")
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        for path in (base, base / "tls", cert, key):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    subprocess.run([shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db", "--no-defaults",
                    f"--datadir={data}", "--skip-test-db", "--auth-root-authentication-method=socket",
                    *([f"--user={run_as}"] if run_as else [])],
                   check=True, capture_output=True, timeout=180)
    port = free_port()
    process = Process(
        "MariaDB",
        [server, "--no-defaults", f"--datadir={data}", f"--socket={sock}", f"--port={port}",
         "--bind-address=127.0.0.1", f"--pid-file={base / 'mysqld.pid'}", "--skip-log-bin",
         "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", "--performance-schema=OFF",
         "--max-connections=50", f"--ssl-cert={cert}", f"--ssl-key={key}", "--skip-name-resolve",
         *([f"--user={run_as}"] if run_as else [])],
        log_path=workdir / "mariadb.log",
    )
    process.wait_ready(lambda: port_open(port) and sock.exists(), timeout=60)
    db = Mariadb(port, password, cert, sock, process, run_as)
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    db.sql(f"CREATE USER 'checker'@'%' IDENTIFIED BY '{quoted}';"
           f"CREATE USER 'single'@'%' IDENTIFIED BY '{quoted}' WITH MAX_USER_CONNECTIONS 1;"
           f"CREATE USER 'tlsonly'@'%' IDENTIFIED BY '{quoted}' REQUIRE SSL;"
           "CREATE DATABASE shop; GRANT SELECT ON shop.* TO 'checker'@'%', 'single'@'%', 'tlsonly'@'%';")
    return db
