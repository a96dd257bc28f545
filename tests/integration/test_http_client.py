"""The probe's HTTP/1.1 client against a real HTTP server, and against raw answers real
servers send: every framing, coding, redirect rule and malformation, each class of answer
on which a client's verdict can go wrong named as a case of its own."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import brotli
import pytest

from otel_health.errors import ErrorType, ProbeFailure
from otel_health.probes._client import HttpClient
from otel_health.probes._messages import MAX_HEAD_BYTES, Request, Response, Timings
from otel_health.probes._tls import client_context
from tests.harness.checks import check_once
from tests.harness.servers import HttpTargets

pytestmark = pytest.mark.integration


def _no_tls() -> ssl.SSLContext:
    raise AssertionError("no TLS expected here")


async def _fetch(url: str, method: str = "GET", headers: list[tuple[str, str]] | None = None,
                 body: bytes | None = None, *, follow: bool = True, read_body: bool = True, cap: int = 1 << 20,
                 private: frozenset[str] = frozenset({"authorization"}), timings: Timings | None = None,
                 client: HttpClient | None = None, **options: Any) -> Response:
    own = client is None
    client = client or HttpClient()
    request = Request(url, method, tuple(headers or ()), body, options.pop("context", _no_tls), follow, read_body,
                      cap, private, **options)
    try:
        return await asyncio.wait_for(client.fetch(request, timings if timings is not None else Timings()), 10)
    finally:
        if own:
            await client.aclose()  # a TLS close ends after the fetch: within the test's loop


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
    # it asks for exactly the codings it decodes
    assert seen["headers"]["accept-encoding"] == "gzip, deflate, br"
    # a configured Host is sent as it is
    vhost = json.loads((await _fetch(h.url("/echo"), host="vhost.example")).body)
    assert vhost["headers"]["host"] == "vhost.example"
    # HEAD: the status is the answer, nothing is read after the headers
    head = await _fetch(h.url("/ok"), "HEAD")
    assert (head.status, head.body) == (200, b"")


async def test_a_configured_host_is_the_tls_server_name(http_targets: HttpTargets) -> None:
    h = http_targets
    url = f"https://127.0.0.1:{h.wrong_host_port}/echo"  # a certificate for other.example only
    context = partial(client_context, ca_file=h.wrong_host_cert)
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        await _fetch(url, context=context)
    named = await _fetch(url, context=context, host="other.example", server_name="other.example")
    assert named.status == 200 and json.loads(named.body)["headers"]["host"] == "other.example"


async def test_redirects_follow_the_rules(http_targets: HttpTargets) -> None:
    h = http_targets
    relative = await _fetch(h.url("/redirect?to=/ok"))
    assert relative.status == 200 and b"1.2.3" in relative.body and relative.url == h.url("/ok")
    not_followed = await _fetch(h.url("/redirect?to=/ok"), follow=False)
    assert (not_followed.status, not_followed.headers["location"]) == (302, "/ok")
    # 303 turns a POST into a GET without its body; 307 keeps both
    see_other = json.loads((await _fetch(h.url("/redirect?to=/echo&code=303"), "POST", body=b"x")).body)
    assert (see_other["method"], see_other["body"]) == ("GET", "")
    temporary = json.loads((await _fetch(h.url("/redirect?to=/echo&code=307"), "POST", body=b"x")).body)
    assert (temporary["method"], temporary["body"]) == ("POST", "x")
    # credentials and a configured Host stay with the origin they were configured for
    creds = [("Authorization", "Bearer seeded-token"), ("X-Api-Key", "seeded-key"), ("X-Plain", "kept")]
    private = frozenset({"authorization", "x-api-key"})
    same = json.loads((await _fetch(h.url("/redirect?to=/echo"), headers=creds, private=private)).body)
    assert same["headers"]["authorization"] == "Bearer seeded-token" and same["headers"]["x-api-key"] == "seeded-key"
    spelled = f"HTTP://127.0.0.1:{h.port}/echo"  # the same origin, written otherwise
    again = json.loads((await _fetch(h.url(f"/redirect?to={spelled}"), headers=creds, private=private)).body)
    assert again["headers"]["authorization"] == "Bearer seeded-token"
    other = f"http://localhost:{h.port}/echo"
    moved = json.loads((await _fetch(h.url(f"/redirect?to={other}"), headers=creds, private=private,
                                     host=f"127.0.0.1:{h.port}")).body)
    assert "authorization" not in moved["headers"] and "x-api-key" not in moved["headers"]
    assert moved["headers"]["x-plain"] == "kept" and moved["headers"]["host"] == f"localhost:{h.port}"
    with pytest.raises(ProbeFailure) as looped:
        await _fetch(h.url("/loop"))
    assert (looped.value.error_type, looped.value.detail) == (ErrorType.PROTOCOL, "too many redirects (more than 10)")
    with pytest.raises(ProbeFailure) as elsewhere:
        await _fetch(h.url("/redirect?to=ftp://127.0.0.1/file"))
    assert elsewhere.value.error_type == ErrorType.PROTOCOL


async def test_the_body_is_cut_at_the_cap(http_targets: HttpTargets) -> None:
    endless = await _fetch(http_targets.url("/endless"), cap=100_000)
    assert endless.truncated and len(endless.body) == 100_000 and set(endless.body) == {ord("y")}


async def test_the_whole_response_is_timed_step_by_step(http_targets: HttpTargets) -> None:
    timings = Timings()
    await _fetch(f"http://localhost:{http_targets.port}/chunked", timings=timings)
    phases = timings.phases()
    assert set(phases) == {"dns", "connect", "request", "body"}
    assert phases["body"] >= 0.015  # the chunks come 10 ms apart: the body is part of the time
    stamps = [timings.start, timings.resolved, timings.connected, timings.headers, timings.done]
    assert stamps == sorted(stamps)  # type: ignore[type-var]
    secure, redirected = Timings(), Timings()
    await _fetch(http_targets.url("/ok", tls=True), context=partial(client_context, ca_file=http_targets.cert),
                 timings=secure)
    assert {"connect", "tls", "request", "body"} <= set(secure.phases())
    await _fetch(http_targets.url("/redirect?to=/ok"), timings=redirected)
    assert redirected.phases()["redirect"] > 0


@asynccontextmanager
async def _raw_server(answer: Callable[[bytes], list[bytes]], heads: list[bytes] | None = None,
                      ) -> AsyncIterator[str]:
    """A server that reads the request head and writes ``answer(head)`` piece by piece, then closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if heads is not None:
                heads.append(head)
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


