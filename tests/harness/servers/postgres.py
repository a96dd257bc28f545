"""PostgreSQL: a throwaway cluster with a password and TLS."""

from __future__ import annotations

import glob
import os
import pwd
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..procs import Process, StartError, free_port
from ..tls import self_signed

__all__ = ["Postgres", "start_postgres"]


# -- PostgreSQL -----------------------------------------------------------------------------
@dataclass
class Postgres:
    port: int
    password: str
    socket_dir: Path
    ca_file: Path
    process: Process
    bin_dir: Path
    run_as: str | None

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        result = subprocess.run(
            [str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", database, "-At", "-c", sql],
            env={**os.environ, "PGPASSWORD": self.password}, capture_output=True, text=True, timeout=30, check=True,
        )
        return result.stdout.strip()

    def stop(self) -> None:
        self.process.stop()


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise StartError("PostgreSQL server binaries not found under /usr/lib/postgresql; run 'make deps'")
    return Path(found[-1]).parent


def start_postgres(workdir: Path, *, password: str) -> Postgres:
    bin_dir = _pg_bin()
    # initdb and postgres refuse to run as root: run them as the postgres user, in a
    # directory of its own (the test's tmp dirs are private to root).
    run_as = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="otel-health-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    cert, key = self_signed(base / "tls")
    pwfile = base / "pw"
    pwfile.write_text(password)
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        for path in (base, sock, base / "tls", cert, key, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    key.chmod(0o600)
    pwfile.chmod(0o600)
    subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
         f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8", "--locale=C"],
        check=True, capture_output=True, timeout=120, user=run_as,
    )
    # Logins an operator meets: a user pg_hba.conf rejects, one allowed only over TLS.
    hba = data / "pg_hba.conf"
    hba.write_text("host all blocked 127.0.0.1/32 reject\nhostnossl all sslonly 127.0.0.1/32 reject\n"
                   + hba.read_text())
    port = free_port()
    process = Process(
        "PostgreSQL",
        [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1",
         "-c", f"unix_socket_directories={sock}", "-c", "ssl=on", "-c", f"ssl_cert_file={cert}",
         "-c", f"ssl_key_file={key}", "-c", "fsync=off", "-c", "max_connections=50"],
        log_path=workdir / "postgres.log", user=run_as,
    )
    pg = Postgres(port, password, sock, cert, process, bin_dir, run_as)
    process.wait_ready(
        lambda: subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                               capture_output=True, timeout=5).returncode == 0,
        timeout=60,
    )
    quoted = password.replace("'", "''")
    for role in ("blocked", "sslonly"):
        pg.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{quoted}'")
    pg.psql(f"CREATE ROLE nologin NOLOGIN PASSWORD '{quoted}'")
    pg.psql("CREATE DATABASE readonly")
    pg.psql("ALTER DATABASE readonly SET default_transaction_read_only = on")
    return pg
