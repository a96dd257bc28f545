"""Pure logic of the HTTP options: which hosts bypass a proxy, proxy URLs, OAuth2 token
answers, TLS alerts in words. The protocols themselves are proven against real servers in
tests/integration/test_http_options.py."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import ssl
import time
from pathlib import Path

import pytest

from otel_health.config.loader import load_text
from otel_health.errors import ErrorType, ProbeFailure
from otel_health.probes import PROBES
from otel_health.probes._base import classify_os_error
from otel_health.probes._oauth2 import _token_from
from otel_health.probes._proxy import NoProxy, Proxies, Proxy, environment_proxies, parse_proxy_url
from otel_health.probes._tls import ClientCertificate, certificate_problem, client_context


@pytest.mark.parametrize(("entries", "host", "port", "bypass"), [
    (["example.com"], "example.com", 80, True),
    (["example.com"], "api.example.com", 443, True),
    (["example.com"], "badexample.com", 80, False),
    ([".example.com"], "example.com", 80, False),
    ([".example.com"], "a.b.example.com", 80, True),
    (["*.example.com"], "a.example.com", 80, True),
    (["Example.COM."], "api.example.com.", 80, True),
    (["10.0.0.0/8"], "10.1.2.3", 80, True),
    (["10.0.0.0/8"], "11.1.2.3", 80, False),
    (["10.0.0.0/8"], "10.example.com", 80, False),
    (["192.0.2.7"], "192.0.2.7", 8080, True),
    (["::1"], "::1", 80, True),
    (["[::1]:8080"], "::1", 80, False),
    (["[::1]:8080"], "::1", 8080, True),
    (["internal:8443"], "internal", 8443, True),
    (["internal:8443"], "internal", 443, False),
    (["*"], "anything.at.all", 1, True),
    ([" ", ""], "example.com", 80, False),
])
def test_no_proxy_matches_as_go_and_curl_read_it(entries: list[str], host: str, port: int, bypass: bool) -> None:
    assert NoProxy.parse(entries).bypass(host, port) is bypass


def test_no_proxy_refuses_what_is_neither_a_name_nor_an_address() -> None:
    with pytest.raises(ValueError, match="is not a host name"):
        NoProxy.parse(["http://example.com/"])
    with pytest.raises(ValueError, match="invalid port"):
        NoProxy.parse(["example.com:http"])


def test_a_proxy_is_chosen_per_scheme_and_bypassed_per_host() -> None:
    web, tls = Proxy("web-proxy", 3128), Proxy("tls-proxy", 3129)
    proxies = Proxies(web, tls, NoProxy.parse(["localhost"]))
    assert proxies.for_url("http", "api.example", 80) is web
    assert proxies.for_url("https", "api.example", 443) is tls
    assert proxies.for_url("https", "localhost", 443) is None
    assert Proxies(None, tls).for_url("http", "api.example", 80) is None


@pytest.mark.parametrize(("text", "host", "port", "user"), [
    ("http://proxy.internal:3128", "proxy.internal", 3128, None),
    ("proxy.internal:3128", "proxy.internal", 3128, None),
    ("http://proxy.internal", "proxy.internal", 80, None),
    ("http://u%40corp:p%3Ass@proxy:8080/", "proxy", 8080, "u@corp"),
    ("http://[::1]:3128", "::1", 3128, None),
])
def test_proxy_urls(text: str, host: str, port: int, user: str | None) -> None:
    parsed = parse_proxy_url(text)
    assert (parsed.host, parsed.port, parsed.user) == (host, port, user)
    assert "p:ss" not in repr(parsed) and "p:ss" not in parsed.shown


@pytest.mark.parametrize(("text", "reason"), [
    ("socks5://proxy:1080", "only http:// proxies"),
    ("https://proxy:3128", "only http:// proxies"),
    ("http://proxy:3128/path", "only http://host:port"),
    ("http://proxy:0", "port 0"),
    ("http://:3128", "no host"),
    ("http://proxy:99999", "not a valid URL"),
])
def test_proxy_urls_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_proxy_url(text)


def test_environment_proxies_upper_case_first_then_lower() -> None:
    env = {"https_proxy": "lower:1", "HTTPS_PROXY": "upper:2", "http_proxy": "only-lower:3", "NO_PROXY": " "}
    assert environment_proxies(env) == (("http_proxy", "only-lower:3"), ("HTTPS_PROXY", "upper:2"), None)


def _token(status: int, body: bytes, content_type: str = "application/json") -> tuple[str, float]:
    token = _token_from(status, content_type, body, "OAuth2 token endpoint idp:443")
    return token.value, token.refresh_at


def test_a_token_answer_is_read_and_refreshed_before_its_end() -> None:
    now = time.monotonic()
    value, refresh_at = _token(200, b'{"access_token": "abc.def-ghi", "token_type": "bearer", "expires_in": 3600}')
    assert value == "abc.def-ghi" and now + 3540 <= refresh_at <= time.monotonic() + 3570
    _, short = _token(200, b'{"access_token": "t", "expires_in": "4"}')  # a number as text, no type: Bearer
    assert short <= time.monotonic() + 2.0
    _, forever = _token(200, b'{"access_token": "t"}')
    assert forever == float("inf")
    value, _ = _token(200, b"access_token=from-a-form&token_type=bearer", "application/x-www-form-urlencoded")
    assert value == "from-a-form"


@pytest.mark.parametrize(("status", "body", "content_type", "error_type", "detail"), [
    (401, b'{"error": "invalid_client", "error_description": "bad secret"}', "application/json", ErrorType.AUTH,
     "refused the client with 401: invalid_client (bad secret)"),
    (400, b'{"error": "invalid_scope"}', "application/json", ErrorType.AUTH, "with 400: invalid_scope"),
    (403, b"<html>", "text/html", ErrorType.AUTH, "refused the client with 403"),
    (503, b"", "text/plain", ErrorType.HTTP_STATUS, "answered 503"),
    (200, b"<html>login</html>", "text/html", ErrorType.PROTOCOL, "neither JSON nor a form"),
    (200, b"[1, 2]", "application/json", ErrorType.PROTOCOL, "neither JSON nor a form"),
    (200, b'{"token_type": "bearer"}', "application/json", ErrorType.PROTOCOL, "without a usable access_token"),
    (200, b'{"access_token": "two words"}', "application/json", ErrorType.PROTOCOL, "without a usable"),
    (200, b'{"access_token": 12}', "application/json", ErrorType.PROTOCOL, "without a usable"),
    (200, b'{"access_token": "t", "token_type": "mac"}', "application/json", ErrorType.PROTOCOL,
     "of type 'mac'; only Bearer"),
])
def test_token_endpoint_failures_are_named(status: int, body: bytes, content_type: str, error_type: ErrorType,
                                           detail: str) -> None:
    with pytest.raises(ProbeFailure) as info:
        _token(status, body, content_type)
    assert info.value.error_type == error_type
    assert info.value.detail.startswith("OAuth2 token endpoint idp:443") and detail in info.value.detail


def test_an_error_code_that_is_not_one_is_not_repeated() -> None:
    with pytest.raises(ProbeFailure) as info:
        _token(401, b'{"error": "line\\nbreak \\"quoted\\""}')
    assert info.value.detail == "OAuth2 token endpoint idp:443 refused the client with 401"


@pytest.mark.parametrize(("reason", "words"), [
    ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "the server requires a client certificate"),
    ("TLSV1_ALERT_UNKNOWN_CA", "the server refused the client certificate"),
    ("SSLV3_ALERT_BAD_CERTIFICATE", "the server refused the client certificate"),
    ("TLSV1_ALERT_PROTOCOL_VERSION", "no TLS version both sides accept"),
    ("SOMETHING_ELSE", "TLS handshake failed: SOMETHING_ELSE"),
])
def test_tls_alerts_in_words(reason: str, words: str) -> None:
    exc = ssl.SSLError(1, f"[SSL: {reason}] ...")
    exc.reason = reason  # type: ignore[misc]
    error_type, detail = classify_os_error(exc)
    assert error_type == ErrorType.TLS and detail.startswith(words) and reason in detail


TLS_DATA = Path(__file__).resolve().parents[2] / "testdata" / "tls"


def test_certificate_and_key_problems_name_their_field() -> None:
    cert, key, encrypted = TLS_DATA / "client.crt", TLS_DATA / "client.key", TLS_DATA / "client-encrypted.key"
    assert certificate_problem(ClientCertificate(cert, key)) is None
    assert certificate_problem(ClientCertificate(cert, encrypted, "testdata-only")) is None
    assert certificate_problem(ClientCertificate(cert, encrypted, "wrong")) == ("key_password",
                                                                                 "does not decrypt the key")
    assert certificate_problem(ClientCertificate(cert, TLS_DATA / "other.key"))[0] == "key_file"  # type: ignore[index]


def test_a_client_certificate_context_is_shared_until_its_files_change(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    shutil.copy(TLS_DATA / "client.crt", cert)
    shutil.copy(TLS_DATA / "client.key", key)
    first = client_context(client_cert=ClientCertificate(cert, key), min_version="TLS13")
    assert client_context(client_cert=ClientCertificate(cert, key), min_version="TLS13") is first
    assert first.minimum_version is ssl.TLSVersion.TLSv1_3
    stat = os.stat(key)
    os.utime(key, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert client_context(client_cert=ClientCertificate(cert, key), min_version="TLS13") is not first


def test_every_http_option_survives_the_trip_back_from_the_reload_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reloads read the config in a process of their own and send it back pickled."""
    monkeypatch.setenv("OPT_SECRET", "opt-secret-value")
    monkeypatch.setenv("HTTPS_PROXY", "http://envuser:opt-secret-value@proxy.internal:3128")
    monkeypatch.setenv("KEY_PASSWORD", "testdata-only")
    text = f"""targets:
  - name: every
    kind: http
    url: https://api.example/health
    proxy_url: http://proxy.internal:3128
    proxy_basic_auth: {{username: u, password: '${{OPT_SECRET}}'}}
    no_proxy: [localhost, 10.0.0.0/8, .svc]
    cert_file: {TLS_DATA / 'client.crt'}
    key_file: {TLS_DATA / 'client-encrypted.key'}
    key_password: '${{KEY_PASSWORD}}'
    tls_min_version: TLS12
    tls_max_version: TLS13
    server_name: api.internal
    fail_if_not_ssl: true
    fail_if_header_matches: [{{header: X-Degraded, regexp: '.', allow_missing: true}}]
    fail_if_header_not_matches: [{{header: Content-Type, regexp: json}}]
    body_not_regex: down
    body_regex: [ok, '"status"']
    body_cel: "body.checks.all(c, c.up)"
    body_not_cel: "body.degraded"
    compression: gzip
    method: POST
    body_file: {TLS_DATA / 'client.crt'}
    tls_resume: true
    valid_http_versions: [HTTP/1.1]
    oauth2:
      token_url: https://idp.example/token
      client_id: c
      client_secret: '${{OPT_SECRET}}'
      scopes: a b
      endpoint_params: {{audience: api, client_assertion_type: x}}
  - name: from-env
    kind: http
    url: https://api.example/health
    proxy_from_environment: true
"""
    config = load_text(text, "every.yaml", PROBES)
    again = pickle.loads(pickle.dumps(config))
    assert again.targets == config.targets
    every, from_env = (t.options for t in again.targets)
    assert every.proxy.proxies.https.label == "proxy.internal:3128"
    assert every.oauth2.scopes == ("a", "b")
    assert every.body_cel is not None and every.body_cel.holds({"checks": [{"up": True}]}, 1, "body_cel")
    assert every.body_data == (TLS_DATA / "client.crt").read_bytes() and every.tls_resume
    assert from_env.proxy.shown == {"from_environment": True, "HTTPS_PROXY": "http://proxy.internal:3128",
                                    "no_proxy": []}
    shown = json.dumps([t.options.public() for t in again.targets])
    assert "opt-secret-value" not in shown and "testdata-only" not in shown
    assert "REDACTED (env:OPT_SECRET)" in shown and '"endpoint_params": {"audience": "api", ' \
        '"client_assertion_type": "REDACTED"}' in shown
    assert sorted(again.targets[1].secrets()) == ["opt-secret-value"]


