"""HTTP(S) probe: one request on a fresh connection, the whole answer read and timed,
status, TLS, header and body assertions.

Options are read here (``HttpOptions``) and turned once per configuration into the
:class:`~._http1.Request` the client sends; the client (``_http1.py``: llhttp framing, our
connect, proxies, TLS, redirects and caps) does the exchange, and this module draws the HTTP
client span around it by the OpenTelemetry semantic conventions. An OAuth2 token comes from
the probe's :class:`~._oauth2.Tokens`, shared by the targets with the same settings.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import ipaddress
import itertools
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit

from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from .._redact import REDACTED, redact_url, scrub
from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, Probe, ProbeSettings
from ._http1 import SECRET_HEADERS, Http1Client, Request, Response, Timings, ascii_host
from ._match import Pattern, PatternError, judged
from ._oauth2 import OAuth2Options, Tokens
from ._proxy import NoProxy, Proxies, Proxy, ProxyURL, basic_authorization, environment_proxies, parse_proxy_url
from ._tls import TLS_VERSIONS, ClientCertificate, certificate_problem, client_context, not_after_or_none

__all__ = ["HttpOptions", "HttpProbe", "StatusRange"]

# Header names that carry credentials (lower case, split at "-" and "_"): one of these
# words, or one of these pairs in a row. Such headers take references only, are redacted
# everywhere and never go to another origin. The README lists the same rule.
_CREDENTIAL_WORDS = frozenset({"authorization", "auth", "cookie", "token", "secret", "password", "passwd",
                               "credential", "credentials", "signature", "session", "jwt", "apikey"})
_CREDENTIAL_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key")})
# Set by the probe for every request; configuring them would break the exchange.
_PROBE_HEADERS = frozenset({"connection", "content-length", "transfer-encoding", "proxy-authorization"})
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_STATUS_RE = re.compile(r"^\s*([1-5]\d\d)\s*(?:-\s*([1-5]\d\d)\s*)?$")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_IP_PROTOCOLS = ("auto", "ip4", "ip6")
_HTTP_VERSIONS = ("HTTP/1.0", "HTTP/1.1", "HTTP/2.0")


def credential_header(name: str) -> bool:
    """Whether a header name says it carries a credential (X-Vault-Token, Private-Token,
    X-Api-Key, Cookie, ...)."""
    words = re.split(r"[-_]", name.lower())
    return any(w in _CREDENTIAL_WORDS for w in words) or any(p in _CREDENTIAL_PAIRS for p in itertools.pairwise(words))


@dataclass(frozen=True, slots=True)
class StatusRange:
    low: int
    high: int

    def __contains__(self, code: object) -> bool:
        return isinstance(code, int) and self.low <= code <= self.high

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True, slots=True)
class HeaderAssertion:
    """``fail_if_header_matches`` (``must_match`` False) or ``fail_if_header_not_matches``."""

    header: str  # lower case
    regexp: Pattern
    must_match: bool
    allow_missing: bool = False

    @property
    def option(self) -> str:
        return "fail_if_header_not_matches" if self.must_match else "fail_if_header_matches"


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Where the proxy settings came from, for ``/api/v1/targets``, and its secrets."""

    proxies: Proxies
    shown: dict[str, Any]
    secrets: tuple[Secret, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class HttpOptions:
    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str | Secret], ...] = ()  # Host aside: one per name, as configured
    host: str | None = None  # a configured Host header, its name in ASCII
    expect_status: tuple[StatusRange, ...] = (StatusRange(200, 399),)
    body: str | None = None
    body_contains: str | None = None
    body_regex: Pattern | None = None
    json_equals: tuple[tuple[str, Any], ...] = ()
    version_field: str | None = None
    read_body: bool = True
    follow_redirects: bool = True
    tls_verify: bool = True
    ca_file: Path | None = None
    basic_auth_user: str | None = None
    basic_auth_password: Secret | None = None
    bearer_token: Secret | None = None
    traceparent: bool = True
    tls_min_days_left: float | None = None
    ip_protocol: str = "auto"
    source_ip: str | None = None
    body_not_regex: Pattern | None = None
    header_assertions: tuple[HeaderAssertion, ...] = ()
    valid_http_versions: tuple[str, ...] = ()  # empty: any
    proxy: ProxySettings | None = None
    client_cert: ClientCertificate | None = None
    key_password: Secret | None = None
    tls_min_version: str | None = None
    tls_max_version: str | None = None
    server_name: str | None = None
    fail_if_ssl: bool = False
    fail_if_not_ssl: bool = False
    oauth2: OAuth2Options | None = None
    http2: str = "off"  # "off", "alpn" (h2 when TLS agrees), "prior_knowledge" (h2 from the first byte)

    @classmethod
    def parse(cls, f: Fields) -> HttpOptions | None:
        url = _parse_url(f)
        headers, host = _parse_headers(f)
        user, password, bearer = _parse_auth(f, headers)
        body_regex = _parse_regex(f, "body_regex")
        ip_protocol, source_ip = _parse_addressing(f)
        oauth2 = _parse_oauth2(f, headers, user is not None or bearer is not None)
        client_cert, key_password = _parse_client_cert(f)
        tls_min, tls_max = _parse_tls_versions(f)
        options = cls(
            url=url or "",
            method=f.text("method", "GET", choices=_METHODS),
            headers=headers,
            host=host,
            expect_status=_parse_status(f),
            body=f.text("body"),
            body_contains=f.text("body_contains"),
            body_regex=body_regex,
            json_equals=tuple((str(k), v) for k, v in f.mapping("json_equals").items()),
            version_field=f.text("version_field"),
            read_body=f.flag("read_body", True),
            follow_redirects=f.flag("follow_redirects", True),
            tls_verify=f.flag("tls_verify", True),
            ca_file=f.path("ca_file"),
            basic_auth_user=user,
            basic_auth_password=password,
            bearer_token=bearer,
            traceparent=f.flag("traceparent", True),
            tls_min_days_left=_min_days(f, url),
            ip_protocol=ip_protocol,
            source_ip=source_ip,
            body_not_regex=_parse_regex(f, "body_not_regex"),
            header_assertions=_parse_header_assertions(f, "fail_if_header_matches", must_match=False)
            + _parse_header_assertions(f, "fail_if_header_not_matches", must_match=True),
            valid_http_versions=_parse_versions(f),
            proxy=_parse_proxy(f, os.environ),
            client_cert=client_cert,
            key_password=key_password,
            tls_min_version=tls_min,
            tls_max_version=tls_max,
            server_name=_parse_server_name(f),
            fail_if_ssl=f.flag("fail_if_ssl", False),
            fail_if_not_ssl=f.flag("fail_if_not_ssl", False),
            oauth2=oauth2,
            http2=_parse_http2(f, url),
        )
        if options.http2 == "prior_knowledge" and options.proxy is not None:
            f.problem("http2_prior_knowledge", "cannot go through a forward proxy (it speaks HTTP/1.1 to the "
                                               "proxy); use an https:// URL with 'http2: true', or no proxy")
        if not options.read_body and options.asserts_on_body:
            f.problem("read_body", "is false, but a body assertion needs the body; remove one of them")
        if options.server_name and url and not url.startswith("https://"):
            f.problem("server_name", "only applies to https:// URLs (it stays with the URL's origin); remove it")
        if options.fail_if_ssl and options.fail_if_not_ssl:
            f.problem("fail_if_ssl", "and fail_if_not_ssl are both true: no answer could pass; keep one")
        return options if url else None

    @property
    def asserts_on_body(self) -> bool:
        return bool(self.body_contains or self.body_regex or self.body_not_regex or self.json_equals
                    or self.version_field)

    def secrets(self) -> Iterator[Secret]:
        for _, value in self.headers:
            if isinstance(value, Secret):
                yield value
        if self.basic_auth_password is not None:
            yield self.basic_auth_password
        if self.bearer_token is not None:
            yield self.bearer_token
        if self.proxy is not None:
            yield from self.proxy.secrets
        if self.key_password is not None:
            yield self.key_password
        if self.oauth2 is not None:
            yield from self.oauth2.secrets()

    def where(self) -> str:
        return redact_url(self.url)

    def public(self) -> dict[str, Any]:
        headers = {k: (f"{REDACTED} ({v.source})" if isinstance(v, Secret) else v) for k, v in self.headers}
        if self.host is not None:
            headers = {"Host": self.host, **headers}
        return {
            "url": redact_url(self.url),
            "method": self.method,
            "headers": headers,
            "expect_status": [str(r) for r in self.expect_status],
            "read_body": self.read_body,
            "follow_redirects": self.follow_redirects,
            "tls_verify": self.tls_verify,
            "auth": ("basic" if self.basic_auth_user else "bearer" if self.bearer_token
                     else "oauth2" if self.oauth2 else None),
            "oauth2": self.oauth2.public() if self.oauth2 is not None else None,
            "traceparent": self.traceparent,
            "ip_protocol": self.ip_protocol,
            "source_ip": self.source_ip,
            "proxy": self.proxy.shown if self.proxy is not None else None,
            "tls": {"cert_file": str(self.client_cert.cert_file) if self.client_cert else None,
                    "key_password": (f"{REDACTED} ({self.key_password.source})" if self.key_password else None),
                    "min_version": self.tls_min_version, "max_version": self.tls_max_version,
                    "server_name": self.server_name, "fail_if_ssl": self.fail_if_ssl,
                    "fail_if_not_ssl": self.fail_if_not_ssl},
            "assertions": {
                "body_not_regex": self.body_not_regex.pattern if self.body_not_regex else None,
                "headers": [{"option": a.option, "header": a.header, "regexp": a.regexp.pattern,
                             "allow_missing": a.allow_missing} for a in self.header_assertions],
                "valid_http_versions": list(self.valid_http_versions), "http2": self.http2,
            },
        }


