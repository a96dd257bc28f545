"""The HTTP kind's options: what a target of kind ``http`` (and each step of a suite) may say,
read with the config's field reader into a frozen :class:`HttpOptions`, every problem
reported at once. Credentials come by reference only; :meth:`HttpOptions.public` is what
``/api/v1/targets`` shows, credentials redacted."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._redact import REDACTED, redact_url
from ..config import Fields, Secret
from ..errors import ProbeFailure
from ._base import pair_secrets, shown_pairs
from ._cel import CelExpression
from ._credentials import basic_credentials, credential_header
from ._http_assertions import (
    HEADER_NAME,
    HeaderAssertion,
    body_file,
    header_assertions,
    http_versions,
    parse_cel,
    parse_regexes,
)
from ._match import Pattern
from ._oauth2 import OAuth2Options
from ._proxy import ProxySettings, parse_proxy_settings
from ._resolver import ascii_host
from ._revocation import parse_revocation
from ._tls import TLS_VERSIONS, ClientCertificate, certificate_problem

__all__ = ["HeaderAssertion", "HttpOptions", "StatusRange", "parse_headers", "parse_status", "parse_url"]

# Set by the probe for every request; configuring them would break the exchange.
_PROBE_HEADERS = frozenset({"connection", "content-length", "transfer-encoding", "proxy-authorization"})
_STATUS_RE = re.compile(r"^\s*([1-5]\d\d)\s*(?:-\s*([1-5]\d\d)\s*)?$")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_IP_PROTOCOLS = ("auto", "ip4", "ip6")
_CODINGS = ("gzip", "br", "deflate", "identity")


@dataclass(frozen=True, slots=True)
class StatusRange:
    low: int
    high: int

    def __contains__(self, code: object) -> bool:
        return isinstance(code, int) and self.low <= code <= self.high

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True, slots=True)
class HttpOptions:
    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str | Secret], ...] = ()  # Host aside: one per name, as configured
    host: str | None = None  # a configured Host header, its name in ASCII
    expect_status: tuple[StatusRange, ...] = (StatusRange(200, 399),)
    body: str | None = None
    body_contains: str | None = None
    body_regex: tuple[Pattern, ...] = ()  # each must match
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
    body_size_limit: int | None = None  # a body past it fails the check (blackbox_exporter's body_size_limit)
    ip_protocol: str = "auto"
    source_ip: str | None = None
    body_not_regex: tuple[Pattern, ...] = ()  # none may match
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
    http3: bool = False  # HTTP/3 over QUIC (https:// only)
    compression: str | None = None  # the coding the answer must come in (asked for by Accept-Encoding)
    body_file: Path | None = None  # the request body's file, read with the config (body_data)
    body_data: bytes | None = None
    tls_resume: bool = False  # offer the previous check's TLS session (no full handshake when resumed)
    body_cel: CelExpression | None = None  # must be true of the JSON answer
    body_not_cel: CelExpression | None = None  # must not be
    check_revocation: str = "off"  # "off", "stapled", "ocsp": the leaf's revocation status (_revocation)
    revocation_unknown: str = "warn"  # "warn", "down": what a status that cannot be learned does

    @classmethod
    def parse(cls, f: Fields) -> HttpOptions | None:
        url = _parse_url(f)
        headers, host = parse_headers(f)
        user, password, bearer = _parse_auth(f, headers)
        body_regex = parse_regexes(f, "body_regex")
        ip_protocol, source_ip = _parse_addressing(f)
        oauth2 = _parse_oauth2(f, headers, user is not None or bearer is not None)
        client_cert, key_password = _parse_client_cert(f)
        tls_min, tls_max = _parse_tls_versions(f)
        body_path, body_data = body_file(f)
        revocation, unknown = parse_revocation(f, not url or url.startswith("https://"), "use an https:// URL")
        options = cls(
            url=url or "",
            method=f.text("method", "GET", choices=_METHODS),
            headers=headers,
            host=host,
            expect_status=parse_status(f),
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
            body_size_limit=f.whole("body_size_limit", 0, minimum=0, maximum=1 << 30) or None,
            ip_protocol=ip_protocol,
            source_ip=source_ip,
            body_not_regex=parse_regexes(f, "body_not_regex"),
            header_assertions=header_assertions(f, "fail_if_header_matches", must_match=False)
            + header_assertions(f, "fail_if_header_not_matches", must_match=True),
            valid_http_versions=http_versions(f),
            proxy=parse_proxy_settings(f, os.environ),
            client_cert=client_cert,
            key_password=key_password,
            tls_min_version=tls_min,
            tls_max_version=tls_max,
            server_name=_parse_server_name(f),
            fail_if_ssl=f.flag("fail_if_ssl", False),
            fail_if_not_ssl=f.flag("fail_if_not_ssl", False),
            oauth2=oauth2,
            http2=_parse_http2(f, url),
            http3=f.flag("http3", False),
            compression=f.text("compression", None, choices=_CODINGS),
            tls_resume=f.flag("tls_resume", False),
            body_file=body_path,
            body_data=body_data,
            body_cel=parse_cel(f, "body_cel"),
            body_not_cel=parse_cel(f, "body_not_cel"),
            check_revocation=revocation,
            revocation_unknown=unknown,
        )
        if options.http2 == "prior_knowledge" and options.proxy is not None:
            f.problem("http2_prior_knowledge", "cannot go through a forward proxy (it speaks HTTP/1.1 to the "
                                               "proxy); use an https:// URL with 'http2: true', or no proxy")
        if options.http3:
            _check_http3(f, options)
        if not options.read_body and options.asserts_on_body:
            f.problem("read_body", "is false, but a body assertion needs the body; remove one of them")
        if not options.read_body and options.body_size_limit:
            f.problem("read_body", "is false, but body_size_limit needs the body; remove one of them")
        if options.body is not None and options.body_file is not None:
            f.problem("body_file", "and body are both given; keep one")
        if options.compression and any(name.lower() == "accept-encoding" for name, _ in headers):
            f.problem("compression", "asks for its coding by Accept-Encoding, which headers set too; remove the header")
        if options.compression and not options.read_body:
            f.problem("read_body", "is false, but compression needs the body; remove one of them")
        if options.tls_resume and url and not url.startswith("https://"):
            f.problem("tls_resume", "only applies to https:// URLs; remove it")
        if options.server_name and url and not url.startswith("https://"):
            f.problem("server_name", "only applies to https:// URLs (it stays with the URL's origin); remove it")
        if options.fail_if_ssl and options.fail_if_not_ssl:
            f.problem("fail_if_ssl", "and fail_if_not_ssl are both true: no answer could pass; keep one")
        return options if url else None

    @property
    def asserts_on_body(self) -> bool:
        return bool(self.body_contains or self.body_regex or self.body_not_regex or self.json_equals
                    or self.version_field or self.body_cel or self.body_not_cel)

    def secrets(self) -> Iterator[Secret]:
        yield from pair_secrets(self.headers)
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

    def domain_name(self) -> str | None:
        """The name whose registration ``domain_expiry`` watches: the Host header's, else the URL's."""
        if self.host is not None:
            return urlsplit(f"//{self.host}").hostname
        return urlsplit(self.url).hostname

    def public(self) -> dict[str, Any]:
        headers = shown_pairs(self.headers)
        if self.host is not None:
            headers = {"Host": self.host, **headers}
        return {
            "url": redact_url(self.url),
            "method": self.method,
            "headers": headers,
            "body_file": str(self.body_file) if self.body_file is not None else None,
            "compression": self.compression,
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
                    "server_name": self.server_name, "fail_if_ssl": self.fail_if_ssl, "resume": self.tls_resume,
                    "fail_if_not_ssl": self.fail_if_not_ssl, "check_revocation": self.check_revocation,
                    "revocation_unknown": self.revocation_unknown},
            "assertions": {
                "body_regex": [p.pattern for p in self.body_regex],
                "body_not_regex": [p.pattern for p in self.body_not_regex],
                "headers": [{"option": a.option, "header": a.header, "regexp": a.regexp.pattern,
                             "allow_missing": a.allow_missing} for a in self.header_assertions],
                "valid_http_versions": list(self.valid_http_versions), "http2": self.http2, "http3": self.http3,
                "body_cel": self.body_cel.source if self.body_cel else None,
                "body_not_cel": self.body_not_cel.source if self.body_not_cel else None,
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


def parse_url(f: Fields, schemes: tuple[str, ...], kinds: str) -> str | None:
    """The ``url`` field: one of ``schemes`` with a host and no credentials in it (they go in a
    header by reference), or None with the problem said (``kinds``: "an http:// or https://")."""
    url = f.text("url", required=True)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        f.problem("url", f"must be {kinds} URL with a host, got {redact_url(url)!r}")
        return None
    if parts.username is not None or parts.password is not None:
        f.problem("url", "must not hold credentials; send them in a header by reference (Authorization: ${ENV_VAR})")
        return None
    return str(url)


def parse_headers(f: Fields) -> tuple[tuple[tuple[str, str | Secret], ...], str | None]:
    """The ``headers`` field: each (name, value), a credential's value a Secret; and ``Host``."""
    headers: list[tuple[str, str | Secret]] = []
    host: str | None = None
    seen: set[str] = set()
    for name, value in f.mapping("headers").items():
        if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
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


