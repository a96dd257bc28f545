"""The websocket kind against a real server (the ``websockets`` package's, in a process of its
own, plain and TLS) and hand-made handshakes for what no maintained server does: a wrong
``Sec-WebSocket-Accept``, a server deaf to the close, a plain web server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from otel_health.errors import ErrorType
from tests.harness import servers, targets
from tests.harness.checks import assert_failed, check_once, what
from tests.harness.tls import not_after

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def wsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Wsd]:
    server = servers.start_wsd(tmp_path_factory.mktemp("wsd"))
    yield server
    server.stop()


def _ws(name: str, url: str, *, timeout: str = "2s", **fields: object) -> str:
    return targets.entry(name, "websocket", url=url, timeout=timeout, **fields)


async def test_the_handshake_a_message_and_the_close_against_a_real_server(
        wsd: servers.Wsd, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WS_TOKEN", "Bearer ws-secret-3301")
    results = await check_once(
        _ws("plain", wsd.url("/echo"))
        + _ws("echo", wsd.url("/echo"), send="ping 42", expect="^ping 42$", subprotocol="chat.v1")
        + _ws("greeting", wsd.url("/greet"), expect="hel+o")
        + _ws("tls", wsd.url("/echo", tls=True), ca_file=str(wsd.cert), send="x", expect="x")
        + _ws("headers", wsd.url("/headers"), headers={"X-Check": "otel", "Authorization": "${WS_TOKEN}"},
              expect="x-check=otel authorization=Bearer ws-secret-3301"))
    for name, result in results.items():
        assert result.up, (name, result.detail)
        assert result.status_code == 101, name
        assert "connect" in result.phases and "close" in result.phases, (name, result.phases)
    assert "exchange" in results["echo"].phases and "exchange" not in results["plain"].phases
    assert results["echo"].info == {"subprotocol": "chat.v1"}
    assert results["tls"].tls_expiry == not_after(wsd.cert)


async def test_each_way_a_websocket_check_fails_is_named(wsd: servers.Wsd, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WS_TOKEN", "Bearer ws-secret-3301")
    results = await check_once(
        _ws("forbidden", wsd.url("/forbidden"))
        + _ws("no-subprotocol", wsd.url("/echo"), subprotocol="other.v2")
        + _ws("no-match", wsd.url("/echo"), send="ping", expect="^pong$", timeout="1s")
        + _ws("crash", wsd.url("/crash"), send="boom", expect="never",
              headers={"Authorization": "${WS_TOKEN}"})
        + _ws("bad-accept", wsd.url("/bad-accept", raw=True))
        + _ws("deaf", wsd.url("/deaf", raw=True), timeout="1s")
        + _ws("plain-web", wsd.url("/http", raw=True))
        + _ws("untrusted", wsd.url("/echo", tls=True))
        + _ws("refused", "ws://127.0.0.1:1/"))
    assert_failed(results, {
        "forbidden": (ErrorType.HTTP_STATUS, "the upgrade was answered 403 Forbidden (a WebSocket server answers 101)"),
        "no-subprotocol": (ErrorType.PROTOCOL, "the server agreed to no subprotocol; asked for 'other.v2'"),
        "no-match": (ErrorType.ASSERTION, "no message matched /^pong$/ within the timeout (1 came)"),
        "crash": (ErrorType.CONNECTION_RESET, "the server closed the connection with code 1011 (internal error)"),
        "bad-accept": (ErrorType.PROTOCOL, "Sec-WebSocket-Accept"),
        "deaf": (ErrorType.PROTOCOL, "the server did not answer the closing handshake"),
        "plain-web": (ErrorType.HTTP_STATUS, "the upgrade was answered 200 OK"),
        "untrusted": (ErrorType.TLS, "certificate not accepted"),
        "refused": (ErrorType.CONNECTION_REFUSED, "connection refused"),
    })
    assert what(results["forbidden"].detail).startswith("the upgrade")
    for result in results.values():
        assert "ws-secret-3301" not in result.detail