def _parse_url(f: Fields) -> str | None:
    url: str | None = f.text("url", required=True)
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        f.problem("url", f"is not a valid URL: {redact_url(url)!r}")
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        f.problem("url", f"must be an http:// or https:// URL with a host, got {redact_url(url)!r}")
        return None
    if parts.username is not None or parts.password is not None:
        f.problem("url", "must not hold credentials; use 'basic_auth' with 'password: ${ENV_VAR}'")
        return None
    if port == 0:
        f.problem("url", "port 0 cannot be connected to; give the server's port")
        return None
    try:
        ascii_host(parts.hostname)
    except ProbeFailure as exc:
        f.problem("url", f"{exc.detail}; fix the host name")
        return None
    return url


def _parse_headers(f: Fields) -> tuple[tuple[tuple[str, str | Secret], ...], str | None]:
    headers: list[tuple[str, str | Secret]] = []
    host: str | None = None
    seen: set[str] = set()
    for name, value in f.mapping("headers").items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            f.problem("headers", f"{str(name)[:40]!r} is not a valid header name")
            continue
        lower = name.lower()
        if lower in seen:
            f.problem("headers", f"header {name!r} is given twice (names are case-insensitive); keep one")
            continue
        seen.add(lower)
        if lower in _PROBE_HEADERS:
            f.problem("headers", f"header {name!r} is set by the probe on every request; remove it")
            continue
        reference = isinstance(value, Mapping) or (isinstance(value, str) and value.strip().startswith("${"))
        if credential_header(name) or reference:
            secret = f.secret_value(f"headers.{name}", value)
            if secret is not None and _header_value_problem(f, name, secret.reveal(), secret=True):
                headers.append((name, secret))
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            f.problem("headers", f"header {name!r} must have a string value")
            continue
        text = str(value)
        if not _header_value_problem(f, name, text, secret=False):
            continue
        if lower == "host":
            host = _host_header(f, text)
        else:
            headers.append((name, text))
    return tuple(headers), host


