"""Neo4j from Maven Central's jars: users, and bolt over TLS."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..procs import CACHE, Process, free_port
from .common import require

__all__ = ["Neo4j", "start_neo4j"]


# -- Neo4j ----------------------------------------------------------------------------------
@dataclass
class Neo4j:
    port: int
    password: str
    users: list[str]
    process: Process
    ca_file: Path | None = None  # Bolt also speaks TLS (optional), with this self-signed certificate for localhost

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        # Its data is thrown away: no need to wait for a full, slow shutdown.
        self.process.stop(timeout=3)


def start_neo4j(workdir: Path, *, password: str, users: list[str] | None = None, tls: bool = False) -> Neo4j:
    home = require(CACHE / "neo4j" / "classes" / "otelhealth" / "Neo4jLauncher.class", "Neo4j launcher")
    root = home.parents[2]
    port = free_port()
    java = os.environ.get("OTEL_HEALTH_JAVA", "java")
    process = Process(
        "Neo4j",
        [java, "-Xmx768m", "-cp", f"{root / 'classes'}:{root / 'lib'}/*", "otelhealth.Neo4jLauncher",
         str(workdir / "data"), str(port)],
        log_path=workdir / "neo4j.log",
        env={"NEO4J_PASSWORD": password, "NEO4J_EXTRA_USERS": ",".join(users or []),
             "NEO4J_TLS": "1" if tls else ""},
    )
    process.wait_ready(lambda: "NEO4J READY" in process.log_path.read_text(errors="replace"), timeout=180)
    # With TLS, the certificate the Neo4j harness made for localhost (a private CA of one).
    cert = next(iter(sorted((workdir / "data").glob("*/certificates/public.crt"))), None) if tls else None
    return Neo4j(port, password, users or [], process, cert)
