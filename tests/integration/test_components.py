"""Each real component the tests rely on answers for real."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.harness import servers
from tests.harness.procs import free_port, wait_until

pytestmark = pytest.mark.integration


def test_redis_answers_ping_in_plain_and_tls(redis_server: servers.Redis) -> None:
    assert b"+PONG" in redis_server.command("PING")
    context = ssl.create_default_context(cafile=str(redis_server.ca_file))
    with socket.create_connection(("127.0.0.1", redis_server.tls_port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(f"AUTH {redis_server.password}\r\nPING\r\n".encode())
        reply = b""
        deadline = time.monotonic() + 5
        while b"+PONG" not in reply and time.monotonic() < deadline:
            reply += s.recv(1024)
    assert reply == b"+OK\r\n+PONG\r\n"


def test_postgres_answers_select_1_in_plain_and_tls(postgres_server: servers.Postgres) -> None:
    assert postgres_server.psql("SELECT 1") == "1"
    assert postgres_server.psql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") in ("f", "t")
    out = subprocess.run(
        [str(postgres_server.bin_dir / "psql"),
         f"host=127.0.0.1 port={postgres_server.port} user=postgres dbname=postgres sslmode=verify-ca "
         f"sslrootcert={postgres_server.ca_file}", "-At", "-c",
         "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"],
        env={"PGPASSWORD": postgres_server.password}, capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "t"


def test_neo4j_answers_return_1_over_bolt_with_auth(neo4j_server: servers.Neo4j) -> None:
    from neo4j import GraphDatabase
    from neo4j.exceptions import AuthError

    with GraphDatabase.driver(neo4j_server.uri, auth=("neo4j", neo4j_server.password)) as driver:
        records, _, _ = driver.execute_query("RETURN 1 AS one")
        assert records[0]["one"] == 1
    with GraphDatabase.driver(neo4j_server.uri, auth=("wrongpw", "not-the-password")) as driver, \
            pytest.raises(AuthError):
        driver.verify_connectivity()


def test_prometheus_is_ready(prometheus: servers.Prometheus) -> None:
    assert servers.http_ok(f"{prometheus.url}/-/ready")
    assert prometheus.query("vector(1)")[0]["value"][1] == "1"


def test_collector_validates_a_config_and_carries_a_span_to_jaeger(
    jaeger: servers.Jaeger, tmp_path: Path
) -> None:
    config = Path(__file__).parents[1] / "testdata" / "otelcol-smoke.yaml"
    env = {"JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{jaeger.otlp_grpc}",
           "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
           "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{free_port()}", "OTELCOL_HEALTH_ENDPOINT": "127.0.0.1:1"}
    validate = subprocess.run([str(servers.otelcol_binary()), "validate", f"--config={config}"],
                              env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert validate.returncode == 0, validate.stderr

    jaeger_env = {"JAEGER_OTLP_GRPC_ENDPOINT": env["JAEGER_OTLP_GRPC_ENDPOINT"]}
    collector = servers.start_otelcol(tmp_path, [config], jaeger_env)
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": "component-smoke"}))
        provider.add_span_processor(SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=f"http://127.0.0.1:{collector.otlp_grpc}", insecure=True, timeout=5)))
        with provider.get_tracer("smoke").start_as_current_span("smoke span") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
        provider.shutdown()
        found: dict[str, object] = {}

        def stored() -> bool:
            found["trace"] = jaeger.trace(trace_id)
            return found["trace"] is not None

        wait_until(stored, timeout=30, what=f"trace {trace_id} in Jaeger", interval=0.3)
        spans = found["trace"]["spans"]  # type: ignore[index]
        assert [s["operationName"] for s in spans] == ["smoke span"]
    finally:
        collector.stop()