def _header_value_problem(f: Fields, name: str, value: str, *, secret: bool) -> bool:
    """True when ``value`` can be sent; otherwise the problem is reported (never the value
    of a secret)."""
    what = "its referenced value" if secret else "its value"
    if any(c in value for c in "\r\n\0"):
        f.problem("headers", f"header {name!r}: {what} holds a line break or NUL; remove it")
        return False
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        f.problem("headers", f"header {name!r}: {what} holds characters outside Latin-1; percent-encode them")
        return False
    return True


def _host_header(f: Fields, text: str) -> str | None:
    try:
        parts = urlsplit(f"//{text.strip()}")
        _ = parts.port
        if not parts.hostname or parts.path or parts.query or parts.username is not None:
            raise ValueError(text)
        host = ascii_host(parts.hostname)
    except (ValueError, ProbeFailure):
        f.problem("headers", f"Host {text[:60]!r} is not a host name with an optional port")
        return None
    if ":" in host:
        host = f"[{host}]"
    return host + (f":{parts.port}" if parts.port else "")


def _basic_credentials(f: Fields, name: str) -> tuple[Fields | None, str | None, Secret | None]:
    """``{username, password}`` (the password by reference), or three Nones when absent."""
    sub = f.sub(name)
    if sub is None:
        return None, None, None
    user = sub.text("username", required=True)
    password = sub.secret("password", required=True)
    sub.finish()
    return sub, user, password


def _parse_auth(f: Fields, headers: tuple[tuple[str, str | Secret], ...]) -> tuple[str | None, Secret | None,
                                                                                  Secret | None]:
    basic, user, password = _basic_credentials(f, "basic_auth")
    bearer = f.secret("bearer_token")
    if basic is not None and bearer is not None:
        f.problem("bearer_token", "give either 'basic_auth' or 'bearer_token', not both")
    if (basic is not None or bearer is not None) and any(n.lower() == "authorization" for n, _ in headers):
        f.problem("headers", "Authorization is set twice ('basic_auth' or 'bearer_token', and a header); keep one")
    return user, password, bearer


