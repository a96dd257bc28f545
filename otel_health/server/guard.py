"""Who may reach what, and how much a connection may hold: the Host and cross-site checks,
loopback peers, Basic credentials for the page, the connection guard (head timeout, the API's
share of connections, the reserve kept for scrapes) and the bound on a request body."""

from __future__ import annotations

import asyncio
import base64
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Collection
from typing import cast
from urllib.parse import urlsplit

from aiohttp import web

__all__ = ["HEAD_TIMEOUT", "MAX_BODY", "SCRAPE_RESERVE", "GuardedSite", "basic_password_is", "bounded_body",
           "cross_site", "from_loopback", "host_allowed", "loopback", "make_runner"]


def host_allowed(host: str | None, allowed: Collection[str], *, strict: bool = False) -> bool:
    """Whether a request's ``Host`` names this collector: a name in ``allowed`` (a browser tricked
    by DNS rebinding sends the attacker's name), or an IP literal. ``strict`` (the operator listed
    ``allowed_hosts``): an IP literal only if loopback or in ``allowed``, and a request without a
    Host is refused; otherwise any IP literal, and no Host (not a browser) passes."""
    if not host:
        return not strict
    host = host.lower()  # the HTTP parser has taken the white space around it off already
    if host.startswith("["):
        name = host[1:host.find("]")] if "]" in host else host[1:]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name.rstrip(".") in allowed
    return not strict or address.is_loopback or str(address) in allowed


def basic_password_is(request: web.BaseRequest, token: str | None) -> bool:
    """Whether the request's Basic credentials carry ``token`` as the password (any user name)."""
    given = request.headers.get("Authorization", "")
    if token is None or given[:6].lower() != "basic ":
        return False
    try:
        _, _, password = base64.b64decode(given[6:].strip(), validate=True).partition(b":")
    except ValueError:
        return False
    return hmac.compare_digest(password, token.encode())


def loopback(host: str) -> bool:
    """Whether ``host`` (a name, an address, ``[v6]``) is this machine's loopback."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack socket
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def from_loopback(request: web.BaseRequest) -> bool:
    return loopback(request.remote or "")


def cross_site(request: web.BaseRequest) -> bool:
    """Whether a browser says the request comes from another site (a form post from any page
    the user has open): ``Sec-Fetch-Site``, else an ``Origin`` other than this host."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site.strip().lower() not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    return origin.strip().lower() == "null" or urlsplit(origin.strip()).netloc.lower() != request.host.lower()


HEAD_TIMEOUT = 10.0  # seconds a connection has to send a complete request head
MAX_BODY = 64 * 1024  # bytes of a request body: nothing the API takes is larger


SCRAPE_RESERVE = 16  # connections past the limit kept for scrapes and health checks
_SCRAPES = frozenset({(b"GET", b"/metrics"), (b"GET", b"/health"), (b"GET", b"/-/healthy"), (b"HEAD", b"/-/healthy")})
_REQUEST_LINE = 8192  # bytes of a request line a reserved connection may take to say what it wants


def _a_scrape(line: bytes) -> bool:
    method, _, rest = line.partition(b" ")
    return (method, rest.split(b" ", 1)[0].split(b"?", 1)[0]) in _SCRAPES


class _Limits:
    def __init__(self, connections: int, head_timeout: float, reserve: int = SCRAPE_RESERVE) -> None:
        self.connections = connections
        self.head_timeout = head_timeout
        self.reserve = reserve
        self.open = 0
        self.reserved = 0


class _Guard(asyncio.Protocol):
    """aiohttp's request handler behind two bounds aiohttp does not have: a complete request head
    within ``head_timeout`` (a client sending a byte a second is let go), and at most
    ``connections`` open at once, so a slow or greedy client cannot hold the descriptors the
    probes need. Past the limit, a few more connections (``reserve``) are held until their
    request line says what they want: a scrape or a health check goes on, anything else is
    closed; so clients that fill the pool cannot blank the scrape."""

    def __init__(self, inner: asyncio.Protocol, limits: _Limits) -> None:
        self._inner = inner
        self._limits = limits
        self._admitted = False
        self._reserved = False  # admitted past the limit
        self._waiting = False  # reserved, and its request line not read yet: the handler has not seen it
        self._first = b""
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # a TCP transport (asyncio's or uvloop's)
        limits = self._limits
        if limits.open >= limits.connections:
            if limits.reserved >= limits.reserve:
                stream.abort()
                return
            limits.reserved += 1
            self._reserved = self._waiting = True
        else:
            limits.open += 1
        self._admitted = True
        self._transport = stream
        self._timer = self._head_timer()
        if not self._waiting:
            self._inner.connection_made(transport)

    def _head_timer(self) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(self._limits.head_timeout, self._too_slow)

    def _too_slow(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._waiting:
            self._first += data
            if b"\n" not in self._first and len(self._first) < _REQUEST_LINE:
                return
            assert self._transport is not None
            if not _a_scrape(self._first):
                self._transport.abort()
                return
            data, self._first, self._waiting = self._first, b"", False
            self._inner.connection_made(self._transport)
        seen = self._tail + data
        if b"\r\n\r\n" in seen:  # a head is complete
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            seen = b""
        elif self._timer is None:
            self._timer = self._head_timer()  # the next request's head has begun
        self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._waiting:
            return False  # it never said what it wanted: close
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        if self._reserved:
            self._limits.reserved -= 1
        else:
            self._limits.open -= 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._waiting:  # the handler saw the connection
            self._inner.connection_lost(exc)


def make_runner(app: web.Application) -> web.AppRunner:
    """The app's runner: idle keep-alive connections go after 15 s, and a body left unread (a
    413) is drained for at most 1 s before the connection closes (aiohttp's default is 10 s)."""
    return web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=15.0, lingering_time=1.0)


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through :class:`_Guard`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, max_connections: int,
                 head_timeout: float = HEAD_TIMEOUT) -> None:
        super().__init__(runner)
        self._host, self._port = host, port
        self._limits = _Limits(max_connections, head_timeout)

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        handler = self._runner.server
        assert handler is not None
        limits = self._limits
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Guard(handler(), limits), self._host, self._port, reuse_address=True)


@web.middleware
async def bounded_body(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                        ) -> web.StreamResponse:
    if request.content_length is not None and request.content_length > MAX_BODY:
        refused = web.json_response({"status": "error", "errors": [f"a request body is at most {MAX_BODY} bytes"]},
                                    status=413)
        refused.force_close()  # the body is never read: the connection goes with the answer
        return refused
    return await handler(request)
