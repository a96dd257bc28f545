"""HTTP(S) probe: one request on a fresh connection, the whole answer read and timed,
status, TLS, header and body assertions.

Options are read by ``_http_options`` (``HttpOptions``) and turned once per configuration
into the :class:`~._messages.Request` the client sends; the client (``_client``: our connect,
proxies, TLS, redirects and caps, over ``_http1`` or ``_http2``) does the exchange, and this
module draws the HTTP client span around it by the OpenTelemetry semantic conventions. An OAuth2 token comes from
the probe's :class:`~._oauth2.Tokens`, shared by the targets with the same settings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from .._redact import redact_url, scrub
from ..config import Secret, Target
from ..config.values import is_ip_address
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, ProbeSettings
from ._cel import values_in
from ._chain import TLS_INFO, ChainReport, record
from ._client import HttpClient
from ._credentials import basic_authorization, credential_header
from ._http3 import fetch as fetch_http3
from ._http_options import HttpOptions, StatusRange
from ._jsonpath import ABSENT, json_path, short_json
from ._match import judged
from ._messages import SECRET_HEADERS, Request, Response, Timings
from ._oauth2 import OAuth2Options, Tokens
from ._revocation import StapleAt, TlsProbe
from ._tls import client_context

__all__ = ["HttpOptions", "HttpProbe", "StatusRange"]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What a target's requests share, worked out once per configuration."""

    options: HttpOptions
    attributes: dict[str, str | int]
    request: Request = field(repr=False)  # credentials revealed: never printed
    traceparent: bool  # drawn from the client span (not when a traceparent header is configured)