def _parse_regex(f: Fields, name: str) -> Pattern | None:
    text = f.text(name)
    return _compiled(f, name, text) if text is not None else None


def _compiled(f: Fields, name: str, pattern: str, where: str = "") -> Pattern | None:
    """``pattern`` compiled by RE2, or None with the problem reported (``where``: an item of a list)."""
    try:
        return Pattern(pattern)
    except PatternError as exc:
        f.problem(name, f"{where}{'regexp ' if where else ''}{exc}")
        return None


def _parse_addressing(f: Fields) -> tuple[str, str | None]:
    ip_protocol: str = f.text("ip_protocol", "auto", choices=_IP_PROTOCOLS)
    source_ip: str | None = f.text("source_ip")
    if source_ip is not None:
        try:
            version = ipaddress.ip_address(source_ip).version
        except ValueError:
            f.problem("source_ip", f"{source_ip[:60]!r} is not an IP address; give one of this machine's addresses")
            return ip_protocol, None
        if ip_protocol != "auto" and ip_protocol != f"ip{version}":
            f.problem("source_ip", f"is an IPv{version} address but ip_protocol is {ip_protocol}; make them agree")
    return ip_protocol, source_ip


def _parse_oauth2(f: Fields, headers: tuple[tuple[str, str | Secret], ...], other_auth: bool) -> OAuth2Options | None:
    sub = f.sub("oauth2")
    if sub is None:
        return None
    oauth2 = OAuth2Options.parse(sub)
    if other_auth:
        f.problem("oauth2", "and 'basic_auth' or 'bearer_token' both set Authorization; keep one")
    elif any(n.lower() == "authorization" for n, _ in headers):
        f.problem("headers", "Authorization is set twice ('oauth2' and a header); keep one")
    return oauth2


def _parse_client_cert(f: Fields) -> tuple[ClientCertificate | None, Secret | None]:
    cert_file, key_file = f.path("cert_file"), f.path("key_file")
    key_password = f.secret("key_password")
    if (f.has("cert_file") and cert_file is None) or (f.has("key_file") and key_file is None):
        return None, key_password  # the missing file is reported
    if cert_file is None:
        if key_file is not None or f.has("key_file"):
            f.problem("key_file", "needs cert_file, the certificate the key belongs to")
        if key_password is not None:
            f.problem("key_password", "needs cert_file and key_file")
        return None, None
    cert = ClientCertificate(cert_file, key_file, key_password.reveal() if key_password is not None else None)
    problem = certificate_problem(cert)
    if problem is not None:
        f.problem(*problem)
        return None, key_password
    return cert, key_password


def _parse_tls_versions(f: Fields) -> tuple[str | None, str | None]:
    names = tuple(TLS_VERSIONS)
    low: str | None = f.text("tls_min_version", choices=names)
    high: str | None = f.text("tls_max_version", choices=names)
    if low is not None and high is not None and names.index(low) > names.index(high):
        f.problem("tls_min_version", f"{low} is above tls_max_version {high}; no TLS version is left")
    return low, high


def _parse_server_name(f: Fields) -> str | None:
    name: str | None = f.text("server_name")
    if name is None:
        return None
    try:
        host = ascii_host(name.strip().rstrip("."))
    except ProbeFailure:
        host = ""
    if not host or any(c in host for c in " /:@[]"):
        f.problem("server_name", f"{name[:60]!r} is not a host name; give the name the certificate is for")
        return None
    return host


def _parse_http2(f: Fields, url: str | None) -> str:
    alpn, prior = f.flag("http2", False), f.flag("http2_prior_knowledge", False)
    if alpn and prior:
        f.problem("http2", "and http2_prior_knowledge are both set; keep one (prior knowledge skips ALPN)")
        return "off"
    if prior:
        return "prior_knowledge"
    if alpn and url and not url.startswith("https://"):
        f.problem("http2", "is negotiated by TLS (ALPN) and this URL is plain http://: use an https:// URL, "
                           "or 'http2_prior_knowledge: true' for a server that speaks HTTP/2 without TLS (h2c)")
        return "off"
    return "alpn" if alpn else "off"


def _parse_versions(f: Fields) -> tuple[str, ...]:
    versions: list[str] = []
    for item in f.sequence("valid_http_versions"):
        if item not in _HTTP_VERSIONS:
            f.problem("valid_http_versions", f"{str(item)[:20]!r} is not one of {', '.join(_HTTP_VERSIONS)}")
        elif item not in versions:
            versions.append(item)
    return tuple(versions)


