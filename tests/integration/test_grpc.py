"""gRPC health checks against grpcio's reference health service, run by the harness."""

from __future__ import annotations

import asyncio
import time

import pytest

from otel_health.config.loader import load_text
from otel_health.errors import ErrorType
from otel_health.probes import PROBES
from tests.harness import servers
from tests.harness.checks import assert_failed, check_once
from tests.harness.procs import free_port
from tests.harness.running import running

pytestmark = pytest.mark.integration


def _grpc(name: str, port: int, extra: str = "", *, host: str = "127.0.0.1", timeout: str = "2s") -> str:
    return f"  - name: {name}\n    kind: grpc\n    host: {host}\n    port: {port}\n    timeout: {timeout}\n{extra}"


async def test_serving_statuses_and_status_codes_map_to_the_closed_set(grpc_server: servers.Grpcd) -> None:
    g = grpc_server
    results = await check_once(
        _grpc("server", g.port) + _grpc("api", g.port, "    service: api\n")
        + _grpc("db", g.port, "    service: db\n") + _grpc("unknown", g.port, "    service: payments.v1.Nope\n")
        + _grpc("no-health", g.bare_port) + _grpc("refused", free_port())
        + _grpc("no-such-host", 50051, host="no-such-host.invalid"))
    server, api = results["server"], results["api"]
    assert server.up and api.up, (server.detail, api.detail)
    assert set(server.phases) == {"connect", "rpc"} and all(v > 0 for v in server.phases.values())
    expected = {
        "db": (ErrorType.NOT_SERVING, "service 'db' is NOT_SERVING"),
        "unknown": (ErrorType.ASSERTION, "does not know this service name (NOT_FOUND)"),
        "no-health": (ErrorType.PROTOCOL, "no grpc.health.v1.Health service (UNIMPLEMENTED)"),
        "refused": (ErrorType.CONNECTION_REFUSED, "connection refused (UNAVAILABLE)"),
        "no-such-host": (ErrorType.DNS, "could not be resolved"),
    }
    assert_failed(results, expected)


async def test_tls_private_ca_server_name_and_client_certificates(grpc_server: servers.Grpcd) -> None:
    g = grpc_server
    ca = f"    tls: true\n    ca_file: {g.cert}\n"
    good_cert, good_key = g.client_cert
    stranger_cert, stranger_key = g.stranger_cert
    results = await check_once(
        _grpc("private-ca", g.tls_port, ca) + _grpc("by-name", g.tls_port, ca, host="localhost")
        + _grpc("system-store", g.tls_port, "    tls: true\n")
        + _grpc("wrong-name", g.tls_port, ca + "    server_name: other.example\n")
        + _grpc("tls-to-plain", g.port, ca) + _grpc("plain-to-tls", g.tls_port)
        + _grpc("mtls", g.mtls_port, ca + f"    cert_file: {good_cert}\n    key_file: {good_key}\n")
        + _grpc("mtls-none", g.mtls_port, ca)
        + _grpc("mtls-stranger", g.mtls_port, ca + f"    cert_file: {stranger_cert}\n    key_file: {stranger_key}\n"))
    for name in ("private-ca", "by-name", "mtls"):
        assert results[name].up, (name, results[name].detail)
    assert results["private-ca"].tls_expiry is None  # grpcio does not show the client the certificate
    expected = {
        "system-store": (ErrorType.TLS, "self-signed"),
        "wrong-name": (ErrorType.TLS, "does not match the server name"),
        "tls-to-plain": (ErrorType.TLS, "does not speak TLS"),
        "plain-to-tls": (ErrorType.CONNECTION_RESET, "closed the connection"),
    }
    assert_failed(results, expected)
    for name in ("mtls-none", "mtls-stranger"):
        result = results[name]
        assert not result.up and result.error_type in (ErrorType.TLS, ErrorType.CONNECTION_RESET), (name, result)


