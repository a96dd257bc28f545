"""HTTP(S) probe: one request, a fresh connection, status and body assertions.

It rides on aiohttp's client (the README's design section has the measurements behind
that choice) and draws its own HTTP client span by the OpenTelemetry semantic
conventions, so a check costs what a health check must cost and little more.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._redact import redact_url
from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, Probe, ProbeSettings, classify_os_error
from ._dns import OwnPoolResolver
from ._tls import PEER_CERT, RecordingSSLObject, not_after_or_none

__all__ = ["HttpOptions", "HttpProbe", "StatusRange"]

_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token", "api-key"}
)
_STATUS_RE = re.compile(r"^\s*([1-5]\d\d)\s*(?:-\s*([1-5]\d\d)\s*)?$")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


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
    headers: tuple[tuple[str, str | Secret], ...] = ()
    expect_status: tuple[StatusRange, ...] = (StatusRange(200, 399),)
    body: str | None = None
    body_contains: str | None = None
    body_regex: re.Pattern[str] | None = None
    json_equals: tuple[tuple[str, Any], ...] = ()
    version_field: str | None = None
    follow_redirects: bool = True
    tls_verify: bool = True
    ca_file: Path | None = None
    basic_auth_user: str | None = None
    basic_auth_password: Secret | None = None
    bearer_token: Secret | None = None
    traceparent: bool = True
    tls_min_days_left: float | None = None

    @classmethod
    def parse(cls, f: Fields) -> HttpOptions | None:
        url = f.text("url", required=True)
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                f.problem("url", f"must be an http:// or https:// URL with a host, got {redact_url(url)!r}")
                url = None
            elif parts.username is not None or parts.password is not None:
                f.problem("url", "must not hold credentials; use 'basic_auth' with 'password: ${ENV_VAR}'")
                url = None
        method = f.text("method", "GET", choices=_METHODS)
        headers: list[tuple[str, str | Secret]] = []
        for name, value in f.mapping("headers").items():
            if not isinstance(name, str) or not re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", name):
                f.problem("headers", f"{str(name)[:40]!r} is not a valid header name")
                continue
            if name.lower() in _CREDENTIAL_HEADERS or (isinstance(value, str) and value.strip().startswith("${")):
                secret = f.resolve_secret(f"headers.{name}", value)
                if secret is not None:
                    headers.append((name, secret))
            elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
                headers.append((name, str(value)))
            else:
                f.problem("headers", f"header {name!r} must have a string value")
        expect = _parse_status(f)
        body_regex_text = f.text("body_regex")
        body_regex = None
        if body_regex_text is not None:
            try:
                body_regex = re.compile(body_regex_text)
            except re.error as exc:
                f.problem("body_regex", f"is not a valid regular expression ({exc.msg}); fix the pattern")
        json_equals = tuple((str(k), v) for k, v in f.mapping("json_equals").items())
        basic = f.sub("basic_auth")
        user, password = None, None
        if basic is not None:
            sub = basic
            user = sub.text("username", required=True)
            password = sub.secret("password", required=True)
            sub.finish()
        bearer = f.secret("bearer_token")
        if basic is not None and bearer is not None:
            f.problem("bearer_token", "give either 'basic_auth' or 'bearer_token', not both")
        options = cls(
            url=url or "",
            method=method,
            headers=tuple(headers),
            expect_status=expect,
            body=f.text("body"),
            body_contains=f.text("body_contains"),
            body_regex=body_regex,
            json_equals=json_equals,
            version_field=f.text("version_field"),
            follow_redirects=f.flag("follow_redirects", True),
            tls_verify=f.flag("tls_verify", True),
            ca_file=f.path("ca_file"),
            basic_auth_user=user,
            basic_auth_password=password,
            bearer_token=bearer,
            traceparent=f.flag("traceparent", True),
            tls_min_days_left=_min_days(f, url),
        )
        return options if url else None

    def secrets(self) -> Iterator[Secret]:
        for _, value in self.headers:
            if isinstance(value, Secret):
                yield value
        if self.basic_auth_password is not None:
            yield self.basic_auth_password
        if self.bearer_token is not None:
            yield self.bearer_token

    def public(self) -> dict[str, Any]:
        return {
            "url": redact_url(self.url),
            "method": self.method,
            "headers": {k: (v.source if isinstance(v, Secret) else v) for k, v in self.headers},
            "expect_status": [str(r) for r in self.expect_status],
            "follow_redirects": self.follow_redirects,
            "tls_verify": self.tls_verify,
            "auth": "basic" if self.basic_auth_user else ("bearer" if self.bearer_token else None),
            "traceparent": self.traceparent,
        }

    @property
    def reads_body(self) -> bool:
        return bool(self.body_contains or self.body_regex or self.json_equals or self.version_field)


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
        match = _STATUS_RE.match(str(item)) if isinstance(item, (int, str)) and not isinstance(item, bool) else None
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


class _Phases:
    """aiohttp trace hooks that time DNS, connect (TCP and TLS) and the request."""

    @staticmethod
    def config() -> aiohttp.TraceConfig:
        tc = aiohttp.TraceConfig(trace_config_ctx_factory=_passthrough)  # type: ignore[arg-type]
        tc.on_dns_resolvehost_start.append(_mark("dns_start"))
        tc.on_dns_resolvehost_end.append(_mark("dns_end"))
        tc.on_connection_create_start.append(_mark("connect_start"))
        tc.on_connection_create_end.append(_mark("connect_end"))
        tc.on_request_start.append(_mark("request_start"))
        tc.on_request_end.append(_mark("headers"))
        return tc


def _passthrough(trace_request_ctx: Any = None) -> Any:
    # Hooks receive the request's own marks dict as their context.
    return trace_request_ctx


def _mark(name: str) -> Any:
    async def hook(session: Any, marks: Any, params: Any) -> None:
        if isinstance(marks, dict):
            marks[name] = time.perf_counter()

    return hook


class HttpProbe(Probe):
    kind = "http"
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
        self._session: aiohttp.ClientSession | None = None
        self._resolver: OwnPoolResolver | None = None
        self._ssl: dict[tuple[bool, str | None], ssl.SSLContext] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # force_close: every check opens its own connection, as a health check must.
            self._resolver = self._resolver or OwnPoolResolver()
            connector = aiohttp.TCPConnector(limit=0, force_close=True, ttl_dns_cache=10, resolver=self._resolver)
            self._session = aiohttp.ClientSession(
                connector=connector,
                trace_configs=[_Phases.config()],
                auto_decompress=True,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    def _ssl_context(self, options: HttpOptions) -> ssl.SSLContext | bool:
        if not options.url.startswith("https"):
            return True
        key = (options.tls_verify, str(options.ca_file) if options.ca_file else None)
        context = self._ssl.get(key)
        if context is None:
            context = ssl.create_default_context(cafile=key[1])
            context.sslobject_class = RecordingSSLObject
            if not options.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._ssl[key] = context
        return context

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    async def _check(self, target: Target, attempt: Attempt) -> None:
        o: HttpOptions = target.options
        parts = urlsplit(o.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        attributes: dict[str, str | int] = {
            "http.request.method": o.method,
            "url.full": redact_url(o.url),
            "server.address": parts.hostname or "",
            "server.port": port,
            "user_agent.original": self.settings.user_agent,
            "user_agent.synthetic.type": "test",
        }
        with self.settings.tracer.start_as_current_span(o.method, kind=SpanKind.CLIENT, attributes=attributes,
                                          record_exception=False, set_status_on_exception=False) as span:
            headers = {"User-Agent": self.settings.user_agent}
            for name, value in o.headers:
                headers[name] = value.reveal() if isinstance(value, Secret) else value
            if o.basic_auth_user is not None and o.basic_auth_password is not None:
                token = f"{o.basic_auth_user}:{o.basic_auth_password.reveal()}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
            elif o.bearer_token is not None:
                headers["Authorization"] = f"Bearer {o.bearer_token.reveal()}"
            if o.traceparent:
                propagate.inject(headers)
            marks: dict[str, float] = {}
            peer: dict[str, bytes] = {}
            cert_token = PEER_CERT.set(peer)
            try:
                async with self._client().request(
                    o.method, o.url, headers=headers, data=o.body, allow_redirects=o.follow_redirects,
                    max_redirects=10, ssl=self._ssl_context(o), trace_request_ctx=marks,
                ) as response:
                    attempt.status_code = response.status
                    if "der" in peer:
                        attempt.tls_expiry = not_after_or_none(peer["der"])
                    span.set_attribute("http.response.status_code", response.status)
                    v = response.version
                    if v is not None:
                        version = f"{v.major}.{v.minor}" if v.minor else str(v.major)
                        span.set_attribute("network.protocol.version", version)
                    body_start = time.perf_counter()
                    body = await self._read(response, o) if o.reads_body else b""
                    if not o.reads_body:
                        response.release()
                    marks["body_end"] = time.perf_counter() if o.reads_body else body_start
            except Exception as exc:
                error_type, _ = self._classify(exc)
                span.set_attribute("error.type", str(error_type))
                span.set_status(Status(StatusCode.ERROR))
                raise
            finally:
                PEER_CERT.reset(cert_token)
                attempt.phases.update(_phase_durations(marks))
            code = attempt.status_code
            if code is not None and code >= 400:
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", str(code))
        if o.tls_min_days_left is not None and attempt.tls_expiry is not None:
            days = (attempt.tls_expiry - time.time()) / 86400
            if days < o.tls_min_days_left:
                raise ProbeFailure(ErrorType.TLS, f"certificate expires in {days:.1f} days, "
                                                  f"fewer than the {o.tls_min_days_left:g} required")
        if not any(code in r for r in o.expect_status):
            expected = ", ".join(str(r) for r in o.expect_status)
            raise ProbeFailure(ErrorType.HTTP_STATUS, f"status {code}, expected {expected}")
        if o.reads_body:
            _assert_body(body, o, attempt)

    async def _read(self, response: aiohttp.ClientResponse, o: HttpOptions) -> bytes:
        limit = self.settings.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await response.content.read(min(65536, limit - size + 1))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                # The body is cut at the cap; assertions see only what fits.
                response.close()
                return b"".join(chunks)[:limit]
        return b"".join(chunks)

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return classify_os_error(exc.certificate_error)
        if isinstance(exc, aiohttp.ClientConnectorSSLError):
            return classify_os_error(exc.os_error)
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return ErrorType.DNS, "name resolution failed"
        if isinstance(exc, aiohttp.ClientConnectorError):
            return classify_os_error(exc.os_error)
        if isinstance(exc, aiohttp.TooManyRedirects):
            return ErrorType.PROTOCOL, "too many redirects (more than 10)"
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return ErrorType.CONNECTION_RESET, "server closed the connection without a complete response"
        if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ClientResponseError)):
            return ErrorType.PROTOCOL, f"invalid HTTP response: {type(exc).__name__}"
        if isinstance(exc, aiohttp.ClientOSError):
            return classify_os_error(exc.__cause__ or OSError(exc.errno, exc.strerror))
        if isinstance(exc, aiohttp.InvalidURL):
            return ErrorType.UNKNOWN, "invalid URL"
        return classify_os_error(exc)


def _phase_durations(marks: dict[str, float]) -> dict[str, float]:
    phases: dict[str, float] = {}
    dns = marks.get("dns_end", 0.0) - marks.get("dns_start", 0.0) if "dns_end" in marks else 0.0
    if "dns_end" in marks:
        phases["dns"] = dns
    if "connect_end" in marks and "connect_start" in marks:
        phases["connect"] = max(marks["connect_end"] - marks["connect_start"] - dns, 0.0)
    if "headers" in marks:
        start = marks.get("connect_end", marks.get("request_start", marks["headers"]))
        phases["request"] = max(marks["headers"] - start, 0.0)
    if "body_end" in marks and "headers" in marks:
        phases["body"] = max(marks["body_end"] - marks["headers"], 0.0)
    return phases


def _assert_body(body: bytes, o: HttpOptions, attempt: Attempt) -> None:
    text = body.decode("utf-8", errors="replace")
    if o.body_contains is not None and o.body_contains not in text:
        raise ProbeFailure(ErrorType.ASSERTION, f"body does not contain {o.body_contains[:80]!r}")
    if o.body_regex is not None and not o.body_regex.search(text):
        raise ProbeFailure(ErrorType.ASSERTION, f"body does not match /{o.body_regex.pattern[:80]}/")
    if not (o.json_equals or o.version_field):
        return
    try:
        document = json.loads(text)
    except ValueError:
        if o.json_equals:
            raise ProbeFailure(ErrorType.ASSERTION, "body is not valid JSON") from None
        return
    if o.version_field:
        found = _json_path(document, o.version_field)
        if isinstance(found, (str, int, float)) and not isinstance(found, bool):
            attempt.version = str(found)[:128]
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