def _parse_header_assertions(f: Fields, name: str, *, must_match: bool) -> tuple[HeaderAssertion, ...]:
    found: list[HeaderAssertion] = []
    for i, item in enumerate(f.sequence(name)):
        where = f"item {i + 1}"
        if not isinstance(item, Mapping) or not set(item) <= {"header", "regexp", "allow_missing"}:
            f.problem(name, f"{where} must be {{header: NAME, regexp: PATTERN, allow_missing: false}}")
            continue
        header, pattern, allow = item.get("header"), item.get("regexp"), item.get("allow_missing", False)
        if not isinstance(header, str) or not _HEADER_NAME.fullmatch(header):
            f.problem(name, f"{where}: 'header' must be a header name")
            continue
        if not isinstance(pattern, str):
            f.problem(name, f"{where}: 'regexp' must be a regular expression")
            continue
        if not isinstance(allow, bool):
            f.problem(name, f"{where}: 'allow_missing' must be true or false")
            continue
        compiled = _compiled(f, name, pattern, f"{where}: ")
        if compiled is None:
            continue
        found.append(HeaderAssertion(header.lower(), compiled, must_match, allow))
    return tuple(found)


def _parse_proxy(f: Fields, environ: Mapping[str, str]) -> ProxySettings | None:
    url_text: str | None = f.text("proxy_url")
    from_env = f.flag("proxy_from_environment", False)
    raw_no_proxy = f.raw("no_proxy")
    auth, user, password = _basic_credentials(f, "proxy_basic_auth")
    if isinstance(raw_no_proxy, str):
        entries = _comma_list(raw_no_proxy)
    elif isinstance(raw_no_proxy, list) and all(isinstance(e, str) for e in raw_no_proxy):
        entries = [e.strip() for e in raw_no_proxy if e.strip()]
    else:
        entries = []
        if raw_no_proxy is not None:
            f.problem("no_proxy", "must be a list of hosts, domains and CIDR blocks (or one comma-separated string)")
    if url_text is None and not from_env:
        if raw_no_proxy is not None:
            f.problem("no_proxy", "applies only with proxy_url or proxy_from_environment; remove it or add one")
        if auth is not None:
            f.problem("proxy_basic_auth", "needs proxy_url; remove it or add one")
        return None
    if url_text is not None and from_env:
        f.problem("proxy_url", "and proxy_from_environment: true both choose the proxy; keep one")
        return None
    secrets: list[Secret] = []
    if url_text is not None:
        proxy_url = _proxy_url(f, "proxy_url", url_text)
        if proxy_url is None:
            return None
        if proxy_url.user is not None:
            f.problem("proxy_url", "must not hold credentials; use 'proxy_basic_auth' with 'password: ${ENV_VAR}'")
            return None
        authorization = None
        if user is not None and password is not None:
            authorization = basic_authorization(user, password.reveal())
            secrets.append(password)
        proxy = Proxy(proxy_url.host, proxy_url.port, authorization)
        http_proxy: Proxy | None = proxy
        https_proxy: Proxy | None = proxy
        shown: dict[str, Any] = {"url": proxy_url.shown, "auth": "basic" if authorization else None}
    else:
        if auth is not None:
            f.problem("proxy_basic_auth", "does not apply with proxy_from_environment: the variables' URLs "
                                          "carry the proxy credentials")
        http_var, https_var, no_var = environment_proxies(environ)
        made: list[Proxy | None] = []
        shown = {"from_environment": True}
        for var in (http_var, https_var):
            if var is None:
                made.append(None)
                continue
            proxy_url = _proxy_url(f, "proxy_from_environment", var[1], variable=var[0])
            if proxy_url is None:
                return None
            authorization = None
            if proxy_url.user is not None:
                secret = Secret(proxy_url.password or "", f"env:{var[0]}")
                authorization = basic_authorization(proxy_url.user, secret.reveal())
                secrets.append(secret)
            made.append(Proxy(proxy_url.host, proxy_url.port, authorization))
            shown[var[0]] = proxy_url.shown
        http_proxy, https_proxy = made
        if no_var is not None:
            entries = _comma_list(no_var[1]) + entries
    try:
        no_proxy = NoProxy.parse(entries)
    except ValueError as exc:
        f.problem("no_proxy", f"{exc}; fix the entry")
        return None
    shown["no_proxy"] = entries
    return ProxySettings(Proxies(http_proxy, https_proxy, no_proxy), shown, tuple(secrets))


def _comma_list(text: str) -> list[str]:
    return [e.strip() for e in text.split(",") if e.strip()]