def _parse_auth(f: Fields, headers: tuple[tuple[str, str | Secret], ...]) -> tuple[str | None, Secret | None,
                                                                                  Secret | None]:
    basic, user, password = basic_credentials(f, "basic_auth")
    bearer = f.secret("bearer_token")
    if basic is not None and bearer is not None:
        f.problem("bearer_token", "give either 'basic_auth' or 'bearer_token', not both")
    if (basic is not None or bearer is not None) and any(n.lower() == "authorization" for n, _ in headers):
        f.problem("headers", "Authorization is set twice ('basic_auth' or 'bearer_token', and a header); keep one")
    return user, password, bearer


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


def _check_http3(f: Fields, o: HttpOptions) -> None:
    """What HTTP/3 cannot be asked together with, said once each."""
    if not o.url.startswith("https://"):
        f.problem("http3", "runs over QUIC, which is TLS: use an https:// URL")
    if o.http2 != "off":
        f.problem("http3", "and http2 are both set; keep one (HTTP/3 is its own version)")
    if f.has("proxy_url"):
        f.problem("http3", "goes over UDP, which a forward proxy does not carry; remove proxy_url or http3")
    if o.client_cert is not None:
        f.problem("http3", "does not present a client certificate; remove cert_file or http3")
    if o.tls_max_version not in (None, "TLS13") or o.tls_min_version not in (None, "TLS13", "TLS12", "TLS11",
                                                                              "TLS10"):
        f.problem("http3", "is TLS 1.3 only (QUIC); remove tls_max_version or http3")


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


def _min_days(f: Fields, url: str | None) -> float | None:
    days = f.whole("tls_min_days_left", 0, minimum=0, maximum=3650)
    if f.has("tls_min_days_left") and url and not url.startswith("https://"):
        f.problem("tls_min_days_left", "only applies to https:// URLs; remove it or use https")
    return float(days) if days else None


def parse_status(f: Fields) -> tuple[StatusRange, ...]:
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