async def _raw(*pieces: bytes, method: str = "GET", read_body: bool = True) -> Response:
    async with _raw_server(lambda _: list(pieces)) as url:
        return await _fetch(url, method, read_body=read_body)


async def _raw_failure(*pieces: bytes) -> ProbeFailure:
    with pytest.raises(ProbeFailure) as failed:
        await _raw(*pieces)
    return failed.value


OK = b"HTTP/1.1 200 OK\r\n"


async def test_false_downs_a_real_client_would_not_give() -> None:
    # a folded header line: replaced with spaces (RFC 9112 section 5.2)
    folded = await _raw(OK + b"X-Folded: first\r\n  second\r\nContent-Length: 2\r\n\r\nok")
    assert folded.headers["x-folded"].split() == ["first", "second"] and folded.body == b"ok"
    # zlib-wrapped deflate whose first piece is one byte: the coding is told by two bytes, however split
    packed = zlib.compress(b"deflated-marker" * 20)
    deflated = await _raw(OK + b"Content-Encoding: deflate\r\nContent-Length: %d\r\n\r\n" % len(packed),
                          packed[:1], packed[1:])
    assert deflated.body == b"deflated-marker" * 20
    raw_deflate = zlib.compressobj(wbits=-15)
    rawd = raw_deflate.compress(b"raw-marker") + raw_deflate.flush()
    assert (await _raw(OK + b"Content-Encoding: deflate\r\n\r\n", rawd)).body == b"raw-marker"
    # lines ending in LF, the blank line in CRLF
    mixed = await _raw(b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: 1\n\r\nok")
    assert (mixed.status, mixed.headers["x-a"], mixed.body) == (200, "1", b"ok")
    bare_lf = await _raw(b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: 1\n\nok")
    assert (bare_lf.status, bare_lf.body) == (200, b"ok")
    # a chunk size followed by spaces, and Content-Length beside chunked (chunked wins)
    spaced = await _raw(OK + b"Transfer-Encoding: chunked\r\n\r\n2 \r\nok\r\n0\r\n\r\n")
    assert spaced.body == b"ok"
    both = await _raw(OK + b"Content-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    assert both.body == b"ok"


@pytest.mark.parametrize(("answer", "detail"), [
    pytest.param(OK + b"Transfer-Encoding: chunked\r\n\r\n0x7\r\nabcdefg\r\n0\r\n\r\n", "chunk size",
                 id="chunk-size-0x7"),
    pytest.param(OK + b"Transfer-Encoding: chunked\r\n\r\n+7\r\nabcdefg\r\n0\r\n\r\n", "chunk size",
                 id="chunk-size-plus"),
    pytest.param(OK + b"X\x00A: 1\r\nContent-Length: 0\r\n\r\n", "header token", id="nul-in-header-name"),
    pytest.param(OK + b"X-A: 1\x00b\r\nContent-Length: 0\r\n\r\n", "control character", id="nul-in-header-value"),
    pytest.param(OK + b"X-A: \x1b[31m\r\nContent-Length: 0\r\n\r\n", "control character", id="escape-in-value"),
    pytest.param(OK + b"Content-Length: \xc2\xb2\r\n\r\n", "content-length", id="content-length-superscript"),
    pytest.param(OK + b"Content-Length: ten\r\n\r\n", "content-length", id="content-length-word"),
    pytest.param(OK + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", "content-length",
                 id="content-length-conflict"),
    pytest.param(OK + b"Transfer-Encoding: gzip\r\n\r\nabc", "unsupported transfer coding",
                 id="transfer-coding-gzip"),
    pytest.param(OK + b"Transfer-Encoding: chunked, gzip\r\n\r\nabc", "unsupported transfer coding",
                 id="transfer-coding-chunked-gzip"),
    pytest.param(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", "101",
                 id="unasked-upgrade"),
    pytest.param(b"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n", "http version", id="version-1.2"),
    pytest.param(b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", "http version", id="version-2-on-http1"),
    pytest.param(b"RTSP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", "not an http status line", id="rtsp"),
    pytest.param(b"SSH-2.0-OpenSSH_9.2\r\n", "not an http status line", id="another-protocol"),
    pytest.param(b"HTTP/1.1 OK\r\n\r\n", "status", id="no-status-code"),
    pytest.param(OK + b"no colon here\r\n\r\n", "header", id="header-without-colon"),
    pytest.param(OK + b"Content-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope", "not valid gzip",
                 id="gzip-garbage"),
    pytest.param(OK + b"Content-Encoding: gzip\r\nContent-Length: 10\r\n\r\n" + gzip.compress(b"x" * 100)[:10],
                 "ends inside its gzip stream", id="gzip-cut-inside"),
    pytest.param(OK + b"X-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n", "headers longer than", id="head-too-long"),
    pytest.param(OK + b"".join(b"X-%d: 1\r\n" % i for i in range(300)) + b"\r\n", "header fields",
                 id="too-many-fields"),
])
async def test_false_ups_and_malformed_answers_are_protocol_errors(answer: bytes, detail: str) -> None:
    failure = await _raw_failure(answer[:7], answer[7:])  # split: nothing may hang on how the bytes come
    assert failure.error_type == ErrorType.PROTOCOL, failure.detail
    assert failure.detail.startswith("invalid HTTP response: ") and detail in failure.detail.lower(), failure.detail


async def test_answers_framed_every_way_are_read_to_their_end() -> None:
    until_close = await _raw(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n", b"read until ", b"the end")
    assert (until_close.version, until_close.body) == ("1.0", b"read until the end")
    interim = await _raw(b"HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n",
                         b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
    assert (interim.status, interim.body) == (201, b"ok") and "x-interim" not in interim.headers
    split = await _raw(b"HTT", b"P/1.1 200 OK\r\nContent-Le", b"ngth: 5\r\n\r", b"\nhel", b"lo")
    assert split.body == b"hello"
    chunked = await _raw(OK + b"Transfer-Encoding: chunked\r\n\r\n",
                         b"5;ext=1\r\nhello\r\n", b"6\r\n world\r\n0\r\nChecksum: abc\r\n\r\n")
    assert chunked.body == b"hello world" and chunked.trailers == [("checksum", "abc")]
    assert "checksum" not in chunked.headers
    repeated = await _raw(OK + b"Vary: a\r\nVary: b\r\nContent-Length: 0\r\n\r\n")
    assert repeated.headers["vary"] == "a, b" and repeated.values("vary") == ["a", "b"]
    # HEAD: a Content-Length with no body after it ends at the headers, it is not waited for
    started = time.perf_counter()
    head = await _raw(OK + b"Content-Length: 100\r\n\r\n", method="HEAD")
    assert (head.status, head.body) == (200, b"") and time.perf_counter() - started < 1
    not_modified = await _raw(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n")
    assert (not_modified.status, not_modified.body) == (304, b"")


async def test_codings_decode_whole_and_stop_at_the_cap() -> None:
    members = gzip.compress(b"first member, ") + gzip.compress(b"second member")
    two = await _raw(OK + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(members), members)
    assert two.body == b"first member, second member"
    packed = brotli.compress(b"brotli-marker" * 100)
    br = await _raw(OK + b"Content-Encoding: br\r\n\r\n", packed[:3], packed[3:])
    assert br.body == b"brotli-marker" * 100
    # a bomb: 100 MB of zeros in about 100 kB is stopped at the cap of decoded bytes
    bomb = gzip.compress(b"\0" * 100_000_000, compresslevel=9)
    async with _raw_server(lambda _: [OK + b"Content-Encoding: gzip\r\n\r\n", bomb]) as url:
        started = time.perf_counter()
        capped = await _fetch(url, cap=1 << 20)
    assert capped.truncated and len(capped.body) == 1 << 20 and time.perf_counter() - started < 5


async def test_a_coding_not_asked_for_is_kept_as_it_came_and_said() -> None:
    """blackbox_exporter's TestContentLength "unknown content-encoding": a check that reads nothing
    of the body passes; one that asserts on it is a protocol error naming the coding."""
    answer = OK + b"Content-Encoding: zstd\r\nContent-Length: 5\r\n\r\n(\xb5/\xfd\x00"
    response = await _raw(answer)
    assert (response.status, response.body) == (200, b"(\xb5/\xfd\x00")
    assert response.undecodable == "unsupported content coding 'zstd'"
    async with _raw_server(lambda _: [answer]) as url:
        results = await check_once(f"  - name: status-only\n    kind: http\n    url: {url}\n"
                                   f"  - name: reads-body\n    kind: http\n    url: {url}\n    body_contains: ok\n")
    assert results["status-only"].up, results["status-only"].detail
    reads = results["reads-body"]
    assert (reads.up, reads.error_type) == (False, ErrorType.PROTOCOL)
    assert reads.detail.endswith("unsupported content coding 'zstd': the body assertions cannot read it")


async def test_answers_cut_short_are_resets() -> None:
    for short in (OK + b"Content-Length: 10\r\n\r\nabc", b"HTTP/1.1 200 OK\r\nConte",
                  OK + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhel", b""):
        failure = await _raw_failure(short)
        assert failure.error_type == ErrorType.CONNECTION_RESET, short
    # a status line that is fine needs no body when read_body is off
    busy = await _raw(b"HTTP/1.1 503 Busy\r\nContent-Length: 100\r\n\r\n", read_body=False)
    assert (busy.status, busy.body) == (503, b"")


async def test_locations_are_read_as_browsers_read_them() -> None:
    heads: list[bytes] = []

    def answer(head: bytes) -> list[bytes]:
        if head.startswith(b"GET / "):
            return [b"HTTP/1.1 302 Found\r\nLocation: /caf\xc3\xa9?q=\xc3\xa9\r\nContent-Length: 0\r\n\r\n"]
        if head.startswith(b"GET /two "):
            return [b"HTTP/1.1 302 Found\r\nLocation: /a\r\nLocation: /b\r\nContent-Length: 0\r\n\r\n"]
        return [OK + b"Content-Length: 2\r\n\r\nok"]

    async with _raw_server(answer, heads) as url:
        assert (await _fetch(url)).status == 200
        assert heads[-1].startswith(b"GET /caf%C3%A9?q=%C3%A9 HTTP/1.1")  # the UTF-8 bytes, percent-encoded
        with pytest.raises(ProbeFailure, match="more than one Location") as two:
            await _fetch(url + "two")
        assert two.value.error_type == ErrorType.PROTOCOL


async def test_non_ascii_names_are_sent_as_uts46_says() -> None:
    asked: list[str] = []
    heads: list[bytes] = []
    async with _raw_server(lambda _: [OK + b"Content-Length: 0\r\n\r\n"], heads) as url:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        client = HttpClient()

        async def resolve(host: str, port: int) -> list[tuple[int, Any]]:
            asked.append(host)
            return [(socket.AF_INET, ("127.0.0.1", port))]

        client.names.resolve = resolve  # type: ignore[method-assign]
        try:
            await _fetch(f"http://faß.de:{port}/", client=client)
            await _fetch(f"http://my_service.internal:{port}/", client=client)
        finally:
            await client.aclose()
    # faß.de is xn--fa-hia.de (UTS-46), not fass.de (IDNA 2003): another domain
    assert asked == ["xn--fa-hia.de", "my_service.internal"]
    assert b"Host: xn--fa-hia.de:%d\r\n" % port in heads[0] and b"Host: my_service.internal:" in heads[1]


@asynccontextmanager
async def _syn_blackhole() -> AsyncIterator[int]:
    """A port whose SYNs go unanswered: a listener with a full accept queue (Linux drops them)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    await asyncio.sleep(0.1)
    try:
        yield port
    finally:
        for s in (*fillers, listener):
            s.close()


async def test_every_address_is_raced_and_the_first_answer_wins(http_targets: HttpTargets) -> None:
    async with _syn_blackhole() as dead_port:
        with pytest.raises(TimeoutError):  # the first address really is a blackhole
            await asyncio.wait_for(asyncio.open_connection("127.0.0.1", dead_port), 0.5)
        client = HttpClient()
        addresses = [(socket.AF_INET, ("127.0.0.1", dead_port)), (socket.AF_INET, ("127.0.0.1", http_targets.port))]

        async def resolve(host: str, port: int) -> list[tuple[int, Any]]:
            return addresses

        client.names.resolve = resolve  # type: ignore[method-assign]
        try:
            started = time.perf_counter()
            answer = await _fetch(f"http://two-addresses.test:{http_targets.port}/ok", client=client)
            took = time.perf_counter() - started
            # the second address is tried 250 ms after the first, not after the timeout
            assert answer.status == 200 and 0.2 < took < 2.0, took
            with pytest.raises(ProbeFailure, match="no IPv6 address") as v6:
                await _fetch(f"http://two-addresses.test:{http_targets.port}/ok", client=client, ip_protocol="ip6")
            assert v6.value.error_type == ErrorType.DNS
        finally:
            await client.aclose()


async def test_the_source_address_is_the_one_configured(http_targets: HttpTargets) -> None:
    seen = json.loads((await _fetch(http_targets.url("/echo"), source_ip="127.0.0.2")).body)
    assert seen["peer"] == "127.0.0.2"


async def test_names_are_looked_up_once_while_a_lookup_is_running() -> None:
    client = HttpClient()
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
        await client.aclose()


def test_an_origin_is_the_same_however_it_is_written() -> None:
    from urllib.parse import urlsplit

    from otel_health.probes._client import _origin

    assert _origin(urlsplit("http://Example.com/a")) == _origin(urlsplit("http://example.com:80/b"))
    assert _origin(urlsplit("https://example.com/")) == _origin(urlsplit("https://example.com:443/"))
    assert _origin(urlsplit("https://example.com/")) != _origin(urlsplit("http://example.com/"))
    assert _origin(urlsplit("http://example.com:8080/")) != _origin(urlsplit("http://example.com/"))


async def test_a_body_over_body_size_limit_fails_as_blackbox_exporters_does(http_targets: HttpTargets) -> None:
    """blackbox_exporter's TestMaxResponseLength, plain and compressed: the decoded body counts."""
    size = len((await _fetch(http_targets.url("/ok"))).body)
    unpacked = len((await _fetch(http_targets.url("/gzip"))).body)
    results = await check_once("".join(
        f"  - name: {name}\n    kind: http\n    url: {http_targets.url(path)}\n    body_size_limit: {limit}\n"
        for name, path, limit in (("within", "/ok", size), ("over", "/ok", size - 1),
                                  ("gzip-within", "/gzip", unpacked), ("gzip-over", "/gzip", unpacked - 1))))
    assert results["within"].up and results["gzip-within"].up, results
    for name, limit in (("over", size - 1), ("gzip-over", unpacked - 1)):
        assert (results[name].up, results[name].error_type) == (False, ErrorType.ASSERTION), results[name]
        assert results[name].detail.endswith(f"body is over body_size_limit, {limit} bytes")


def _login_then_home(head: bytes) -> list[bytes]:
    """blackbox_exporter's TestCookieJar: a cookie set on a 302 is what the redirect's target asks for."""
    path = head.split(b" ", 2)[1]
    if path.startswith(b"/login"):
        return [b"HTTP/1.1 302 Found\r\nSet-Cookie: session=s3cr3t-session; Path=/; HttpOnly\r\n"
                b"Set-Cookie: other=elsewhere; Domain=other.example; Path=/\r\n"
                b"Location: /home\r\nContent-Length: 0\r\n\r\n"]
    cookies = [line for line in head.split(b"\r\n") if line.lower().startswith(b"cookie:")]
    if cookies == [b"Cookie: session=s3cr3t-session"]:
        return [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
    return [b"HTTP/1.1 400 Bad Request\r\nContent-Length: 10\r\n\r\nno session"]


async def test_a_cookie_set_on_a_redirect_goes_to_the_redirects_target() -> None:
    heads: list[bytes] = []
    async with _raw_server(_login_then_home, heads) as url:
        response = await _fetch(url + "login")
        assert (response.status, response.body) == (200, b"ok")
        assert b"Cookie" not in heads[0] and b"Cookie: session=s3cr3t-session\r\n" in heads[1]
        assert b"elsewhere" not in heads[1]  # a cookie for another site stays out
        # a configured Cookie header is the check's own: the jar adds nothing to it
        configured = await _fetch(url + "login", headers=[("Cookie", "mine=1")])
        assert configured.status == 400 and b"Cookie: mine=1\r\n" in heads[-1] and b"session" not in heads[-1]
        results = await check_once(f"  - name: login\n    kind: http\n    url: {url}login\n")
    assert results["login"].up, results["login"].detail
    assert "s3cr3t-session" not in repr(results["login"])
