"""WebSocket probe: the opening handshake (RFC 6455), optionally a message and an expectation on
the answer, and the closing handshake, on the ``websockets`` package's client.

The handshake is the package's: status 101, ``Upgrade``, ``Connection`` and the
``Sec-WebSocket-Accept`` computed from the key it sent, each verified, and the subprotocol the
server picked one of those offered. A ``subprotocol`` the server does not agree to fails the
check. After the exchange the check closes with 1000 and waits for the server's close frame: a
server that never answers the close is a failed check, as one that closes the connection first
with an error code. No proxy from the environment (``proxy_url`` sets one), no compression
offered, no keepalive pings: one connection, what a new client sees.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._redact import redact_url
from ..config import Fields, Secret, Target
from ..config.values import is_ip_address
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, answer_by, classify_os_error, os_cause, pair_secrets, server_words, shown_pairs
from ._chain import TLS_INFO, record
from ._http_options import parse_headers, parse_url
from ._match import Pattern, pattern_field
from ._revocation import StapleAt, TlsProbe, parse_revocation
from ._tls import client_context, transport_chain

__all__ = ["WebSocketOptions", "WebSocketProbe"]

# Headers the handshake makes: a configured one would break it or be sent twice.
_HANDSHAKE_HEADERS = frozenset({"host", "upgrade", "sec-websocket-key", "sec-websocket-version",
                                "sec-websocket-protocol", "sec-websocket-extensions"})


@dataclass(frozen=True, slots=True)
class WebSocketOptions:
    url: str
    headers: tuple[tuple[str, str | Secret], ...] = ()
    subprotocol: str | None = None
    send: str | None = None
    expect: Pattern | None = None
    tls_verify: bool = True
    ca_file: Path | None = None
    proxy_url: str | None = None
    check_revocation: str = "off"  # "off", "stapled", "ocsp" (_revocation)
    revocation_unknown: str = "warn"

    @classmethod
    def parse(cls, f: Fields) -> WebSocketOptions | None:
        url = parse_url(f, ("ws", "wss"), "a ws:// or wss://")
        headers, host = parse_headers(f)
        if host is not None:
            f.problem("headers", "header 'Host' is the URL's host on a WebSocket handshake; remove it")
        for name, _ in headers:
            if name.lower() in _HANDSHAKE_HEADERS:
                f.problem("headers", f"header {name!r} is made by the WebSocket handshake; remove it "
                                     "(a subprotocol goes in 'subprotocol')")
        expect = pattern_field(f, "expect")
        send = f.text("send")
        proxy = f.text("proxy_url")
        if proxy is not None and urlsplit(proxy).scheme not in ("http", "https", "socks5", "socks5h", "socks4"):
            f.problem("proxy_url", f"must be an http://, https:// or socks5:// URL, got {redact_url(proxy)!r}")
            proxy = None
        revocation, unknown = parse_revocation(f, not url or url.startswith("wss://"), "use a wss:// URL")
        options = cls(url=url or "", headers=headers, subprotocol=f.text("subprotocol"), send=send, expect=expect,
                      tls_verify=f.flag("tls_verify", True), ca_file=f.path("ca_file"), proxy_url=proxy,
                      check_revocation=revocation, revocation_unknown=unknown)
        return options if url else None

    def secrets(self) -> Iterator[Secret]:
        return pair_secrets(self.headers)

    def where(self) -> str:
        return redact_url(self.url)

    def public(self) -> dict[str, Any]:
        return {"url": redact_url(self.url), "subprotocol": self.subprotocol, "send": self.send is not None,
                "expect": self.expect.pattern if self.expect is not None else None,
                "headers": shown_pairs(self.headers),
                "proxy_url": redact_url(self.proxy_url) if self.proxy_url else None,
                "check_revocation": self.check_revocation, "revocation_unknown": self.revocation_unknown}


class WebSocketProbe(TlsProbe):
    kind = "websocket"
    component_type = "websocket"
    check_name = "handshake"
    info_labels = ("subprotocol", *TLS_INFO)
    options_type = WebSocketOptions
    schemes = ("ws", "wss")

    @classmethod
    def options_from_url(cls, url: str) -> WebSocketOptions:
        parts = urlsplit(url)
        if parts.scheme not in cls.schemes or not parts.hostname:
            raise ValueError("a WebSocket URL needs a host: ws://HOST[:PORT]/PATH (wss:// for TLS)")
        return WebSocketOptions(url=url)

    def _load(self) -> None:
        import websockets.asyncio.client  # noqa: F401 - imported once, off the loop, before the first check

    async def _check(self, target: Target, attempt: Attempt) -> None:
        from websockets.asyncio.client import connect

        o: WebSocketOptions = target.options
        deadline = answer_by(target.timeout)  # the exchange and the close end by it: what did not come is named
        parts = urlsplit(o.url)
        tls = parts.scheme == "wss"
        attributes: dict[str, str | int] = {"url.full": redact_url(o.url), "server.address": parts.hostname or "",
                                            "server.port": parts.port or (443 if tls else 80)}
        headers = [(name, value.reveal() if isinstance(value, Secret) else value) for name, value in o.headers]
        context = client_context(verify=o.tls_verify, ca_file=o.ca_file) if tls else None
        with self.step(attempt, "connect", "WebSocket handshake", attributes):
            ws = await connect(o.url, additional_headers=headers, user_agent_header=self.settings.user_agent,
                               subprotocols=[o.subprotocol] if o.subprotocol else None,  # type: ignore[list-item]
                               compression=None, proxy=o.proxy_url, ssl=context, open_timeout=None,
                               ping_interval=None, close_timeout=None, max_size=self.settings.max_body_bytes)
        try:
            attempt.status_code = ws.response.status_code if ws.response is not None else None
            chain = await record(attempt, transport_chain(ws.transport)) if tls else None
            if chain is not None and o.check_revocation != "off":
                host, name = parts.hostname or "", parts.hostname or ""
                staple_at = StapleAt(host, parts.port or 443, None if is_ip_address(name) else name) \
                    if o.proxy_url is None else None
                await self.judge_revocation(attempt, chain, o.check_revocation, o.revocation_unknown,
                                            staple_at=staple_at, proxies=None, attributes=attributes)
            if o.subprotocol is not None:
                if ws.subprotocol != o.subprotocol:
                    raise ProbeFailure(ErrorType.PROTOCOL, f"the server agreed to no subprotocol; asked for "
                                                           f"{o.subprotocol!r}")
                attempt.info["subprotocol"] = ws.subprotocol
            if o.send is not None or o.expect is not None:
                with self.step(attempt, "exchange", "WebSocket exchange", attributes):
                    if o.send is not None:
                        await ws.send(o.send)
                    if o.expect is not None:
                        await _expect(ws, o.expect, deadline)
        except BaseException:
            ws.transport.abort()
            raise
        with self.step(attempt, "close", "WebSocket close", attributes):
            ws.close_timeout = max(0.01, deadline - time.perf_counter())
            await ws.close()
            if ws.protocol.close_rcvd is None:
                raise ProbeFailure(ErrorType.PROTOCOL, "the server did not answer the closing handshake")

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        from websockets import exceptions as wse

        if isinstance(exc, wse.InvalidStatus):
            response = exc.response
            reason = server_words(response.reason_phrase) if response.reason_phrase else ""
            return ErrorType.HTTP_STATUS, f"the upgrade was answered {response.status_code} {reason}".rstrip() + \
                " (a WebSocket server answers 101)"
        if isinstance(exc, wse.ConnectionClosed):
            frame = exc.rcvd
            if frame is None:
                return ErrorType.CONNECTION_RESET, "the connection closed without a closing handshake"
            said = f" ({server_words(frame.reason)})" if frame.reason else ""
            return ErrorType.CONNECTION_RESET, f"the server closed the connection with code {frame.code}{said}"
        if isinstance(exc, wse.InvalidProxyStatus):
            return ErrorType.HTTP_STATUS, f"the proxy refused CONNECT with {exc.response.status_code}"
        if isinstance(exc, (wse.InvalidHeader, wse.NegotiationError, wse.InvalidUpgrade)):
            return ErrorType.PROTOCOL, f"the upgrade is not a valid WebSocket handshake: {server_words(str(exc))}"
        if isinstance(exc, wse.InvalidMessage):
            cause = os_cause(exc)
            if cause is not None:
                return classify_os_error(cause)
            return ErrorType.PROTOCOL, "the answer to the upgrade is not HTTP"
        if isinstance(exc, wse.PayloadTooBig):
            return ErrorType.PROTOCOL, f"a message is over max_body_bytes ({self.settings.max_body_bytes})"
        if isinstance(exc, (wse.ProtocolError, wse.InvalidHandshake)):
            return ErrorType.PROTOCOL, f"WebSocket protocol error: {server_words(str(exc))}"
        return classify_os_error(exc)


async def _expect(ws: Any, expect: Pattern, deadline: float) -> None:
    """Messages until one matches by ``deadline``; the server closing first fails the check."""
    from websockets.exceptions import ConnectionClosedOK

    seen = 0
    shown = expect.pattern[:80]
    try:
        async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
            async for message in ws:
                if expect.found(message):
                    return
                seen += 1
    except ConnectionClosedOK:
        raise ProbeFailure(ErrorType.ASSERTION, f"the server closed before a message matched /{shown}/ "
                                                f"({seen} came)") from None
    except TimeoutError:
        raise ProbeFailure(ErrorType.ASSERTION, f"no message matched /{shown}/ within the timeout "
                                                f"({seen} came)") from None
