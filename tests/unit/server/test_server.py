"""The server's handlers over a state store: /health, /api/v1/targets, the token, /metrics."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from otel_health.probes import PROBES
from otel_health.server import HEALTH_CONTENT_TYPE, SCRAPE_RESERVE, health_document, make_app, targets_document
from otel_health.state import StateStore
from otel_health.telemetry import CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, BridgeReader
from tests.harness.pipeline import Pipeline


def _store(make_target, make_result, *outcomes: tuple[str, str, bool, bool]) -> StateStore:
    """(name, kind, critical, up) per target; each checked once."""
    store = StateStore()
    targets = [dataclasses.replace(make_target(name, kind=kind), critical=critical)
               for name, kind, critical, _ in outcomes]
    store.set_targets(targets)
    for target, (_, _, _, up) in zip(targets, outcomes, strict=True):
        state = store.current(target)
        assert state is not None
        state.update(make_result(up=up), "ab" * 16 if not up else None, 0.012)
    return store


def test_health_names_each_check_by_its_kind_and_fails_on_a_critical_target(make_target, make_result) -> None:
    store = _store(make_target, make_result, ("api", "http", True, True), ("cache", "redis", False, False),
                   ("db", "postgres", True, True))
    code, doc = health_document(store.snapshot(), PROBES)
    assert code == 200 and doc["status"] == "warn"  # only a non-critical target is down
    assert doc["checks"]["api:responseTime"][0]["componentType"] == "http"
    assert doc["checks"]["cache:connectivity"][0]["componentType"] == "datastore"
    assert doc["checks"]["cache:connectivity"][0]["output"] == "timeout: no answer"
    store = _store(make_target, make_result, ("api", "http", True, False), ("db", "postgres", True, True))
    code, doc = health_document(store.snapshot(), PROBES)
    assert code == 503 and doc["status"] == "fail"


def test_a_kind_the_server_does_not_know_is_a_generic_component(make_target, make_result) -> None:
    store = _store(make_target, make_result, ("odd", "gopher", True, True))
    _, doc = health_document(store.snapshot(), {})
    assert doc["checks"]["odd:connectivity"][0]["componentType"] == "component"


def test_targets_history_says_how_late_each_check_started(make_target, make_result) -> None:
    store = _store(make_target, make_result, ("api", "http", True, False))
    (target,) = targets_document(store.snapshot())["targets"]
    (entry,) = target["history"]
    assert entry["lag_seconds"] == 0.012
    assert entry["trace_id"] == "ab" * 16 and entry["outcome"] == "down"


async def _client(store: StateStore, reader: object, token: str | None) -> TestClient:
    async def reload() -> list[str]:
        return ["config.yaml: field 'x': broken"]

    assert isinstance(reader, BridgeReader)
    app = make_app(reader=reader, store=store, kinds=PROBES, reload=reload, api_token=lambda: token)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_the_api_and_reload_want_the_token_and_health_does_not(make_target, make_result) -> None:
    pipeline = Pipeline(lambda families, _: [BridgeReader(families=families)])
    target = make_target("api")
    pipeline.set_targets([target])
    pipeline.record(target, make_result(up=True))
    client = await _client(pipeline.store, pipeline.readers[0], "s3cret")
    try:
        assert (await client.get("/api/v1/targets")).status == 401
        wrong = await client.get("/api/v1/targets", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
        ok = await client.get("/api/v1/targets", headers={"Authorization": "Bearer s3cret"})
        assert ok.status == 200 and (await ok.json())["targets"][0]["name"] == "api"
        assert (await client.post("/-/reload")).status == 401
        rejected = await client.post("/-/reload", headers={"Authorization": "Bearer s3cret"})
        assert rejected.status == 400 and (await rejected.json())["errors"] == ["config.yaml: field 'x': broken"]
        health = await client.get("/health")
        assert health.status == 200 and health.content_type == HEALTH_CONTENT_TYPE
        assert (await client.get("/-/healthy")).status == 200
    finally:
        await client.close()


async def test_metrics_speaks_text_or_openmetrics_as_asked(make_target, make_result) -> None:
    pipeline = Pipeline(lambda families, _: [BridgeReader(families=families)])
    target = make_target("api")
    pipeline.set_targets([target])
    pipeline.record(target, make_result(up=True))
    client = await _client(pipeline.store, pipeline.readers[0], None)
    try:
        text = await client.get("/metrics")
        assert text.headers["Content-Type"] == CONTENT_TYPE_TEXT
        assert 'tta_service_up{service="api",environment="test",kind="http"} 1' in await text.text()
        om = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert om.headers["Content-Type"] == CONTENT_TYPE_OPENMETRICS
        assert (await om.text()).endswith("# EOF\n")
    finally:
        await client.close()


def _app(**kw: Any) -> tuple[Any, list[int]]:
    """The API over an empty store, and the reloads it was asked for."""
    pipeline = Pipeline(lambda families, _: [BridgeReader(families=families)])
    reloads: list[int] = []

    async def reload() -> list[str]:
        reloads.append(1)
        return []

    assert isinstance(pipeline.readers[0], BridgeReader)
    return make_app(reader=pipeline.readers[0], store=pipeline.store, kinds=PROBES, reload=reload, **kw), reloads


def test_host_names_the_api_answers_to() -> None:
    from otel_health.server import host_allowed

    allowed = {"localhost", "otel-health.example"}
    for host in (None, "", "127.0.0.1", "127.0.0.1:8090", "[::1]:8090", "::1", "LOCALHOST:8090", "localhost.",
                 "otel-health.example:443", "203.0.113.9"):
        assert host_allowed(host, allowed), host
    for host in ("evil.example", "evil.example:8090", "localhost.evil.example", "[evil]"):
        assert not host_allowed(host, allowed), host


def test_with_allowed_hosts_listed_only_those_loopback_and_listed_addresses_pass() -> None:
    from otel_health.server import host_allowed

    allowed = {"localhost", "otel-health.example", "10.0.0.5"}
    for host in ("127.0.0.1:8090", "[::1]:8090", "otel-health.example", "10.0.0.5:8090"):
        assert host_allowed(host, allowed, strict=True), host
    for host in (None, "", "203.0.113.9", "[2001:db8::1]:8090", "10.0.0.6", "evil.example"):
        assert not host_allowed(host, allowed, strict=True), host


async def test_without_a_token_only_this_machine_may_change_anything() -> None:
    """A write from another host (the peer's address as the server sees it) is refused with the fix
    when no token is set; reads stay open; from loopback, writes work as before."""
    from aiohttp import web

    app, reloads = _app(api_token=lambda: None)

    @web.middleware
    async def peer(request: web.Request, handler):  # type: ignore[no-untyped-def]
        remote = request.headers.get("X-Test-Peer")
        return await handler(request.clone(remote=remote) if remote else request)

    app.middlewares.insert(0, peer)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        for remote in ("203.0.113.9", "10.0.0.5", "::ffff:203.0.113.9"):
            refused = await client.post("/-/reload", headers={"X-Test-Peer": remote})
            assert refused.status == 403, remote
            assert "api_token_file" in (await refused.json())["errors"][0]
            assert (await client.get("/api/v1/targets", headers={"X-Test-Peer": remote})).status == 200
        assert not reloads
        assert (await client.post("/-/reload", headers={"X-Test-Peer": "::1"})).status == 200
        assert (await client.post("/-/reload", headers={"X-Test-Peer": "::ffff:127.0.0.1"})).status == 200
        assert (await client.post("/-/reload")).status == 200
        assert len(reloads) == 3
    finally:
        await client.close()


async def test_the_api_refuses_other_host_names_and_cross_site_writes_and_odd_tokens(make_target,
                                                                                     make_result) -> None:
    import asyncio

    app, reloads = _app(api_token=lambda: "s3cret", allowed_hosts=lambda: {"localhost", "127.0.0.1"})
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    token = {"Authorization": "Bearer s3cret"}
    try:
        rebinding = await client.get("/api/v1/targets", headers={**token, "Host": "evil.example"})
        assert rebinding.status == 421 and "allowed_hosts" in (await rebinding.json())["errors"][0]
        assert (await client.get("/metrics", headers={"Host": "evil.example"})).status == 200  # scrapes by any name
        assert (await client.get("/health", headers={"Host": "evil.example"})).status == 200
        assert (await client.get("/api/v1/targets", headers={**token, "Host": "localhost:8090"})).status == 200
        for browser in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
            refused = await client.post("/-/reload", headers={**token, **browser})
            assert refused.status == 403, browser
        assert not reloads
        port = client.server.port
        same = await client.post("/-/reload", headers={**token, "Origin": f"http://127.0.0.1:{port}",
                                                       "Sec-Fetch-Site": "same-origin"})
        assert same.status == 200 and (await client.post("/-/reload", headers=token)).status == 200  # curl
        assert len(reloads) == 2
        # A token that is not UTF-8 is a wrong token, not a server error.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/v1/targets HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff\xfe\r\n"
                     b"Connection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:80]
    finally:
        await client.close()


async def _guarded(head_timeout: float, connections: int) -> tuple[object, int]:
    from otel_health.server import GuardedSite, make_runner

    pipeline = Pipeline(lambda families, _: [BridgeReader(families=families)])

    async def reload() -> list[str]:
        return []

    assert isinstance(pipeline.readers[0], BridgeReader)
    app = make_app(reader=pipeline.readers[0], store=pipeline.store, kinds=PROBES, reload=reload,
                   api_token=lambda: None)
    runner = make_runner(app)
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, max_connections=connections, head_timeout=head_timeout)
    await site.start()
    return runner, runner.addresses[0][1]


async def _get(port: int, path: str = "/-/healthy", extra: bytes = b"") -> bytes:
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".encode() + extra + b"\r\n")
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_a_client_that_sends_its_head_a_byte_at_a_time_is_let_go() -> None:
    import asyncio
    import time

    runner, port = await _guarded(head_timeout=0.5, connections=64)
    try:
        slow = [await asyncio.open_connection("127.0.0.1", port) for _ in range(10)]
        started = time.monotonic()
        closed_after: list[float] = []

        async def dribble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for byte in b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n":
                try:
                    writer.write(bytes([byte]))
                    await writer.drain()
                except ConnectionError:
                    break
                if reader.at_eof():
                    break
                await asyncio.sleep(0.1)
                with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                    if await asyncio.wait_for(reader.read(1), 0.01) == b"":
                        break
            closed_after.append(time.monotonic() - started)
            writer.close()

        await asyncio.wait_for(asyncio.gather(*(dribble(r, w) for r, w in slow)), 10)
        assert len(closed_after) == 10 and max(closed_after) < 0.5 + 1.0  # not the 3.6 s the dribble would take
        assert (await _get(port)).startswith(b"HTTP/1.1 200 ")  # a real client is served meanwhile
    finally:
        await runner.cleanup()


async def test_connections_past_the_limit_are_closed_and_bodies_are_bounded() -> None:
    import asyncio

    runner, port = await _guarded(head_timeout=5.0, connections=4)
    try:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        await asyncio.sleep(0.1)
        # the four hold every slot: past them, a request for anything but a scrape or a health
        # check is closed as soon as its request line says so; a scrape is answered all the same
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/v1/targets HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        for path in ("/metrics", "/health", "/-/healthy"):
            assert (await _get(port, path)).startswith(b"HTTP/1.1 "), path
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(SCRAPE_RESERVE)]  # the reserve
        await asyncio.sleep(0.1)
        assert await asyncio.wait_for(_get(port, "/metrics"), 5) == b""  # past the reserve: closed at once
        for _, w in held:
            w.close()
        for _, w in idle:
            w.close()
        await asyncio.sleep(0.2)
        assert (await _get(port)).startswith(b"HTTP/1.1 200 ")  # their slots are free again
        for path in ("/-/reload", "/metrics", "/api/v1/targets"):
            too_big = await _get(port, path, b"Content-Length: 1048576\r\n")  # and never sent
            assert too_big.startswith(b"HTTP/1.1 413 "), too_big[:60]
    finally:
        await runner.cleanup()


async def test_a_request_flood_leaves_memory_where_it_was() -> None:
    import asyncio
    import gc
    import tracemalloc

    runner, port = await _guarded(head_timeout=2.0, connections=64)
    body = b"x" * (60 * 1024)

    async def one(i: int) -> bytes:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return b""
        try:
            if i % 3 == 0:  # a body just under the bound, sent
                writer.write(b"POST /-/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body) + body)
            elif i % 3 == 1:  # a body over it, declared and never sent
                writer.write(b"POST /-/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                             b"Content-Length: 10485760\r\n\r\n")
            else:
                writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return await asyncio.wait_for(reader.read(), 10)
        except (TimeoutError, OSError):
            return b""
        finally:
            writer.close()

    try:
        await asyncio.gather(*(one(i) for i in range(60)))  # warm: imports, caches
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            answers = await asyncio.gather(*(one(i) for i in range(200)))
            # past the 64-connection share a connection is closed at once (b""); the rest answered
            assert {a[:12] for a in answers} <= {b"", b"HTTP/1.1 200", b"HTTP/1.1 413"}
            assert sum(1 for a in answers if a.startswith(b"HTTP/1.1 413 ")) >= 10
        await asyncio.sleep(0.2)
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        await runner.cleanup()
    assert after - before < 1024 * 1024, after - before  # nothing kept from 600 requests
    assert peak - before < 64 * 1024 * 1024, peak - before  # bounded while they ran


@pytest.mark.parametrize("public", [False, True])
async def test_with_a_token_the_status_page_asks_for_it_unless_made_public(public: bool) -> None:
    import base64
    from types import SimpleNamespace

    settings = SimpleNamespace(trace_url=None, status_title="Status", status_public=public, location=None, shard=None,
                               targets=(), targets_configured=0, announcements=())
    app, _ = _app(api_token=lambda: "s3cret", page=lambda: settings)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        anonymous = await client.get("/?all=1")
        if public:
            assert anonymous.status == 200
            return
        assert anonymous.status == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic ")
        assert "s3cret" not in await anonymous.text()
        basic = base64.b64encode(b"anyone:s3cret").decode()
        assert (await client.get("/", headers={"Authorization": f"Basic {basic}"})).status == 200
        assert (await client.get("/", headers={"Authorization": "Bearer s3cret"})).status == 200
        wrong = base64.b64encode(b"anyone:guess").decode()
        for header in (f"Basic {wrong}", "Basic !!!", "Bearer guess"):
            assert (await client.get("/", headers={"Authorization": header})).status == 401, header
    finally:
        await client.close()


def test_health_follows_the_debounced_state_as_the_series_and_the_alerts_do(make_target, make_result) -> None:
    target = dataclasses.replace(make_target("api"), failure_threshold=2, success_threshold=2)
    store = StateStore()
    store.set_targets([target])
    state = store.get(target.key)
    assert state is not None
    said = []
    for up in (True, False, False, True, True):
        store.update(state, make_result(up=up))
        code, doc = health_document(store.snapshot(), PROBES)
        item = doc["checks"]["api:responseTime"][0]
        said.append((code, item["status"], item.get("output", ""), state.debounced_up))
    assert [(code, status, up) for code, status, _, up in said] == [
        (200, "pass", True), (200, "warn", True), (503, "fail", False), (503, "fail", False), (200, "pass", True)]
    assert said[1][2].endswith("(failure 1 of the 2 that make it down)")
    assert said[3][2] == "up again, 1 of the 2 passing checks that make it up"
