"""HTTP(S) probe: one request, a fresh connection, status and body assertions.

It rides on a small HTTP/1.1 client of its own (``_http1.py``; the README's design section
has the measurements behind that choice) and draws its HTTP client span by the
OpenTelemetry semantic conventions, so a check costs what a health check must cost and
little more.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit

from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from .._redact import redact_url
from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, Probe, ProbeSettings
from ._http1 import Http1Client
from ._tls import client_context, not_after_or_none

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


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What a target's requests share, worked out once per configuration."""

    options: HttpOptions
    attributes: dict[str, str | int]
    headers: tuple[tuple[str, str], ...] = field(repr=False)  # credentials revealed: never printed
    body: bytes | None
    context: Callable[[], ssl.SSLContext]
    private: frozenset[str]  # header names that stay with the configured origin


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
        headers = {"User-Agent": self.settings.user_agent}
        for name, value in o.headers:
            headers[name] = value.reveal() if isinstance(value, Secret) else value
        if o.basic_auth_user is not None and o.basic_auth_password is not None:
            token = f"{o.basic_auth_user}:{o.basic_auth_password.reveal()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
        elif o.bearer_token is not None:
            headers["Authorization"] = f"Bearer {o.bearer_token.reveal()}"
        prepared = _Prepared(o, attributes, tuple(headers.items()),
                             o.body.encode() if o.body is not None else None,
                             functools.partial(client_context, verify=o.tls_verify, ca_file=o.ca_file),
                             frozenset({"authorization", "proxy-authorization", "cookie"}
                                       | {k.lower() for k, v in o.headers
                                          if isinstance(v, Secret) or k.lower() in _CREDENTIAL_HEADERS}))
        self._prepared[target.key] = prepared
        return prepared

    async def retain(self, live: set[tuple[str, str]]) -> None:
        for key in [k for k in self._prepared if k not in live]:
            del self._prepared[key]

    async def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    async def _check(self, target: Target, attempt: Attempt) -> None:
        o: HttpOptions = target.options
        p = self._prepare(target)
        # The client span need not be current: nothing below draws spans, and the
        # traceparent is written from it directly (cheaper than making it current).
        span = self.settings.tracer.start_span(o.method, kind=SpanKind.CLIENT, attributes=p.attributes,
                                               record_exception=False, set_status_on_exception=False)
        try:
            headers = list(p.headers)
            if o.traceparent:
                carrier: dict[str, str] = {}
                propagate.inject(carrier, context=set_span_in_context(span))
                headers.extend(carrier.items())
            marks: dict[str, float] = {}
            try:
                response = await self._client().fetch(
                    o.url, o.method, headers, p.body, context=p.context, follow_redirects=o.follow_redirects,
                    read_body=o.reads_body, max_body=self.settings.max_body_bytes, marks=marks,
                    private=p.private)
            except Exception as exc:
                error_type, _ = self._classified(exc)
                span.set_attribute("error.type", str(error_type))
                span.set_status(Status(StatusCode.ERROR))
                raise
            finally:
                attempt.phases.update(_phase_durations(marks))
            code = attempt.status_code = response.status
            if response.peer_cert is not None:
                attempt.tls_expiry = self._not_after(response.peer_cert)
            span.set_attribute("http.response.status_code", code)
            span.set_attribute("network.protocol.version", response.version)
            if code >= 400:
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", str(code))
        finally:
            span.end()
        if o.tls_min_days_left is not None and attempt.tls_expiry is not None:
            days = (attempt.tls_expiry - time.time()) / 86400
            if days < o.tls_min_days_left:
                raise ProbeFailure(ErrorType.TLS, f"certificate expires in {days:.1f} days, "
                                                  f"fewer than the {o.tls_min_days_left:g} required")
        if not any(code in r for r in o.expect_status):
            expected = ", ".join(str(r) for r in o.expect_status)
            raise ProbeFailure(ErrorType.HTTP_STATUS, f"status {code}, expected {expected}")
        if o.reads_body:
            _assert_body(response.body, o, attempt)

    def _not_after(self, der: bytes) -> float | None:
        if der not in self._expiry:
            if len(self._expiry) >= 1024:
                self._expiry.clear()
            self._expiry[der] = not_after_or_none(der)
        return self._expiry[der]


def _phase_durations(marks: dict[str, float]) -> dict[str, float]:
    phases: dict[str, float] = {}
    dns = marks.get("dns_end", 0.0) - marks.get("dns_start", 0.0) if "dns_end" in marks else 0.0
    if "dns_end" in marks:
        phases["dns"] = dns
    if "connect_end" in marks and "connect_start" in marks:
        phases["connect"] = max(marks["connect_end"] - marks["connect_start"] - dns, 0.0)
    if "headers" in marks:
        start = marks.get("connect_end", marks["headers"])
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

