"""Jaeger v2, built from Go modules: traces the tests query."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..procs import CACHE, Process, free_port
from .common import REPO, get_json, http_ok, require

__all__ = ["Jaeger", "start_jaeger"]


@dataclass
class Jaeger:
    otlp_grpc: int
    otlp_http: int
    query_port: int
    process: Process

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        try:
            body = get_json(f"{self.query_url}/api/traces/{trace_id}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        data = body.get("data") or []
        return data[0] if data else None

    def stop(self) -> None:
        # In-memory storage only; its graceful shutdown can take over 10 s after queries.
        self.process.stop(timeout=2)


def start_jaeger(workdir: Path) -> Jaeger:
    binary = require(CACHE / "bin" / "jaeger", "Jaeger")
    ports = {"JAEGER_OTLP_GRPC_ENDPOINT": free_port(), "JAEGER_OTLP_HTTP_ENDPOINT": free_port(),
             "JAEGER_HEALTH_ENDPOINT": free_port(), "JAEGER_QUERY_GRPC_ENDPOINT": free_port(),
             "JAEGER_QUERY_HTTP_ENDPOINT": free_port()}
    env = {k: f"127.0.0.1:{v}" for k, v in ports.items()}
    env["OTEL_TRACES_EXPORTER"] = "none"  # Jaeger's own traces of its queries
    process = Process("Jaeger", [str(binary), f"--config={REPO / 'components' / 'jaeger' / 'config.yaml'}"],
                      log_path=workdir / "jaeger.log", env=env)
    health = ports["JAEGER_HEALTH_ENDPOINT"]
    process.wait_ready(lambda: http_ok(f"http://127.0.0.1:{health}/status"), timeout=60)
    return Jaeger(ports["JAEGER_OTLP_GRPC_ENDPOINT"], ports["JAEGER_OTLP_HTTP_ENDPOINT"],
                  ports["JAEGER_QUERY_HTTP_ENDPOINT"], process)
