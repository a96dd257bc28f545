"""The HTTP options every peer has, each against a real server: a forward proxy (tinyproxy),
an mTLS listener, TLS version limits, header and body assertions, OAuth2 client credentials
(the test server's token endpoint, which counts its calls)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from otel_health.errors import ErrorType
from tests.harness import servers, targets
from tests.harness.checks import what
from tests.harness.running import running
from tests.harness.servers import HttpTargets

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Tinyproxy]:
    server = servers.start_tinyproxy(tmp_path_factory.mktemp("tinyproxy"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_proxy(tmp_path_factory: pytest.TempPathFactory, seeded_password: str) -> Iterator[servers.Tinyproxy]:
    server = servers.start_tinyproxy(tmp_path_factory.mktemp("tinyproxy-auth"), user="prox", password=seeded_password)
    yield server
    server.stop()


_http = functools.partial(targets.http, interval="5s", timeout="2s")


async def _results(text: str, names: list[str], timeout: float = 15) -> dict[str, object]:
    async with running(text) as r:
        return {name: await r.wait_result(name, timeout=timeout) for name in names}


async def test_targets_through_a_real_forward_proxy(
    http_targets: HttpTargets, proxy: servers.Tinyproxy, auth_proxy: servers.Tinyproxy,
    monkeypatch: pytest.MonkeyPatch, seeded_password: str,
) -> None:
    h = http_targets
    monkeypatch.setenv("PROXY_PASSWORD", seeded_password)
    monkeypatch.setenv("WRONG_PROXY_PASSWORD", "not-the-password")
    via = f"    proxy_url: {proxy.url}\n"
    authed = (f"    proxy_url: {auth_proxy.url}\n"
              "    proxy_basic_auth: {username: prox, password: '${PROXY_PASSWORD}'}\n")
    text = "targets:\n" + "".join([
        _http("plain", h.url("/echo"), via + "    json_equals: {method: GET}\n"),
        _http("tunnel", h.url("/ok", tls=True), via + f"    ca_file: {h.cert}\n"),
        _http("bypassed", h.url("/echo"), via + "    no_proxy: [example.com, 127.0.0.0/8]\n"),
        _http("proxy-down", h.url("/ok"), f"    proxy_url: http://127.0.0.1:{h.closed_port}\n"),
        _http("tunnel-proxy-down", h.url("/ok", tls=True), f"    proxy_url: http://127.0.0.1:{h.closed_port}\n"),
        _http("target-down", f"https://127.0.0.1:{h.closed_port}/", via),
        _http("no-credentials", h.url("/ok"), f"    proxy_url: {auth_proxy.url}\n"),
        _http("tunnel-no-credentials", h.url("/ok", tls=True), f"    proxy_url: {auth_proxy.url}\n"),
        _http("wrong-credentials", h.url("/ok", tls=True), f"    proxy_url: {auth_proxy.url}\n"
              "    proxy_basic_auth: {username: prox, password: '${WRONG_PROXY_PASSWORD}'}\n"),
        _http("authed", h.url("/echo"), authed),
        _http("authed-tunnel", h.url("/ok", tls=True), authed + f"    ca_file: {h.cert}\n"),
    ])
    names = ["plain", "tunnel", "bypassed", "proxy-down", "tunnel-proxy-down", "target-down", "no-credentials",
             "tunnel-no-credentials", "wrong-credentials", "authed", "authed-tunnel"]
    async with running(text) as r:
        results = {name: await r.wait_result(name, timeout=15) for name in names}
        spans = r.spans.get_finished_spans()
    got = {name: (res.error_type, what(res.detail) if res.detail else res.detail) for name, res in results.items()}
    assert all(results[n].up for n in ("plain", "tunnel", "bypassed", "authed", "authed-tunnel")), got
    # The proxy saw the absolute-form request and the CONNECT; the bypassed target went direct.
    seen = proxy.requests()
    assert f"GET http://127.0.0.1:{h.port}/echo HTTP/1.1" in seen
    assert f"CONNECT 127.0.0.1:{h.tls_port} HTTP/1.1" in seen
    assert sum(line.startswith(f"GET http://127.0.0.1:{h.port}/echo") for line in seen) == 1  # not "bypassed"
    assert f"CONNECT 127.0.0.1:{h.tls_port} HTTP/1.1" in auth_proxy.requests()
    assert {"connect", "proxy", "tls", "request"} <= set(results["tunnel"].phases)
    assert "proxy" not in results["plain"].phases
    port = h.closed_port
    assert got["proxy-down"] == (ErrorType.CONNECTION_REFUSED, f"proxy 127.0.0.1:{port}: connection refused")
    assert got["tunnel-proxy-down"] == got["proxy-down"]
    assert got["target-down"][0] == ErrorType.HTTP_STATUS
    assert f"proxy 127.0.0.1:{proxy.port} answered CONNECT with 500" in got["target-down"][1]
    assert got["no-credentials"][0] == ErrorType.AUTH and "requires credentials" in got["no-credentials"][1]
    assert got["tunnel-no-credentials"][0] == ErrorType.AUTH
    assert got["wrong-credentials"][0] == ErrorType.AUTH and "refused the credentials" in got["wrong-credentials"][1]
    # The proxy's credentials went to the proxy only: the target never saw them.
    assert results["authed"].up
    exported = " ".join(s.to_json() for s in spans)
    assert seeded_password not in exported and "proxy-authorization" not in exported.lower()


async def test_proxy_from_the_environment(http_targets: HttpTargets, auth_proxy: servers.Tinyproxy,
                                          monkeypatch: pytest.MonkeyPatch, seeded_password: str) -> None:
    h = http_targets
    monkeypatch.setenv("HTTPS_PROXY", f"http://prox:{seeded_password}@127.0.0.1:{auth_proxy.port}")
    monkeypatch.setenv("HTTP_PROXY", f"127.0.0.1:{auth_proxy.port}")  # no credentials: refused
    monkeypatch.setenv("NO_PROXY", "localhost")
    text = "targets:\n" + "".join([
        _http("env-tunnel", h.url("/ok", tls=True), f"    proxy_from_environment: true\n    ca_file: {h.cert}\n"),
        _http("env-plain", h.url("/ok"), "    proxy_from_environment: true\n"),
        _http("env-bypassed", f"http://localhost:{h.port}/ok", "    proxy_from_environment: true\n"),
        _http("env-ignored", h.url("/ok")),
    ])
    async with running(text) as r:
        results = {n: await r.wait_result(n) for n in ("env-tunnel", "env-plain", "env-bypassed", "env-ignored")}
        _, _, metrics = await r.get("/metrics")
    assert results["env-tunnel"].up, results["env-tunnel"].detail
    assert results["env-plain"].error_type == ErrorType.AUTH
    assert results["env-bypassed"].up and results["env-ignored"].up
    assert seeded_password not in metrics


async def test_client_certificates_and_tls_policy(http_targets: HttpTargets, monkeypatch: pytest.MonkeyPatch,
                                                  seeded_password: str) -> None:
    h = http_targets
    monkeypatch.setenv("KEY_PASSWORD", seeded_password)
    good, encrypted, stranger = (h.client_certs[n] for n in ("good", "encrypted", "stranger"))
    mtls = f"https://127.0.0.1:{h.mtls_port}/"
    trust = f"    ca_file: {h.cert}\n"
    downgrade = h.url(f"/redirect?to=http://127.0.0.1:{h.port}/ok", tls=True)
    text = "targets:\n" + "".join([
        _http("mtls-good", mtls, trust + f"    cert_file: {good[0]}\n    key_file: {good[1]}\n"),
        _http("mtls-encrypted", mtls, trust + f"    cert_file: {encrypted[0]}\n    key_file: {encrypted[1]}\n"
              "    key_password: '${KEY_PASSWORD}'\n"),
        _http("mtls-none", mtls, trust),
        _http("mtls-stranger", mtls, trust + f"    cert_file: {stranger[0]}\n    key_file: {stranger[1]}\n"),
        _http("tls13-wanted", f"https://127.0.0.1:{h.tls12_port}/ok", trust + "    tls_min_version: TLS13\n"),
        _http("tls12-ok", f"https://127.0.0.1:{h.tls12_port}/ok", trust + "    tls_max_version: TLS12\n"),
        _http("server-name", f"https://127.0.0.1:{h.wrong_host_port}/ok",
              f"    ca_file: {h.wrong_host_cert}\n    server_name: other.example\n"),
        _http("server-name-missing", f"https://127.0.0.1:{h.wrong_host_port}/ok",
              f"    ca_file: {h.wrong_host_cert}\n"),
        _http("fail-if-ssl", h.url("/ok", tls=True), trust + "    fail_if_ssl: true\n"),
        _http("fail-if-not-ssl", h.url("/ok"), "    fail_if_not_ssl: true\n"),
        _http("downgraded", downgrade, trust + "    fail_if_not_ssl: true\n"),
        _http("ssl-kept", h.url("/ok", tls=True), trust + "    fail_if_not_ssl: true\n"),
    ])
    names = ["mtls-good", "mtls-encrypted", "mtls-none", "mtls-stranger", "tls13-wanted", "tls12-ok", "server-name",
             "server-name-missing", "fail-if-ssl", "fail-if-not-ssl", "downgraded", "ssl-kept"]
    async with running(text) as r:
        results = {name: await r.wait_result(name, timeout=15) for name in names}
    got = {name: (res.error_type, what(res.detail) if res.detail else res.detail) for name, res in results.items()}
    for name in ("mtls-good", "mtls-encrypted", "tls12-ok", "server-name", "ssl-kept"):
        assert results[name].up, (name, got[name])
    assert got["mtls-none"][0] == ErrorType.TLS and "requires a client certificate" in got["mtls-none"][1]
    assert got["mtls-stranger"][0] == ErrorType.TLS and "refused the client certificate" in got["mtls-stranger"][1]
    assert got["tls13-wanted"][0] == ErrorType.TLS and "TLS version" in got["tls13-wanted"][1]
    assert got["server-name-missing"][0] == ErrorType.TLS
    assert got["fail-if-ssl"] == (ErrorType.ASSERTION, "fail_if_ssl: the answer came over TLS")
    assert got["fail-if-not-ssl"] == (ErrorType.ASSERTION, "fail_if_not_ssl: the answer came over plain HTTP")
    assert got["downgraded"][0] == ErrorType.ASSERTION and "a redirect left https" in got["downgraded"][1]
    # The certificate reported is the last TLS hop's, also when the last hop was plain.
    assert results["downgraded"].tls_expiry is not None


async def test_header_body_and_version_assertions_name_the_assertion(http_targets: HttpTargets) -> None:
    h = http_targets
    page = h.url("/headers?X-Build=canary-7&Set-Cookie=session%3Dsecret-cookie-value")
    text = "targets:\n" + "".join([
        _http("header-matches", page, "    fail_if_header_matches: [{header: X-Build, regexp: 'canary'}]\n"),
        _http("header-not-matches", page, "    fail_if_header_not_matches: [{header: x-build, regexp: '^stable'}]\n"),
        _http("header-passes", page, "    fail_if_header_not_matches: [{header: X-Build, regexp: 'canary-\\d+'}]\n"
              "    fail_if_header_matches: [{header: X-Debug, regexp: '.', allow_missing: true}]\n"),
        _http("header-missing", page, "    fail_if_header_not_matches: [{header: X-Debug, regexp: '.'}]\n"),
        _http("cookie", page, "    fail_if_header_matches: [{header: Set-Cookie, regexp: 'session'}]\n"),
        _http("body-not", h.url("/ok"), "    body_not_regex: '\"status\": *\"ok\"'\n"),
        _http("body-not-passes", h.url("/ok"), "    body_not_regex: 'error|fail'\n"),
        _http("version-refused", h.url("/ok"), "    valid_http_versions: [HTTP/1.0, HTTP/2.0]\n"),
        _http("version-allowed", h.url("/ok"), "    valid_http_versions: [HTTP/1.1]\n"),
    ])
    names = ["header-matches", "header-not-matches", "header-passes", "header-missing", "cookie", "body-not",
             "body-not-passes", "version-refused", "version-allowed"]
    results = await _results(text, names)
    got = {name: (res.error_type, what(res.detail) if res.detail else res.detail) for name, res in results.items()}  # type: ignore[attr-defined]
    assert {n for n in names if got[n][0] is None} == {"header-passes", "body-not-passes", "version-allowed"}, got
    assert all(got[n][0] == ErrorType.ASSERTION for n in names if got[n][0] is not None)
    assert got["header-matches"][1] == "fail_if_header_matches: x-build 'canary-7' matches /canary/"
    assert got["header-not-matches"][1] == "fail_if_header_not_matches: x-build 'canary-7' does not match /^stable/"
    assert got["header-missing"][1] == "fail_if_header_not_matches: the answer has no x-debug header"
    assert got["cookie"][1] == "fail_if_header_matches: set-cookie (value not shown) matches /session/"
    assert got["body-not"][1].startswith("body_not_regex: the body matches")
    assert got["version-refused"][1] == ("valid_http_versions: the answer is HTTP/1.1, "
                                         "allowed are HTTP/1.0, HTTP/2.0")


def _oauth(token_url: str, extra: str = "") -> str:
    return (f"    oauth2:\n      token_url: {token_url}\n      client_id: otel-health-checker\n"
            f"      client_secret: '${{CLIENT_SECRET}}'\n{extra}")


async def test_oauth2_tokens_are_shared_cached_refreshed_and_failures_named(
    http_targets: HttpTargets, monkeypatch: pytest.MonkeyPatch, seeded_password: str,
) -> None:
    h = http_targets
    monkeypatch.setenv("CLIENT_SECRET", seeded_password)
    monkeypatch.setenv("WRONG_SECRET", "wrong")
    shared = _oauth(h.url("/oauth/token?key=shared"), "      scopes: [health.read, metrics]\n"
                    "      endpoint_params: {audience: api.example}\n")
    text = "targets:\n" + "".join([
        _http("oauth-a", h.url("/oauth/resource?key=shared"), shared, interval="0.3s", timeout="0.3s"),
        _http("oauth-b", h.url("/oauth/resource?key=shared"), shared, interval="0.3s", timeout="0.3s"),
        _http("oauth-short", h.url("/oauth/resource?key=short"), _oauth(h.url("/oauth/token?key=short&ttl=2")),
              interval="0.3s", timeout="0.3s"),
        _http("oauth-down", h.url("/oauth/resource?key=down"), _oauth(f"http://127.0.0.1:{h.closed_port}/token")),
        _http("oauth-garbage", h.url("/oauth/resource?key=garbage"),
              _oauth(h.url("/oauth/token?key=garbage&answer=garbage"))),
        _http("oauth-wrong", h.url("/oauth/resource?key=wrong"), _oauth(h.url("/oauth/token?key=wrong"))
              .replace("${CLIENT_SECRET}", "${WRONG_SECRET}")),
    ])
    async with running(text) as r:
        await r.wait_for(lambda: r.checks("oauth-a") >= 6 and r.checks("oauth-b") >= 6, timeout=15,
                         what="six checks of each target sharing a token")
        assert h.oauth_calls("shared")["calls"] == 1  # one token for both, for all their checks
        form = h.oauth_calls("shared")["form"]
        assert form == {"grant_type": "client_credentials", "scope": "health.read metrics",
                        "audience": "api.example"}
        # A token revoked before its end: the next check is refused, fetches once, and is up.
        before = r.checks("oauth-a")
        async with aiohttp.ClientSession() as session, session.get(h.url("/oauth/revoke?key=shared")) as resp:
            assert resp.status == 200
        await r.wait_for(lambda: r.checks("oauth-a") >= before + 3, timeout=10, what="checks after revoking")
        assert h.oauth_calls("shared")["calls"] == 2
        # A two-second token is fetched again before it ends: no check is ever refused.
        start = h.oauth_calls("short")["calls"]
        await asyncio.sleep(2.5)
        assert h.oauth_calls("short")["calls"] >= start + 1
        results = {n: r.result(n) for n in ("oauth-a", "oauth-b", "oauth-short", "oauth-down", "oauth-garbage",
                                            "oauth-wrong")}
        history = [e for e in r.state("oauth-a").history]
        spans = r.spans.get_finished_spans()
        _, _, metrics = await r.get("/metrics")
    assert all(results[n] and results[n].up for n in ("oauth-a", "oauth-b", "oauth-short")), results  # type: ignore[union-attr]
    assert len(history) >= 6 and all(e.up for e in history), [e.detail for e in history]
    down, garbage, wrong = results["oauth-down"], results["oauth-garbage"], results["oauth-wrong"]
    assert down is not None and down.error_type == ErrorType.CONNECTION_REFUSED
    assert down.detail.endswith(f": OAuth2 token endpoint 127.0.0.1:{h.closed_port}: connection refused")
    assert garbage is not None and garbage.error_type == ErrorType.PROTOCOL
    assert "answered 200 with neither JSON nor a form" in garbage.detail
    assert wrong is not None and wrong.error_type == ErrorType.AUTH
    assert "refused the client with 401: invalid_client" in wrong.detail
    # The token fetch is a CLIENT span of its own, with its phases, under a check's root span.
    fetches = [s for s in spans if s.name == "POST" and "/oauth/token" in str(s.attributes.get("url.full"))]
    assert fetches and all(s.parent is not None for s in fetches)
    roots = {s.context.span_id: s.name for s in spans if s.parent is None}
    assert {roots.get(s.parent.span_id) for s in fetches if s.parent} & {"health_check oauth-a",
                                                                          "health_check oauth-b"}
    assert any("tta.phase.connect" in (s.attributes or {}) for s in fetches)
    for text_seen in (metrics, " ".join(s.to_json() for s in spans), repr(results)):
        assert seeded_password not in text_seen and "tok-shared-" not in text_seen


async def test_new_secrets_never_leak_into_any_output(
    http_targets: HttpTargets, auth_proxy: servers.Tinyproxy, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, seeded_password: str, tmp_path: Path,
) -> None:
    """The proxy password, the key password, the client secret and the token, across every
    output: metrics, /health, /api/v1/targets, spans, logs, results."""
    h = http_targets
    caplog.set_level(logging.DEBUG)
    (tmp_path / "client-secret").write_text(seeded_password + "\n")
    token_file = tmp_path / "api-token"
    token_file.write_text("api-token-123\n")
    monkeypatch.setenv("PROXY_PASSWORD", seeded_password)
    monkeypatch.setenv("KEY_PASSWORD", seeded_password)
    cert, key = h.client_certs["encrypted"]
    oauth = (f"    oauth2:\n      token_url: {h.url('/oauth/token?key=leak')}\n"
             f"      client_id: otel-health-checker\n      client_secret_file: {tmp_path / 'client-secret'}\n")
    text = f"api_token_file: {token_file}\ntargets:\n" + "".join([
        _http("proxied", h.url("/ok", tls=True), f"    proxy_url: {auth_proxy.url}\n    ca_file: {h.cert}\n"
              "    proxy_basic_auth: {username: prox, password: '${PROXY_PASSWORD}'}\n"),
        _http("proxied-down", f"https://127.0.0.1:{h.closed_port}/", f"    proxy_url: {auth_proxy.url}\n"
              "    proxy_basic_auth: {username: prox, password: '${PROXY_PASSWORD}'}\n"),
        _http("mtls", f"https://127.0.0.1:{h.mtls_port}/ok", f"    ca_file: {h.cert}\n    cert_file: {cert}\n"
              f"    key_file: {key}\n    key_password: '${{KEY_PASSWORD}}'\n"),
        _http("oauth", h.url("/oauth/resource?key=leak"), oauth),
        _http("oauth-refused", h.url("/status/401"), oauth),
    ])
    names = ["proxied", "proxied-down", "mtls", "oauth", "oauth-refused"]
    async with running(text) as r:
        for name in names:
            await r.wait_result(name)
        _, _, metrics = await r.get("/metrics")
        _, _, health = await r.get("/health")
        async with aiohttp.ClientSession() as session, session.get(
                f"{r.url}/api/v1/targets", headers={"Authorization": "Bearer api-token-123"}) as resp:
            targets = await resp.text()
        spans = " ".join(s.to_json() for s in r.spans.get_finished_spans())
        results = repr(r.collector.store.snapshot())
        up = {n: r.result(n).up for n in names}  # type: ignore[union-attr]
    assert up == {"proxied": True, "proxied-down": False, "mtls": True, "oauth": True, "oauth-refused": False}
    settings = {t["name"]: t["settings"] for t in json.loads(targets)["targets"]}
    assert settings["oauth"]["oauth2"]["client_secret"].startswith("REDACTED (file:")
    assert settings["mtls"]["tls"]["key_password"] == "REDACTED (env:KEY_PASSWORD)"
    assert settings["proxied"]["proxy"] == {"url": auth_proxy.url, "auth": "basic", "no_proxy": []}
    for where, seen in (("metrics", metrics), ("health", health), ("targets", targets), ("spans", spans),
                        ("logs", caplog.text), ("results", results)):
        assert seeded_password not in seen, f"a secret in {where}"
        assert "tok-leak-" not in seen, f"the OAuth2 token in {where}"