def _proxy_url(f: Fields, name: str, text: str, *, variable: str | None = None) -> ProxyURL | None:
    what = f"the variable {variable}" if variable else "it"
    try:
        proxy_url = parse_proxy_url(text)
        proxy_url = dataclasses.replace(proxy_url, host=ascii_host(proxy_url.host))
    except ValueError as exc:
        f.problem(name, f"{what} {exc}" if variable else str(exc))
        return None
    except ProbeFailure as exc:
        f.problem(name, f"{what}: {exc.detail}; fix the host name")
        return None
    return proxy_url


def _min_days(f: Fields, url: str | None) -> float | None:
    days = f.whole("tls_min_days_left", 0, minimum=0, maximum=3650)
    if f.has("tls_min_days_left") and url and not url.startswith("https://"):
        f.problem("tls_min_days_left", "only applies to https:// URLs; remove it or use https")
    return float(days) if days else None


def _parse_status(f: Fields) -> tuple[StatusRange, ...]:
    raw = f.raw("expect_status")
    if raw is None:
        return (StatusRange(200, 399),)
    items = raw if isinstance(raw, list) else [raw]
    ranges: list[StatusRange] = []
    for item in items:
        match = _STATUS_RE.fullmatch(str(item)) if isinstance(item, (int, str)) and not isinstance(item, bool) else None
        if match is None:
            f.problem("expect_status", f"{str(item)[:40]!r} is not a status code or range; "
                                       "use codes and ranges such as [200, '300-399']")
            continue
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if high < low:
            f.problem("expect_status", f"range {low}-{high} is empty; write the lower code first")
            continue
        ranges.append(StatusRange(low, high))
    return tuple(ranges) or (StatusRange(200, 399),)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What a target's requests share, worked out once per configuration."""

    options: HttpOptions
    attributes: dict[str, str | int]
    request: Request = field(repr=False)  # credentials revealed: never printed
    traceparent: bool  # drawn from the client span (not when a traceparent header is configured)


