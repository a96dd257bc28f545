"""HTTP/2 on the HTTP probe's own connection layer, against nginx (Debian): ALPN over TLS,
prior knowledge without it, and what HTTP/1.1 checks already judge (status, headers, bodies,
codings, redirects, caps, trailers) judged the same over HTTP/2."""

from __future__ import annotations

import asyncio
import functools

import pytest
import yaml

from otel_health.errors import ErrorType
from otel_health.probes import ProbeSettings
from otel_health.probes._client import HttpClient
from otel_health.probes._messages import Request, Timings
from otel_health.probes._tls import client_context
from tests.harness import h2faults, servers, targets
from tests.harness.checks import assert_failed, check_once
from tests.harness.running import running

pytestmark = pytest.mark.integration


def _http(name: str, url: str, extra: str = "", *, h2: str = "http2: true") -> str:
    return targets.http(name, url, extra, interval=None, timeout="3s", **yaml.safe_load(h2))


async def test_alpn_h2_answers_are_judged_as_http1_answers_are(nginx_server: servers.Nginx) -> None:
    n = nginx_server
    ca = f"    ca_file: {n.cert}\n"
    results = await check_once(
        _http("ok", n.url("/ok"), ca + "    valid_http_versions: [HTTP/2.0]\n    fail_if_header_not_matches:\n"
                                      "      - {header: X-Served, regexp: '^HTTP/2.0$'}\n    body_contains: ok\n")
        + _http("json", n.url("/json"), ca + "    json_equals: {status: ok}\n    version_field: build.version\n")
        + _http("redirect", n.url("/redirect"), ca + "    body_contains: ok\n")
        + _http("gzip", n.url("/page.html"),
                ca + "    body_regex: '(<p>served</p>\\n){1000}(<p>served</p>\\n){1000}'\n")
        + _http("big", n.url("/big.bin"), ca)
        + _http("head", n.url("/big.bin"), ca + "    method: HEAD\n")
        + _http("post", n.url("/echo"), ca + "    method: POST\n    body: '{\"ping\": true}'\n"
                                         "    body_regex: '^POST 14$'\n")
        + _http("no-body", n.url("/big.bin"), ca + "    read_body: false\n")
        + _http("h1-only", n.url("/ok", port=n.h1_tls_port), ca + "    body_contains: ok\n")
        + _http("h2c", n.url("/ok", port=n.h2c_port, tls=False), "    valid_http_versions: [HTTP/2.0]\n",
                h2="http2_prior_knowledge: true"))
    for name, result in results.items():
        assert result.up, (name, result.detail)
    assert results["ok"].tls_expiry is not None and results["ok"].status_code == 200
    assert results["json"].version == "2.4.1"
    assert {"dns", "connect", "tls", "request", "body"} - {"dns"} <= set(results["big"].phases)
    assert "redirect" in results["redirect"].phases

    results = await check_once(
        _http("503", n.url("/status/503"), ca)
        + _http("h1-not-allowed", n.url("/ok", port=n.h1_tls_port), ca + "    valid_http_versions: [HTTP/2.0]\n")
        + _http("untrusted", n.url("/ok"))
        + _http("h2c-to-h1", n.url("/ok", port=n.h1_port, tls=False), "", h2="http2_prior_knowledge: true"))
    expected = {
        "503": (ErrorType.HTTP_STATUS, "status 503"),
        "h1-not-allowed": (ErrorType.ASSERTION, "the answer is HTTP/1.1, allowed are HTTP/2.0"),
        "untrusted": (ErrorType.TLS, "certificate not accepted"),
        "h2c-to-h1": (ErrorType.PROTOCOL, "invalid HTTP/2 response"),
    }
    assert_failed(results, expected)


async def test_a_body_past_every_window_arrives_whole_and_one_past_the_cap_is_cut(nginx_server: servers.Nginx) -> None:
    n = nginx_server
    whole = await check_once(_http("big", n.url("/big.bin"), f"    ca_file: {n.cert}\n    body_regex: '^\\x00'\n"),
                         ProbeSettings(max_body_bytes=4 << 20))
    assert whole["big"].up, whole["big"].detail
    cut = await check_once(_http("big", n.url("/big.bin"), f"    ca_file: {n.cert}\n    body_contains: never-there\n"),
                       ProbeSettings(max_body_bytes=100_000))
    assert (cut["big"].up, cut["big"].error_type) == (False, ErrorType.ASSERTION)
    assert "cut" in cut["big"].detail, cut["big"].detail


