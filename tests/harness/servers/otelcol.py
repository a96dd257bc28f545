"""The OpenTelemetry Collector, built from Go modules with the components otel-collector.yaml uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..procs import CACHE, Process, free_port
from .common import http_ok, require

__all__ = ["OtelCollector", "otelcol_binary", "start_otelcol"]


# -- OpenTelemetry Collector and Jaeger -------------------------------------------------------
@dataclass
class OtelCollector:
    ports: dict[str, int]
    process: Process
    env: dict[str, str] = field(default_factory=dict)

    @property
    def otlp_grpc(self) -> int:
        return self.ports["OTELCOL_OTLP_GRPC_ENDPOINT"]

    @property
    def otlp_http(self) -> int:
        return self.ports["OTELCOL_OTLP_HTTP_ENDPOINT"]

    @property
    def prometheus_port(self) -> int:
        return self.ports["OTELCOL_PROMETHEUS_ENDPOINT"]

    @property
    def telemetry_port(self) -> int:
        return self.ports["OTELCOL_TELEMETRY_PORT"]

    def stop(self) -> None:
        self.process.stop()


def otelcol_binary() -> Path:
    return require(CACHE / "bin" / "otelcol-otel-health", "the OpenTelemetry Collector")


def start_otelcol(workdir: Path, configs: list[Path], env: dict[str, str],
                  ports: dict[str, int] | None = None) -> OtelCollector:
    """The Collector on free loopback ports (or ``ports``, to start it again where it was)."""
    binary = otelcol_binary()
    ports = ports or {name: free_port() for name in (
        "OTELCOL_OTLP_GRPC_ENDPOINT", "OTELCOL_OTLP_HTTP_ENDPOINT", "OTELCOL_HEALTH_ENDPOINT",
        "OTELCOL_PROMETHEUS_ENDPOINT", "OTELCOL_TELEMETRY_PORT")}
    full_env = {k: (str(v) if k.endswith("_PORT") else f"127.0.0.1:{v}") for k, v in ports.items()}
    full_env |= {"OTELCOL_TELEMETRY_HOST": "127.0.0.1", **env}
    argv = [str(binary)] + [f"--config={c}" for c in configs]
    process = Process("OpenTelemetry Collector", argv, log_path=workdir / "otelcol.log", env=full_env)
    health = ports["OTELCOL_HEALTH_ENDPOINT"]
    process.wait_ready(lambda: http_ok(f"http://127.0.0.1:{health}/"), timeout=60)
    return OtelCollector(ports, process, full_env)