class HttpProbe(Probe):
    kind = "http"
    component_type = "http"
    check_name = "responseTime"
    options_type = HttpOptions
    schemes = ("http", "https")

    @classmethod
    def options_from_url(cls, url: str) -> HttpOptions:
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"{redact_url(url)}: no host in the URL")
        user, password = parts.username, parts.password
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port:
            netloc += f":{parts.port}"
        clean = parts._replace(netloc=netloc).geturl()
        secret = Secret(unquote(password), "url") if password is not None else None
        return HttpOptions(url=clean, basic_auth_user=unquote(user) if user is not None and secret else None,
                           basic_auth_password=secret)

    def __init__(self, settings: ProbeSettings) -> None:
        super().__init__(settings)
        self._http: Http1Client | None = None
        self._tokens: Tokens | None = None
        self._prepared: dict[tuple[str, str], _Prepared] = {}
        self._expiry: dict[bytes, float | None] = {}

    def _client(self) -> Http1Client:
        if self._http is None:
            self._http = Http1Client()
        return self._http

    def _prepare(self, target: Target) -> _Prepared:
        o: HttpOptions = target.options
        prepared = self._prepared.get(target.key)
        if prepared is not None and prepared.options is o:
            return prepared
        parts = urlsplit(o.url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            port = 0
        attributes: dict[str, str | int] = {
            "http.request.method": o.method,
            "url.full": redact_url(o.url),
            "server.address": parts.hostname or "",
            "server.port": port,
            "user_agent.original": self.settings.user_agent,
            "user_agent.synthetic.type": "test",
        }
        # One value per name: what is configured replaces what the probe would derive.
        headers: dict[str, tuple[str, str]] = {"user-agent": ("User-Agent", self.settings.user_agent)}
        if o.basic_auth_user is not None and o.basic_auth_password is not None:
            token = f"{o.basic_auth_user}:{o.basic_auth_password.reveal()}".encode()
            headers["authorization"] = ("Authorization", "Basic " + base64.b64encode(token).decode("ascii"))
        elif o.bearer_token is not None:
            headers["authorization"] = ("Authorization", f"Bearer {o.bearer_token.reveal()}")
        for name, value in o.headers:
            headers[name.lower()] = (name, value.reveal() if isinstance(value, Secret) else value)
        private = SECRET_HEADERS | {k.lower() for k, v in o.headers if isinstance(v, Secret) or credential_header(k)}
        server_name = o.server_name or (urlsplit(f"//{o.host}").hostname if o.host else None)
        request = Request(
            url=o.url, method=o.method, headers=tuple(headers.values()),
            body=o.body.encode() if o.body is not None else None,
            context=functools.partial(client_context, verify=o.tls_verify, ca_file=o.ca_file,
                                      client_cert=o.client_cert, min_version=o.tls_min_version,
                                      max_version=o.tls_max_version,
                                      alpn=("h2", "http/1.1") if o.http2 != "off" else ()),
            follow_redirects=o.follow_redirects, read_body=o.read_body, max_body=self.settings.max_body_bytes,
            private=private, host=o.host, server_name=server_name, ip_protocol=o.ip_protocol,
            source_ip=o.source_ip, proxies=o.proxy.proxies if o.proxy is not None else None, http2=o.http2)
        prepared = _Prepared(o, attributes, request, o.traceparent and "traceparent" not in headers)
        self._prepared[target.key] = prepared
        return prepared

    async def retain(self, live: set[tuple[str, str]]) -> None:
        for key in [k for k in self._prepared if k not in live]:
            del self._prepared[key]
        if self._tokens is not None:
            self._tokens.retain({(p.options.oauth2.key(), p.request.proxies) for p in self._prepared.values()
                                 if p.options.oauth2 is not None})

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _check(self, target: Target, attempt: Attempt) -> None:
        await self.checked(target, attempt)

    async def checked(self, target: Target, attempt: Attempt, hidden: Sequence[str] = ()) -> Response:
        """One check of ``target`` (an HTTP target, or a suite's step), its answer returned once
        every assertion has passed. ``hidden``: values (a suite's) kept out of the span."""
        o: HttpOptions = target.options
        p = self._prepare(target)
        if hidden:
            p = dataclasses.replace(p, attributes={k: scrub(v, hidden) if isinstance(v, str) else v
                                                   for k, v in p.attributes.items()})
        token = None
        oauth2 = o.oauth2
        if oauth2 is not None:
            token = await self._token(oauth2, p, target, attempt)
        response = await self._exchange(p, attempt, token)
        if oauth2 is not None and token is not None and response.status == 401:
            # The provider may have revoked it before its end: one fresh token, one more try.
            # The refused exchange counts as time spent on authentication.
            attempt.phases = {"auth": sum(attempt.phases.values())}
            token = await self._token(oauth2, p, target, attempt, refused=token)
            response = await self._exchange(p, attempt, token)
        code = attempt.status_code = response.status
        if response.peer_cert is not None:
            attempt.tls_expiry = self._not_after(response.peer_cert)
        if o.tls_min_days_left is not None and attempt.tls_expiry is not None:
            days = (attempt.tls_expiry - self.settings.clock()) / 86400
            if days < o.tls_min_days_left:
                raise ProbeFailure(ErrorType.TLS, f"certificate expires in {days:.1f} days, "
                                                  f"fewer than the {o.tls_min_days_left:g} required")
        if not any(code in r for r in o.expect_status):
            expected = ", ".join(str(r) for r in o.expect_status)
            raise ProbeFailure(ErrorType.HTTP_STATUS, f"status {code}, expected {expected}")
        _assert_head(response, o)
        if o.asserts_on_body:
            cap = self.settings.max_body_bytes
            await judged(len(response.body), lambda: _assert_body(response, o, attempt, cap))
        return response

    async def _token(self, oauth2: OAuth2Options, p: _Prepared, target: Target, attempt: Attempt, *,
                     refused: str | None = None) -> str:
        if self._tokens is None:
            self._tokens = Tokens(self._client(), self.settings.tracer, self.settings.user_agent)
        began = time.perf_counter()
        try:
            return await self._tokens.get(oauth2, p.request.proxies, target.timeout, refused=refused)
        finally:
            attempt.phases["auth"] = attempt.phases.get("auth", 0.0) + time.perf_counter() - began

    async def _exchange(self, p: _Prepared, attempt: Attempt, token: str | None) -> Response:
        request = p.request
        if token is not None:
            request = dataclasses.replace(request, headers=(*request.headers, ("Authorization", f"Bearer {token}")))
        # The client span need not be current: nothing below draws spans, and the
        # traceparent is written from it directly (cheaper than making it current).
        span = self.settings.tracer.start_span(request.method, kind=SpanKind.CLIENT, attributes=p.attributes,
                                               record_exception=False, set_status_on_exception=False)
        try:
            extra: tuple[tuple[str, str], ...] = ()
            if p.traceparent:
                carrier: dict[str, str] = {}
                propagate.inject(carrier, context=set_span_in_context(span))
                extra = tuple(carrier.items())
            timings = Timings()
            try:
                response = await self._client().fetch(request, timings, extra)
            except Exception as exc:
                error_type, _ = self._classified(exc)
                span.set_attribute("error.type", str(error_type))
                span.set_status(Status(StatusCode.ERROR))
                raise
            finally:
                attempt.phases.update(timings.phases())
            code = response.status
            span.set_attribute("http.response.status_code", code)
            span.set_attribute("network.protocol.version", "2" if response.version == "2.0" else response.version)
            if code >= 400:
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", str(code))
        finally:
            span.end()
        return response

    def _not_after(self, der: bytes) -> float | None:
        if der not in self._expiry:
            if len(self._expiry) >= 1024:
                self._expiry.clear()
            self._expiry[der] = not_after_or_none(der)
        return self._expiry[der]


def _assert_head(response: Response, o: HttpOptions) -> None:
    """The TLS policy, the HTTP version and the header assertions, each failure naming its option."""
    if o.fail_if_ssl and response.tls:
        raise ProbeFailure(ErrorType.ASSERTION, "fail_if_ssl: the answer came over TLS")
    if o.fail_if_not_ssl and not response.tls:
        raise ProbeFailure(ErrorType.ASSERTION, "fail_if_not_ssl: the answer came over plain HTTP"
                                                + (" (a redirect left https)" if response.downgraded else ""))
    if o.fail_if_not_ssl and response.downgraded:
        raise ProbeFailure(ErrorType.ASSERTION, "fail_if_not_ssl: a redirect on the way went to plain HTTP")
    if o.valid_http_versions and f"HTTP/{response.version}" not in o.valid_http_versions:
        raise ProbeFailure(ErrorType.ASSERTION, f"valid_http_versions: the answer is HTTP/{response.version}, "
                                                f"allowed are {', '.join(o.valid_http_versions)}")
    for a in o.header_assertions:
        values = response.values(a.header)
        if not values:
            if a.allow_missing:
                continue
            raise ProbeFailure(ErrorType.ASSERTION, f"{a.option}: the answer has no {a.header} header")
        matched = next((v for v in values if a.regexp.found(v)), None)
        pattern = a.regexp.pattern[:80]
        if a.must_match and matched is None:
            raise ProbeFailure(ErrorType.ASSERTION, f"{a.option}: {a.header} {_header_shown(a.header, values[0])} "
                                                    f"does not match /{pattern}/")
        if not a.must_match and matched is not None:
            raise ProbeFailure(ErrorType.ASSERTION, f"{a.option}: {a.header} {_header_shown(a.header, matched)} "
                                                    f"matches /{pattern}/")


def _header_shown(name: str, value: str) -> str:
    # A cookie or token the target sets is never repeated in a detail.
    return "(value not shown)" if credential_header(name) else repr(value[:80])


def _assert_body(response: Response, o: HttpOptions, attempt: Attempt, cap: int) -> None:
    # A body cut at the cap says so: the text looked for may lie past it.
    cut = f" (the body was cut at max_body_bytes, {cap} bytes)" if response.truncated else ""
    body = response.body
    if o.body_regex is not None and not o.body_regex.found(body):
        raise ProbeFailure(ErrorType.ASSERTION, f"body does not match /{o.body_regex.pattern[:80]}/{cut}")
    if o.body_not_regex is not None and o.body_not_regex.found(body):
        raise ProbeFailure(ErrorType.ASSERTION, f"body_not_regex: the body matches /{o.body_not_regex.pattern[:80]}/")
    if o.body_contains is None and not (o.json_equals or o.version_field):
        return
    text = body.decode("utf-8", errors="replace")
    if o.body_contains is not None and o.body_contains not in text:
        raise ProbeFailure(ErrorType.ASSERTION, f"body does not contain {o.body_contains[:80]!r}{cut}")
    if not (o.json_equals or o.version_field):
        return
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        if o.json_equals:
            why = "nested too deeply to read" if isinstance(exc, RecursionError) else "not valid JSON"
            raise ProbeFailure(ErrorType.ASSERTION, f"body is {why}{cut}") from None
        return
    if o.version_field:
        found = _json_path(document, o.version_field)
        if isinstance(found, (str, int, float)) and not isinstance(found, bool):
            attempt.version = str(found)  # bounded where it enters the result
    for path, expected in o.json_equals:
        actual = _json_path(document, path)
        if actual is _ABSENT:
            raise ProbeFailure(ErrorType.ASSERTION, f"JSON field {path!r} is missing")
        if actual != expected:
            raise ProbeFailure(ErrorType.ASSERTION,
                               f"JSON field {path!r} is {_short_json(actual)}, expected {_short_json(expected)}")


_ABSENT = SimpleNamespace()


def _json_path(document: Any, path: str) -> Any:
    node = document
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _ABSENT
    return node


def _short_json(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."

