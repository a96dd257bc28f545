"""The probe's HTTP/1.1 client against a real HTTP server, and against raw answers no
well-behaved server gives: every framing, coding, redirect rule and malformation."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from otel_health.errors import ErrorType, ProbeFailure
from otel_health.probes._http1 import MAX_HEAD_BYTES, Http1Client, Response
from tests.harness.servers import HttpTargets

pytestmark = pytest.mark.integration


def _no_tls() -> ssl.SSLContext:
    raise AssertionError("no TLS expected here")


async def _fetch(url: str, method: str = "GET", headers: list[tuple[str, str]] | None = None,
                 body: bytes | None = None, *, follow: bool = True, read_body: bool = True, cap: int = 1 << 20,
                 private: frozenset[str] = frozenset({"authorization"}),
                 marks: dict[str, float] | None = None) -> Response:
    client = Http1Client()
    try:
        return await asyncio.wait_for(client.fetch(
            url, method, headers or [], body, context=_no_tls, follow_redirects=follow, read_body=read_body,
            max_body=cap, marks=marks if marks is not None else {}, private=private), 10)
    finally:
        client.close()


async def test_bodies_in_every_framing_and_coding_are_read(http_targets: HttpTargets) -> None:
    h = http_targets
    plain = await _fetch(h.url("/ok"))
    assert (plain.status, plain.version, json.loads(plain.body)["version"]) == (200, "1.1", "1.2.3")
    chunked = await _fetch(h.url("/chunked"))
    assert "chunked" in chunked.headers["transfer-encoding"]
    assert chunked.body == b"first part, second part, chunked-marker"
    for coding in ("gzip", "deflate"):
        response = await _fetch(h.url(f"/{coding}"))
        assert response.headers["content-encoding"] == coding
        assert json.loads(response.body)["marker"] == "compressed-marker"
    empty = await _fetch(h.url("/empty"))
    assert (empty.status, empty.body) == (204, b"")


async def test_the_request_carries_method_headers_and_body(http_targets: HttpTargets) -> None:
    h = http_targets
    response = await _fetch(h.url("/echo?a=1&b=%2F"), "POST", [("X-Custom", "yes"), ("User-Agent", "tester")],
                            b'{"ping": 1}')
    seen = json.loads(response.body)
    assert seen["method"] == "POST" and seen["body"] == '{"ping": 1}'
    assert seen["headers"]["host"] == f"127.0.0.1:{h.port}"
    assert seen["headers"]["x-custom"] == "yes" and seen["headers"]["user-agent"] == "tester"
    assert seen["headers"]["content-length"] == "11" and seen["headers"]["connection"] == "close"
    assert "gzip" in seen["headers"]["accept-encoding"]
    # HEAD: the status is the answer, nothing is read after the headers
    head = await _fetch(h.url("/ok"), "HEAD")
    assert (head.status, head.body) == (200, b"")


async def test_redirects_follow_the_rules(http_targets: HttpTargets) -> None:
    h = http_targets
    relative = await _fetch(h.url("/redirect?to=/ok"))
    assert relative.status == 200 and b"1.2.3" in relative.body
    not_followed = await _fetch(h.url("/redirect?to=/ok"), follow=False)
    assert (not_followed.status, not_followed.headers["location"]) == (302, "/ok")
    # 303 turns a POST into a GET without its body; 307 keeps both
    see_other = json.loads((await _fetch(h.url("/redirect?to=/echo&code=303"), "POST", body=b"x")).body)
    assert (see_other["method"], see_other["body"]) == ("GET", "")
    temporary = json.loads((await _fetch(h.url("/redirect?to=/echo&code=307"), "POST", body=b"x")).body)
    assert (temporary["method"], temporary["body"]) == ("POST", "x")
    # credentials stay with the origin they were configured for
    creds = [("Authorization", "Bearer seeded-token"), ("X-Api-Key", "seeded-key"), ("X-Plain", "kept")]
    private = frozenset({"authorization", "x-api-key"})
    same = json.loads((await _fetch(h.url("/redirect?to=/echo"), headers=creds, private=private)).body)
    assert same["headers"]["authorization"] == "Bearer seeded-token" and same["headers"]["x-api-key"] == "seeded-key"
    spelled = f"HTTP://127.0.0.1:{h.port}/echo"  # the same origin, written otherwise
    again = json.loads((await _fetch(h.url(f"/redirect?to={spelled}"), headers=creds, private=private)).body)
    assert again["headers"]["authorization"] == "Bearer seeded-token"
    other = f"http://localhost:{h.port}/echo"
    moved = json.loads((await _fetch(h.url(f"/redirect?to={other}"), headers=creds, private=private)).body)
    assert "authorization" not in moved["headers"] and "x-api-key" not in moved["headers"]
    assert moved["headers"]["x-plain"] == "kept"
    with pytest.raises(ProbeFailure) as looped:
        await _fetch(h.url("/loop"))
    assert (looped.value.error_type, looped.value.detail) == (ErrorType.PROTOCOL, "too many redirects (more than 10)")
    with pytest.raises(ProbeFailure) as elsewhere:
        await _fetch(h.url("/redirect?to=ftp://127.0.0.1/file"))
    assert elsewhere.value.error_type == ErrorType.PROTOCOL


async def test_the_body_is_cut_at_the_cap(http_targets: HttpTargets) -> None:
    endless = await _fetch(http_targets.url("/endless"), cap=100_000)
    assert endless.truncated and len(endless.body) == 100_000 and set(endless.body) == {ord("y")}


async def test_phases_are_stamped_in_order(http_targets: HttpTargets) -> None:
    marks: dict[str, float] = {}
    await _fetch(f"http://localhost:{http_targets.port}/ok", marks=marks)
    order = ["connect_start", "dns_start", "dns_end", "connect_end", "headers", "body_end"]
    assert all(name in marks for name in order)
    assert [marks[n] for n in order] == sorted(marks[n] for n in order)


@asynccontextmanager
async def _raw_server(answer: Callable[[bytes], list[bytes]]) -> AsyncIterator[str]:
    """A server that reads the request head and writes ``answer(head)`` piece by piece, then closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            for piece in answer(head):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.01)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    finally:
        server.close()


