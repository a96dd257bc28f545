"""OAuth2 client credentials (RFC 6749 §4.4) for HTTP checks: a token fetched once and
shared by every target with the same settings, until shortly before it expires.

:class:`Tokens` fetches on the first need, or when the cached token is close to its end, or
once after a target refused it (401). Concurrent needs wait for one fetch; the fetch runs
as a task of its own, so a check that times out while waiting does not cancel it for the
others. Its CLIENT span (``POST``, with the phases as ``tta.phase.*`` attributes) is a child
of the check that started it. The client secret and the token never enter a detail, a span
or a log: failures say what the endpoint answered, by its error code.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from .._redact import REDACTED, redact_url
from ..config import Fields, Secret
from ..errors import ErrorType, ProbeFailure
from ._base import classify_os_error, server_words
from ._client import HttpClient
from ._messages import Request, Timings
from ._proxy import Proxies
from ._tls import client_context

__all__ = ["OAuth2Options", "Tokens"]

MAX_TOKEN_ANSWER = 64 * 1024
_MARGIN = 30.0  # seconds before its end a token is fetched again (at most half its lifetime)
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: what a header can carry unchanged
_ERROR_CODE = re.compile(r"^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,80}$")  # RFC 6749 §5.2


@dataclass(frozen=True, slots=True)
class OAuth2Options:
    token_url: str
    client_id: str
    client_secret: Secret = field(repr=False)
    scopes: tuple[str, ...] = ()
    endpoint_params: tuple[tuple[str, str], ...] = ()
    ca_file: Path | None = None
    client_auth: str = "basic"  # client_secret_basic, or "body": client_secret_post

    @classmethod
    def parse(cls, f: Fields) -> OAuth2Options | None:
        token_url = f.text("token_url", required=True)
        if token_url is not None:
            try:
                parts = urlsplit(token_url)
                _ = parts.port
            except ValueError:
                parts = None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                f.problem("token_url", f"must be an http:// or https:// URL, got {redact_url(token_url)!r}")
                token_url = None
            elif parts.username is not None or parts.password is not None:
                f.problem("token_url", "must not hold credentials; use client_id and client_secret")
                token_url = None
        client_id = f.text("client_id", required=True)
        secret = f.secret("client_secret", required=True)
        raw_scopes = f.raw("scopes")
        scopes: tuple[str, ...] = ()
        if isinstance(raw_scopes, str):
            scopes = tuple(raw_scopes.split())
        elif isinstance(raw_scopes, list) and all(isinstance(s, str) and s and " " not in s for s in raw_scopes):
            scopes = tuple(raw_scopes)
        elif raw_scopes is not None:
            f.problem("scopes", "must be a list of scope names (no spaces in a name)")
        params: list[tuple[str, str]] = []
        for name, value in f.mapping("endpoint_params").items():
            if name in ("grant_type", "scope", "client_id", "client_secret"):
                f.problem("endpoint_params", f"{name!r} is set by the client; use the field of its own")
            elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
                f.problem("endpoint_params", f"{str(name)[:40]!r} must have a string value")
            else:
                params.append((str(name), str(value)))
        ca_file = f.path("ca_file")
        client_auth = f.text("client_auth", "basic", choices=("basic", "body"))
        f.finish()
        if token_url is None or client_id is None or secret is None:
            return None
        return cls(token_url, client_id, secret, scopes, tuple(params), ca_file, client_auth)

    def secrets(self) -> Iterator[Secret]:
        yield self.client_secret

    def public(self) -> dict[str, Any]:
        return {"token_url": redact_url(self.token_url), "client_id": self.client_id,
                "client_secret": f"{REDACTED} ({self.client_secret.source})", "scopes": list(self.scopes),
                "endpoint_params": {k: (REDACTED if _secretish(k) else v) for k, v in self.endpoint_params},
                "client_auth": self.client_auth}

    def key(self) -> tuple[Any, ...]:
        """What makes two targets' tokens the same one (the secret's value included, so a
        rotated secret gets a new token)."""
        return (self.token_url, self.client_id, self.client_secret.reveal(), self.scopes, self.endpoint_params,
                self.ca_file, self.client_auth)


def _secretish(name: str) -> bool:
    return bool(re.search(r"(?i)secret|password|token|key|assertion", name))


@dataclass(slots=True)
class _Token:
    value: str = field(repr=False)
    refresh_at: float  # monotonic


class Tokens:
    """Access tokens by their settings, shared by the targets that use the same ones."""

    def __init__(self, client: HttpClient, tracer: Tracer, user_agent: str) -> None:
        self._client = client
        self._tracer = tracer
        self._user_agent = user_agent
        self._tokens: dict[tuple[Any, ...], _Token] = {}
        self._pending: dict[tuple[Any, ...], asyncio.Future[_Token]] = {}

    async def get(self, o: OAuth2Options, proxies: Proxies | None, timeout: float, *,
                  refused: str | None = None) -> str:
        """A token for ``o``: the cached one unless it is near its end or is ``refused`` (a
        target just answered 401 to it), else a fresh one. Raises ProbeFailure."""
        key = (o.key(), proxies)
        token = self._tokens.get(key)
        if token is not None and token.value != refused and time.monotonic() < token.refresh_at:
            return token.value
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(self._fetch(o, proxies, timeout))
            pending.add_done_callback(functools.partial(self._settled, key))
        return (await asyncio.shield(pending)).value

    def retain(self, live: set[tuple[Any, ...]]) -> None:
        for key in [k for k in self._tokens if k not in live]:
            del self._tokens[key]

    def _settled(self, key: tuple[Any, ...], future: asyncio.Future[_Token]) -> None:
        if self._pending.get(key) is future:
            del self._pending[key]
        if future.cancelled():
            return
        if future.exception() is None:  # also marks a failure nobody waited for as seen
            self._tokens[key] = future.result()

    async def _fetch(self, o: OAuth2Options, proxies: Proxies | None, timeout: float) -> _Token:
        parts = urlsplit(o.token_url)
        where = f"OAuth2 token endpoint {parts.netloc}"
        attributes: dict[str, str | int] = {
            "http.request.method": "POST", "url.full": redact_url(o.token_url),
            "server.address": parts.hostname or "",
            "server.port": parts.port or (443 if parts.scheme == "https" else 80),
            "tta.oauth2.grant_type": "client_credentials",
        }
        form = [("grant_type", "client_credentials")]
        if o.scopes:
            form.append(("scope", " ".join(o.scopes)))
        form += list(o.endpoint_params)
        headers = [("User-Agent", self._user_agent), ("Accept", "application/json"),
                   ("Content-Type", "application/x-www-form-urlencoded")]
        secret = o.client_secret.reveal()
        if o.client_auth == "basic":
            # RFC 6749 §2.3.1: each part form-encoded before joining.
            pair = f"{quote(o.client_id, safe='')}:{quote(secret, safe='')}".encode()
            headers.append(("Authorization", "Basic " + base64.b64encode(pair).decode("ascii")))
        else:
            form += [("client_id", o.client_id), ("client_secret", secret)]
        request = Request(url=o.token_url, method="POST", headers=tuple(headers), body=urlencode(form).encode(),
                          context=functools.partial(client_context, ca_file=o.ca_file), follow_redirects=False,
                          max_body=MAX_TOKEN_ANSWER, proxies=proxies)
        timings = Timings()
        span = self._tracer.start_span("POST", kind=SpanKind.CLIENT, attributes=attributes, record_exception=False,
                                       set_status_on_exception=False)
        try:
            try:
                async with asyncio.timeout(timeout):
                    response = await self._client.fetch(request, timings)
            except TimeoutError:
                raise ProbeFailure(ErrorType.TIMEOUT, f"{where}: no answer within {timeout:g}s") from None
            except ProbeFailure as exc:
                raise ProbeFailure(exc.error_type, f"{where}: {exc.detail}") from None
            except OSError as exc:
                error_type, detail = classify_os_error(exc)
                raise ProbeFailure(error_type, f"{where}: {detail}") from None
            span.set_attribute("http.response.status_code", response.status)
            token = _token_from(response.status, response.headers.get("content-type", ""), response.body, where)
        except ProbeFailure as exc:
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", str(exc.error_type))
            raise
        finally:
            for phase, seconds in timings.phases().items():
                span.set_attribute(f"tta.phase.{phase}", seconds)
            span.end()
        return token


def _token_from(status: int, content_type: str, body: bytes, where: str) -> _Token:
    document = _document(content_type, body)
    if status != 200:
        code = document.get("error") if document is not None else None
        said = f": {code}" if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else ""
        description = document.get("error_description") if document is not None else None
        if said and isinstance(description, str) and description:
            said += f" ({server_words(description)[:120]})"
        if status in (400, 401, 403):
            raise ProbeFailure(ErrorType.AUTH, f"{where} refused the client with {status}{said}")
        raise ProbeFailure(ErrorType.HTTP_STATUS, f"{where} answered {status}{said}")
    if document is None:
        raise ProbeFailure(ErrorType.PROTOCOL, f"{where} answered 200 with neither JSON nor a form")
    value = document.get("access_token")
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise ProbeFailure(ErrorType.PROTOCOL, f"{where} answered without a usable access_token")
    kind = document.get("token_type", "Bearer")
    if not isinstance(kind, str) or kind.lower() != "bearer":
        shown = kind[:20] if isinstance(kind, str) else type(kind).__name__
        raise ProbeFailure(ErrorType.PROTOCOL, f"{where} gave a token of type {shown!r}; only Bearer is supported")
    lifetime = document.get("expires_in")
    if isinstance(lifetime, str):
        try:
            lifetime = float(lifetime)
        except ValueError:
            lifetime = None
    if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or not math.isfinite(lifetime):
        refresh_at = math.inf  # no end given: used until a target refuses it
    else:
        refresh_at = time.monotonic() + lifetime - min(_MARGIN, max(lifetime, 0) / 2)
    return _Token(value, refresh_at)


def _document(content_type: str, body: bytes) -> dict[str, Any] | None:
    """The answer as a mapping: JSON, or a form (as some providers answer)."""
    media = content_type.split(";", 1)[0].strip().lower()
    text = body.decode("utf-8", "replace")
    if media in ("application/x-www-form-urlencoded", "text/plain"):
        return dict(parse_qsl(text))
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