async def test_the_span_says_http2_and_the_server_gets_the_checks_traceparent(nginx_server: servers.Nginx) -> None:
    n = nginx_server
    text = ("targets:\n" + _http("traced", n.url("/traceparent"), f"    ca_file: {n.cert}\n    interval: 3s\n"
                                 "    body_regex: '^00-[0-9a-f]{32}-[0-9a-f]{16}-01$'\n"))
    async with running(text) as r:
        await r.wait_for(lambda: r.checks("traced") >= 1, timeout=10, what="a check")
        spans = r.spans.get_finished_spans()
        result = r.result("traced")
    assert result is not None and result.up, result
    get = next(s for s in spans if s.name == "GET")
    assert get.attributes["network.protocol.version"] == "2"


async def test_an_http2_server_that_misbehaves_gets_a_named_error_each_way() -> None:
    server = await h2faults.start()
    port = server.sockets[0].getsockname()[1]
    try:
        results = await check_once("".join(
            _http(name, f"http://127.0.0.1:{port}/{name}", "", h2="http2_prior_knowledge: true").replace(
                "timeout: 3s", "timeout: 1s")
            for name in ("ok", "reset", "goaway", "hang", "uppercase", "no-status", "stream-zero")))
    finally:
        server.close()
        await server.wait_closed()
    assert results.pop("ok").up
    expected = {
        "reset": (ErrorType.CONNECTION_RESET, "the server reset the stream (INTERNAL_ERROR)"),
        "goaway": (ErrorType.CONNECTION_RESET, "the server ended the connection (GOAWAY INTERNAL_ERROR)"),
        "hang": (ErrorType.TIMEOUT, "timeout"),
        "uppercase": (ErrorType.PROTOCOL, "invalid HTTP/2 response"),
        "no-status": (ErrorType.PROTOCOL, "invalid HTTP/2 response"),
        "stream-zero": (ErrorType.PROTOCOL, "invalid HTTP/2 response"),
    }
    assert set(results) == set(expected)
    assert_failed(results, expected)


async def test_trailers_arrive_after_the_body(nginx_server: servers.Nginx) -> None:
    n = nginx_server
    client = HttpClient()
    try:
        response = await client.fetch(Request(
            url=n.url("/trailers"), http2="alpn",
            context=functools.partial(client_context, ca_file=n.cert, alpn=("h2", "http/1.1"))), Timings())
    finally:
        await client.aclose()
    assert (response.version, response.body, response.trailers) == ("2.0", b"with trailers\n",
                                                                     [("x-checksum", "abc123")])


async def _resumed(n: servers.Nginx) -> dict[str, list[bool]]:
    """Three requests each over HTTP/1.1 and HTTP/2 with tls_resume, and over HTTP/1.1 without:
    which of them the server resumed."""
    client = HttpClient()
    try:
        resumed = {}
        for name, url, resume in (("h1", n.url("/ok", port=n.h1_tls_port), True), ("h2", n.url("/ok"), True),
                                  ("full", n.url("/ok", port=n.h1_tls_port), False)):
            context = functools.partial(client_context, ca_file=n.cert, alpn=("h2", "http/1.1") if name == "h2" else (),
                                        resume=resume)
            request = Request(url=url, context=context, http2="alpn" if name == "h2" else "off")
            answers = [await client.fetch(request, Timings()) for _ in range(3)]
            assert all(a.status == 200 and a.tls and a.peer_chain for a in answers), name
            resumed[name] = [a.tls_resumed for a in answers]
    finally:
        await client.aclose()
    return resumed


async def test_tls_resume_offers_the_last_session_and_the_server_takes_it(nginx_server: servers.Nginx) -> None:
    """nginx resumes by TLS 1.3 tickets: with tls_resume the second check's handshake is a
    resumption, over HTTP/1.1 and over HTTP/2, on asyncio's loop and on uvloop (which
    `otel-health run` uses, and whose TLS creates the connection's SSL object its own way);
    without it every check is a full handshake."""
    import uvloop

    assert await _resumed(nginx_server) == {"h1": [False, True, True], "h2": [False, True, True],
                                            "full": [False, False, False]}
    # the sessions are kept in the (shared) context: the next client's first request resumes too
    assert await asyncio.to_thread(uvloop.run, _resumed(nginx_server)) == {
        "h1": [True, True, True], "h2": [True, True, True], "full": [False, False, False]}