async def _raw(*pieces: bytes, method: str = "GET") -> Response:
    async with _raw_server(lambda _: list(pieces)) as url:
        return await _fetch(url, method)


async def _raw_failure(*pieces: bytes) -> ProbeFailure:
    with pytest.raises(ProbeFailure) as failed:
        await _raw(*pieces)
    return failed.value


async def test_answers_that_servers_seldom_give_are_read_right() -> None:
    until_close = await _raw(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n", b"read until ", b"the end")
    assert (until_close.version, until_close.body) == ("1.0", b"read until the end")
    interim = await _raw(b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
    assert (interim.status, interim.body) == (201, b"ok")
    bare_lf = await _raw(b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: 1\n\nok")
    assert (bare_lf.status, bare_lf.headers["x-a"], bare_lf.body) == (200, "1", b"ok")
    split = await _raw(b"HTT", b"P/1.1 200 OK\r\nContent-Le", b"ngth: 5\r\n\r", b"\nhel", b"lo")
    assert split.body == b"hello"
    chunked = await _raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                         b"5;ext=1\r\nhello\r\n", b"6\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
    assert chunked.body == b"hello world"
    repeated = await _raw(b"HTTP/1.1 200 OK\r\nVary: a\r\nVary: b\r\nContent-Length: 0\r\n\r\n")
    assert repeated.headers["vary"] == "a, b"


async def test_malformed_answers_are_protocol_errors_and_short_ones_resets() -> None:
    cases = {
        b"SSH-2.0-OpenSSH_9.2\r\n": "not an HTTP status line",
        b"HTTP/1.1 OK\r\n\r\n": "not an HTTP status line",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n": "malformed header line",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n": "Content-Length is not a number",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab": "conflicting Content-Length",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n": "bad chunk size",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope": "not valid gzip",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 0\r\n\r\n": "unsupported content coding",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n": "headers longer than",
    }
    for answer, detail in cases.items():
        failure = await _raw_failure(answer)
        assert failure.error_type == ErrorType.PROTOCOL, answer[:40]
        assert detail in failure.detail and failure.detail.startswith("invalid HTTP response: "), failure.detail
    for short in (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", b"HTTP/1.1 200 OK\r\nConte"):
        failure = await _raw_failure(short)
        assert failure.error_type == ErrorType.CONNECTION_RESET, short
    # a status line that is fine needs no body when nothing asks for one
    async with _raw_server(lambda _: [b"HTTP/1.1 503 Busy\r\nContent-Length: 100\r\n\r\n"]) as url:
        client = Http1Client()
        try:
            busy = await asyncio.wait_for(client.fetch(url, "GET", [], None, context=_no_tls, follow_redirects=True,
                                                       read_body=False, max_body=10, marks={}), 5)
        finally:
            client.close()
    assert (busy.status, busy.body) == (503, b"")


async def test_names_are_looked_up_once_while_a_lookup_is_running() -> None:
    client = Http1Client()
    calls = 0
    real = client.names._lookup

    async def counting(key: tuple[str, int]) -> list[tuple[int, object]]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return await real(key)

    client.names._lookup = counting  # type: ignore[method-assign]
    try:
        results = await asyncio.gather(*(client.names.resolve("localhost", 80) for _ in range(20)))
        assert calls == 1 and all(r == results[0] for r in results) and results[0]
        assert await client.names.resolve("localhost", 80) == results[0] and calls == 1  # cached
    finally:
        client.close()


def test_an_origin_is_the_same_however_it_is_written() -> None:
    from urllib.parse import urlsplit

    from otel_health.probes._http1 import _origin

    assert _origin(urlsplit("http://Example.com/a")) == _origin(urlsplit("http://example.com:80/b"))
    assert _origin(urlsplit("https://example.com/")) == _origin(urlsplit("https://example.com:443/"))
    assert _origin(urlsplit("https://example.com/")) != _origin(urlsplit("http://example.com/"))
    assert _origin(urlsplit("http://example.com:8080/")) != _origin(urlsplit("http://example.com/"))