class HttpProbe(TlsProbe):
    kind = "http"
    component_type = "http"
    check_name = "responseTime"
    options_type = HttpOptions
    schemes = ("http", "https")
    info_labels = TLS_INFO

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
        self._http: HttpClient | None = None
        self._tokens: Tokens | None = None
        self._prepared: dict[tuple[str, str], _Prepared] = {}

    def _client(self) -> HttpClient:
        if self._http is None:
            self._http = HttpClient()
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
            headers["authorization"] = ("Authorization",
                                        basic_authorization(o.basic_auth_user, o.basic_auth_password.reveal()))
        elif o.bearer_token is not None:
            headers["authorization"] = ("Authorization", f"Bearer {o.bearer_token.reveal()}")
        for name, value in o.headers:
            headers[name.lower()] = (name, value.reveal() if isinstance(value, Secret) else value)
        if o.compression is not None:
            headers["accept-encoding"] = ("Accept-Encoding", o.compression)
        private = SECRET_HEADERS | {k.lower() for k, v in o.headers if isinstance(v, Secret) or credential_header(k)}
        server_name = o.server_name or (urlsplit(f"//{o.host}").hostname if o.host else None)
        request = Request(
            url=o.url, method=o.method, headers=tuple(headers.values()),
            body=o.body.encode() if o.body is not None else o.body_data,
            context=functools.partial(client_context, verify=o.tls_verify, ca_file=o.ca_file,
                                      client_cert=o.client_cert, min_version=o.tls_min_version,
                                      max_version=o.tls_max_version,
                                      alpn=("h2", "http/1.1") if o.http2 != "off" else (), resume=o.tls_resume),
            follow_redirects=o.follow_redirects, read_body=o.read_body,
            max_body=min(self.settings.max_body_bytes, o.body_size_limit or self.settings.max_body_bytes),
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
        await super().close()

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
        chain = await record(attempt, response.peer_chain) if response.peer_chain else None
        if chain is not None and o.check_revocation != "off":
            await self._judge_revocation(p, response, chain, attempt)
        if o.tls_min_days_left is not None and chain is not None:
            days = (chain.expiry - self.settings.clock()) / 86400
            if days < o.tls_min_days_left:
                raise ProbeFailure(ErrorType.TLS, f"certificate {chain.expires_first} expires in {days:.1f} days, "
                                                  f"fewer than the {o.tls_min_days_left:g} required")
        if not any(code in r for r in o.expect_status):
            expected = ", ".join(str(r) for r in o.expect_status)
            raise ProbeFailure(ErrorType.HTTP_STATUS, f"status {code}, expected {expected}")
        _assert_head(response, o)
        if o.compression is not None:
            coding = ",".join(response.values("content-encoding")).strip().lower() or "identity"
            if coding != o.compression:
                raise ProbeFailure(ErrorType.ASSERTION, f"compression: the answer came as {coding}, "
                                                        f"{o.compression} was asked for")
        if o.body_size_limit is not None and response.truncated and o.body_size_limit <= self.settings.max_body_bytes:
            raise ProbeFailure(ErrorType.ASSERTION, f"body is over body_size_limit, {o.body_size_limit} bytes")
        if o.asserts_on_body:
            if response.undecodable is not None:
                raise ProbeFailure(ErrorType.PROTOCOL, f"{response.undecodable}: the body assertions cannot read it")
            cap = self.settings.max_body_bytes
            await judged(len(response.body), lambda: _assert_body(response, o, attempt, cap))
        return response

    async def _judge_revocation(self, p: _Prepared, response: Response, chain: ChainReport, attempt: Attempt) -> None:
        """The leaf's revocation status (check_revocation); the staple is asked of the server that
        answered last, directly (not through a proxy, not over QUIC)."""
        o = p.options
        staple_at = None
        parts = urlsplit(response.url or o.url)
        if o.proxy is None and not o.http3 and parts.hostname:
            first = response.url in ("", o.url)
            name = (p.request.server_name if first else None) or parts.hostname
            staple_at = StapleAt(parts.hostname, parts.port or 443, None if is_ip_address(name) else name)
        await self.judge_revocation(attempt, chain, o.check_revocation, o.revocation_unknown, staple_at=staple_at,
                                    proxies=p.request.proxies, attributes=p.attributes)

    @staticmethod
    async def _over_http3(request: Request, timings: Timings, extra: tuple[tuple[str, str], ...],
                          o: HttpOptions) -> Response:
        await _over_http3_load()
        return await fetch_http3(request, timings, extra, verify=o.tls_verify, ca_file=o.ca_file)

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
                if p.options.http3:
                    response = await self._over_http3(request, timings, extra, p.options)
                else:
                    response = await self._client().fetch(request, timings, extra)
            except Exception as exc:
                error_type, _ = self._classified(exc)
                span.set_attribute("error.type", str(error_type))
                span.set_status(Status(StatusCode.ERROR))
                raise
            finally:
                phases = timings.phases()
                if p.options.http3 and "tls" in phases:  # QUIC's handshake: the connection and TLS at once
                    phases["quic"] = phases.pop("tls")
                attempt.phases.update(phases)
            code = response.status
            span.set_attribute("http.response.status_code", code)
            span.set_attribute("network.protocol.version", response.version.removesuffix(".0")
                               if response.version in ("2.0", "3.0") else response.version)
            if response.tls:
                span.set_attribute("tls.resumed", response.tls_resumed)
            if code >= 400:
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", str(code))
        finally:
            span.end()
        return response


_QUIC_LOADED: list[bool] = []


async def _over_http3_load() -> None:
    if not _QUIC_LOADED:  # aioquic's import, off the loop, once, for the first HTTP/3 target only
        await asyncio.to_thread(lambda: __import__("aioquic.asyncio.client"))
        _QUIC_LOADED.append(True)


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
    for pattern in o.body_regex:
        if not pattern.found(body):
            raise ProbeFailure(ErrorType.ASSERTION, f"body does not match /{pattern.pattern[:80]}/{cut}")
    for pattern in o.body_not_regex:
        if pattern.found(body):
            raise ProbeFailure(ErrorType.ASSERTION, f"body_not_regex: the body matches /{pattern.pattern[:80]}/")
    json_wanted = bool(o.json_equals or o.version_field or o.body_cel or o.body_not_cel)
    if o.body_contains is None and not json_wanted:
        return
    text = body.decode("utf-8", errors="replace")
    if o.body_contains is not None and o.body_contains not in text:
        raise ProbeFailure(ErrorType.ASSERTION, f"body does not contain {o.body_contains[:80]!r}{cut}")
    if not json_wanted:
        return
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        if o.json_equals or o.body_cel or o.body_not_cel:
            why = "nested too deeply to read" if isinstance(exc, RecursionError) else "not valid JSON"
            raise ProbeFailure(ErrorType.ASSERTION, f"body is {why}{cut}") from None
        return
    if o.version_field:
        found = json_path(document, o.version_field)
        if isinstance(found, (str, int, float)) and not isinstance(found, bool):
            attempt.version = str(found)  # bounded where it enters the result
    for path, expected in o.json_equals:
        actual = json_path(document, path)
        if actual is ABSENT:
            raise ProbeFailure(ErrorType.ASSERTION, f"JSON field {path!r} is missing")
        if actual != expected:
            raise ProbeFailure(ErrorType.ASSERTION,
                               f"JSON field {path!r} is {short_json(actual)}, expected {short_json(expected)}")
    if o.body_cel is not None and not o.body_cel.holds(document, values_in(body), "body_cel"):
        raise ProbeFailure(ErrorType.ASSERTION, f"body_cel: {o.body_cel.source[:80]!r} is false{cut}")
    if o.body_not_cel is not None and o.body_not_cel.holds(document, values_in(body), "body_not_cel"):
        raise ProbeFailure(ErrorType.ASSERTION, f"body_not_cel: {o.body_not_cel.source[:80]!r} is true{cut}")