def test_the_http2_header_block_has_the_pseudo_headers_first_and_no_connection_fields() -> None:
    from urllib.parse import urlsplit

    from otel_health.probes._http2 import h2_headers
    from otel_health.probes._messages import Hop

    headers = (("User-Agent", "otel-health"), ("Connection", "keep-alive"), ("Transfer-Encoding", "chunked"),
               ("X-Team", "core"), ("Upgrade", "h2c"), ("Keep-Alive", "1"))
    block = h2_headers(Hop(urlsplit("https://api.example:8443/v1/health?full=1"), "POST", "api.example", 8443,
                           headers, b"{}", read_body=True))
    assert block[:4] == [(":method", "POST"), (":scheme", "https"), (":authority", "api.example:8443"),
                         (":path", "/v1/health?full=1")]
    names = [name for name, _ in block]
    assert names == [":method", ":scheme", ":authority", ":path", "accept", "accept-encoding", "user-agent",
                     "x-team", "content-type", "content-length"]
    assert dict(block)["content-length"] == "2"
    configured_host = h2_headers(Hop(urlsplit("http://10.0.0.5/"), "GET", "10.0.0.5", 80, (), None,
                                     read_body=False, host_header="api.internal"))
    assert configured_host[2] == (":authority", "api.internal") and "accept-encoding" not in dict(configured_host)
