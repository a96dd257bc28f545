"""http3: true against an HTTP/3 server on aioquic (a process of its own): the answer judged as
the other versions', QUIC's handshake its own phase, the certificate verified and reported, and
each way a check fails named."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from otel_health.errors import ErrorType
from tests.harness import servers, targets
from tests.harness.checks import assert_failed, check_once
from tests.harness.procs import free_port
from tests.harness.tls import not_after

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def h3d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.H3d]:
    server = servers.start_h3d(tmp_path_factory.mktemp("h3d"))
    yield server
    server.stop()


def _h3(name: str, url: str, h3d: servers.H3d, *, timeout: str = "3s", **fields: object) -> str:
    return targets.entry(name, "http", url=url, http3=True, ca_file=str(h3d.cert), timeout=timeout, **fields)


async def test_an_http3_answer_is_judged_as_any_other(h3d: servers.H3d, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("H3_TOKEN", "h3-secret-7711")
    results = await check_once(
        _h3("ok", h3d.url("/ok"), h3d, valid_http_versions=["HTTP/3.0"], body_contains="ok",
            fail_if_header_not_matches=[{"header": "server", "regexp": "^h3d$"}])
        + _h3("json", h3d.url("/gzip"), h3d, json_equals={"status": "ok"})
        + _h3("headers", h3d.url("/headers"), h3d, headers={"X-Check": "otel", "Authorization": "${H3_TOKEN}"},
              body_contains="x-check: otel"))
    for name, result in results.items():
        assert result.up, (name, result.detail)
        assert result.status_code == 200, name
        assert {"quic", "request", "body"} <= set(result.phases), (name, result.phases)
        assert result.tls_expiry == not_after(h3d.cert), name


async def test_each_way_an_http3_check_fails_is_named(h3d: servers.H3d) -> None:
    results = await check_once(
        _h3("status", h3d.url("/status/503"), h3d)
        + _h3("versions", h3d.url("/ok"), h3d, valid_http_versions=["HTTP/1.1", "HTTP/2.0"])
        + _h3("too-big", h3d.url("/big"), h3d, body_size_limit=1024)
        + targets.entry("untrusted", "http", url=h3d.url("/ok"), http3=True, timeout="2s")
        + _h3("nobody", f"https://localhost:{free_port()}/ok", h3d, timeout="1s"))
    assert_failed(results, {
        "status": (ErrorType.HTTP_STATUS, "status 503"),
        "versions": (ErrorType.ASSERTION, "the answer is HTTP/3.0"),
        "too-big": (ErrorType.ASSERTION, "body is over body_size_limit"),
        "untrusted": (ErrorType.TLS, "certificate"),
        "nobody": (ErrorType.CONNECTION_REFUSED, "connection refused"),  # the ICMP answer, at once
    })