async def test_metadata_credentials_by_reference_stay_secret(
    grpc_server: servers.Grpcd, monkeypatch: pytest.MonkeyPatch, seeded_password: str,
) -> None:
    g = grpc_server
    monkeypatch.setenv("GRPC_TOKEN", f"Bearer {seeded_password}")
    monkeypatch.setenv("WRONG_TOKEN", "Bearer not-it")
    results = await check_once(
        _grpc("secured", g.port, "    service: secured\n    metadata: {authorization: '${GRPC_TOKEN}', x-team: core}\n")
        + _grpc("wrong", g.port, "    service: secured\n    metadata: {authorization: '${WRONG_TOKEN}'}\n")
        + _grpc("none", g.port, "    service: secured\n"))
    assert results["secured"].up, results["secured"].detail
    for name in ("wrong", "none"):
        assert (results[name].up, results[name].error_type) == (False, ErrorType.AUTH), results[name]
        assert "a valid bearer token is required" in results[name].detail  # the server's own words
    config = load_text("targets:\n" + _grpc("secured", g.port, "    metadata: {authorization: '${GRPC_TOKEN}'}\n"),
                       "grpc.yaml", PROBES)
    assert seeded_password not in repr(config.targets[0].options.public())
    assert config.targets[0].options.public()["metadata"] == {"authorization": "REDACTED (env:GRPC_TOKEN)"}


async def test_a_hanging_server_costs_its_timeout_and_no_more(grpc_server: servers.Grpcd) -> None:
    g = grpc_server
    began = time.monotonic()
    results = await check_once(_grpc("hang", g.port, "    service: hang\n", timeout="1s")
                           + _grpc("silent", g.blackhole_port, timeout="1s"))
    took = time.monotonic() - began
    for name in ("hang", "silent"):
        assert (results[name].up, results[name].error_type) == (False, ErrorType.TIMEOUT), results[name]
    assert took < 1.9, took  # both ran together; each ended at its 1 s timeout (plus the channels' close)


async def test_grpcio_ignores_the_proxy_variables_unless_a_proxy_is_configured(
    grpc_server: servers.Grpcd, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    g = grpc_server
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{free_port()}")  # nobody listens there
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("no_proxy", "")
    proxy = await asyncio.to_thread(servers.start_tinyproxy, tmp_path_factory.mktemp("tinyproxy"))
    try:
        results = await check_once(_grpc("direct", g.port)
                               + _grpc("proxied", g.port, f"    proxy_url: http://127.0.0.1:{proxy.port}\n")
                               + _grpc("dead-proxy", g.port, f"    proxy_url: http://127.0.0.1:{free_port()}\n"))
        log = proxy.log.read_text(errors="replace")
    finally:
        await asyncio.to_thread(proxy.stop)
    assert results["direct"].up, results["direct"].detail
    assert results["proxied"].up, results["proxied"].detail
    assert f"127.0.0.1:{g.port}" in log  # the proxied check went through tinyproxy's CONNECT
    assert (results["dead-proxy"].up, results["dead-proxy"].error_type) == (False, ErrorType.CONNECTION_REFUSED)


async def test_spans_and_the_traceparent_the_server_receives(grpc_server: servers.Grpcd) -> None:
    g = grpc_server
    text = ("targets:\n" + _grpc("traced", g.port, "    service: traced\n    interval: 0.5s\n", timeout="0.5s")
            + _grpc("db", g.port, "    service: db\n    interval: 0.5s\n", timeout="0.5s"))
    async with running(text) as r:
        await r.wait_for(lambda: r.checks("traced") >= 1 and r.checks("db") >= 1, timeout=10, what="a check each")
        spans = r.spans.get_finished_spans()
    root = next(s for s in spans if s.name == "health_check traced")
    children = {s.name: s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id}
    assert set(children) == {"connect", "grpc.health.v1.Health/Check"}
    call = children["grpc.health.v1.Health/Check"]
    assert call.attributes["rpc.system"] == "grpc" and call.attributes["rpc.method"] == "Check"
    assert call.attributes["rpc.grpc.status_code"] == 0
    traceparents = [line.split()[1] for line in (g.process.log_path.read_text().splitlines())
                    if line.startswith("traced ")]
    sent = {f"00-{s.context.trace_id:032x}-{s.context.span_id:016x}-01" for s in spans
            if s.name == "grpc.health.v1.Health/Check"}
    assert sent & set(traceparents)
    db = next(s for s in spans if s.name == "health_check db")
    assert db.attributes["error.type"] == "not_serving"
