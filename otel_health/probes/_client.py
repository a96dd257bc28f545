"""The HTTP client of the HTTP-based kinds: one request per connection, redirects followed,
the whole answer read and timed, over HTTP/1.1 (``_http1``) or HTTP/2 (``_http2``, when TLS
agrees on ``h2`` or HTTP/2 is asked for by prior knowledge).

It does what a framing layer cannot: resolve (``_resolver.Names``), race every address of a
name (RFC 8305, on ``aiohappyeyeballs``), go through a forward proxy (``_proxy``: absolute
form, or a CONNECT tunnel whose answer the same reader frames), TLS and ALPN, redirects (a
:class:`~._messages.Hop` each), caps, content codings (``_codings``) and the time of each
step. Nothing here knows of spans or metrics: the HTTP probe draws those around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import aiohappyeyeballs

from ..errors import ErrorType, ProbeFailure
from ._base import classify_os_error
from ._codings import Body
from ._cookies import Jar
from ._http1 import Exchange, ResponseReader, no_body, request_head
from ._messages import Hop, Request, Response, Timings, invalid
from ._proxy import Proxy
from ._resolver import Names, ascii_host
from ._tls import Resuming, presented_chain

if TYPE_CHECKING:
    from ._http2 import H2Exchange

__all__ = ["HAPPY_EYEBALLS_DELAY", "MAX_REDIRECTS", "HttpClient"]

MAX_REDIRECTS = 10
HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305's recommended connection attempt delay
_TLS_GOODBYE = 2.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ERRNO = re.compile(r"\[Errno (\d+)\]")


class HttpClient:
    """One request per connection, redirects followed, the whole answer read."""

    def __init__(self, names: Names | None = None) -> None:
        self.names = names or Names()
        # Connections whose close has begun but not ended: a TLS close waits for the peer's
        # close_notify (at most _TLS_GOODBYE), after the check is over.
        self._open: set[Exchange | H2Exchange] = set()

    def close(self) -> None:
        self.names.close()

    async def aclose(self, timeout: float = _TLS_GOODBYE + 0.5) -> None:
        """Close, after the connections still closing have closed (at most ``timeout``)."""
        deadline = time.monotonic() + timeout
        while self._open and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for exchange in list(self._open):
            if exchange.transport is not None:
                exchange.transport.abort()
        self.close()

    async def fetch(self, request: Request, timings: Timings, extra: tuple[tuple[str, str], ...] = ()) -> Response:
        """The answer to ``request`` (with this check's ``extra`` headers, such as its
        traceparent), after at most ten redirects when following them.

        ``timings`` is filled in as the exchange goes, also when it fails."""
        url, method, body = request.url, request.method, request.body
        headers = request.headers + extra if extra else request.headers
        host_header, server_name = request.host, request.server_name
        peer_chain: tuple[bytes, ...] = ()
        downgraded = False
        cookies_set: list[tuple[str, str]] = []
        jar: Jar | None = None  # made by the first Set-Cookie: a check's cookies across its redirects
        configured_cookie = any(name.lower() == "cookie" for name, _ in headers)
        timings.start = time.perf_counter()
        for redirects in range(MAX_REDIRECTS + 1):
            if redirects:
                timings.next_hop(time.perf_counter())
            parts = urlsplit(url)
            sent = headers
            if jar is not None and not configured_cookie and (cookie := jar.header(url)) is not None:
                sent = (*headers, ("Cookie", cookie))
            hop = _hop(parts, method, sent, body, request.read_body, host_header, server_name)
            response = await self._once(request, hop, timings)
            peer_chain = response.peer_chain or peer_chain
            response.peer_chain = peer_chain
            response.url = url
            response.downgraded = downgraded
            for value in response.values("set-cookie"):
                cookies_set.append((url, value))
                if not configured_cookie:
                    jar = jar or Jar()
                    jar.take(url, value)
            response.cookies_set = cookies_set
            if not (request.follow_redirects and response.status in _REDIRECTS):
                return response
            locations = set(response.values("location"))
            if not locations:
                return response
            if len(locations) > 1:
                raise invalid("a redirect with more than one Location")
            target = urljoin(url, _as_text(locations.pop()))
            new = urlsplit(target)
            if new.scheme not in ("http", "https") or not new.hostname:
                raise invalid("redirect to a location that is not an http(s) URL")
            downgraded = downgraded or (parts.scheme == "https" and new.scheme == "http")
            if _origin(new) != _origin(parts):
                # Credentials, a configured Host and TLS server name go to the origin they
                # were configured for, never further.
                headers = tuple((k, v) for k, v in headers if k.lower() not in request.private)
                host_header = server_name = None
            if (response.status == 303 and method != "HEAD") or (response.status in (301, 302) and method == "POST"):
                method, body = "GET", None
            url = target
        raise ProbeFailure(ErrorType.PROTOCOL, f"too many redirects (more than {MAX_REDIRECTS})")

    async def _once(self, request: Request, hop: Hop, timings: Timings) -> Response:
        method, host, port, tls = hop.method, hop.host, hop.port, hop.tls
        proxy = request.proxies.for_url(hop.parts.scheme, host, port) if request.proxies is not None else None
        if proxy is not None and not tls:
            # Absolute form to the proxy, its credentials with it (the proxy takes them off).
            to_proxy = hop if proxy.authorization is None else \
                replace(hop, headers=(*hop.headers, ("Proxy-Authorization", proxy.authorization)))
            head = request_head(to_proxy, absolute=True)
        else:
            head = request_head(hop)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        sink: list[Body] = []

        def body_sink(response: Response) -> Callable[[bytes], bool]:
            sink.append(Body(", ".join(response.values("content-encoding")), request.max_body))
            return sink[0]

        reader = ResponseReader(method, body_sink, read_body=request.read_body)
        with _at(proxy):
            if proxy is None:
                addresses = await self._addresses(request, host, port, timings)
            else:
                addresses = await self._addresses(request, proxy.host, proxy.port, timings)
            if proxy is not None and tls:
                tunnel: asyncio.Future[None] = loop.create_future()
                exchange = Exchange(ResponseReader("CONNECT", no_body, read_body=False), tunnel, timings,
                                     timed=False)
            else:
                exchange = Exchange(reader, done, timings)
            transport = await _connect(loop, addresses, exchange, request.source_ip)
        timings.connected = time.perf_counter()
        exchange.open = self._open
        self._open.add(exchange)
        complete = False
        try:
            peer_chain: tuple[bytes, ...] = ()
            if proxy is not None and tls:
                await _tunnel(transport, exchange, proxy, host, port, hop.headers)
                timings.tunneled = time.perf_counter()
                exchange.expect(reader, done)
            if tls:
                assert request.context is not None
                context = request.context()
                transport = await loop.start_tls(  # type: ignore[assignment]
                    transport, exchange, context, server_hostname=hop.server_name or host,
                    ssl_shutdown_timeout=_TLS_GOODBYE)
                exchange.transport = transport
                timings.secured = time.perf_counter()
                ssl_object = transport.get_extra_info("ssl_object")
                peer_chain = presented_chain(ssl_object)
                agreed = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            else:
                agreed = None
            if agreed == "h2" or (request.http2 == "prior_knowledge" and proxy is None):
                response = await self._h2(transport, exchange, request, hop, sink, timings)
            else:
                transport.write(head + hop.body if hop.body else head)
                await done
                assert reader.head is not None
                response = reader.head
                response.trailers = reader.trailers
            if proxy is not None and response.status == 407:
                raise _proxy_refused(proxy, 407, "the request")
            response.peer_chain, response.tls = peer_chain, tls
            if tls and ssl_object is not None:
                response.tls_resumed = ssl_object.session_reused
                if isinstance(context, Resuming):
                    context.keep(hop.server_name or host, ssl_object.session)
            if sink:
                sink[0].finish()
                response.body, response.truncated = bytes(sink[0].out), sink[0].cut
                response.undecodable = sink[0].undecodable
            timings.done = time.perf_counter()
            complete = True
            return response
        finally:
            if complete:
                transport.close()
            else:
                transport.abort()
            exchange.reader.release()
            reader.release()
            # What comes after the check has ended (a late error as the transport goes) is nobody's.
            for settled in (done, exchange.done):
                if not settled.done():
                    settled.cancel()
                elif not settled.cancelled():
                    settled.exception()

    async def _h2(self, transport: asyncio.Transport, exchange: Exchange, request: Request, hop: Hop,
                  sink: list[Body], timings: Timings) -> Response:
        """The exchange over HTTP/2 on ``transport``, which the HTTP/1.1 protocol hands over."""
        from ._http2 import H2Exchange, h2_headers  # h2 is loaded by the first HTTP/2 exchange only

        def body_sink(response: Response) -> Callable[[bytes], bool]:
            sink.append(Body(", ".join(response.values("content-encoding")), request.max_body))
            return sink[0]

        h2x = H2Exchange(h2_headers(hop), hop.body, head_only=hop.method == "HEAD" or not request.read_body,
                         sink=body_sink, timings=timings)
        self._open.discard(exchange)
        h2x.open = self._open
        self._open.add(h2x)
        transport.set_protocol(h2x)
        exchange.transport = None
        try:
            h2x.begin(transport)
            await h2x.done
        finally:
            if not h2x.done.done():
                h2x.done.cancel()
            elif not h2x.done.cancelled() and h2x.done.exception() is None:
                h2x.finish()
        assert h2x.head is not None
        response = h2x.head
        response.trailers = h2x.trailers
        return response

    async def _addresses(self, request: Request, host: str, port: int, timings: Timings) -> list[tuple[int, Any]]:
        family = Names.literal(host)
        if family is not None:
            return _eligible([(family, (host, port))], request, host)
        try:
            found = await self.names.resolve(host, port)
        except socket.gaierror:
            raise ProbeFailure(ErrorType.DNS, "name resolution failed") from None
        except UnicodeError:
            raise ProbeFailure(ErrorType.DNS, "the host name cannot be encoded for DNS") from None
        timings.resolved = time.perf_counter()
        return _eligible(found, request, host)


@contextlib.contextmanager
def _at(proxy: Proxy | None) -> Iterator[None]:
    """Failures on the way to a proxy name the proxy: the target was never reached."""
    if proxy is None:
        yield
        return
    try:
        yield
    except ProbeFailure as exc:
        raise ProbeFailure(exc.error_type, f"proxy {proxy.label}: {exc.detail}") from None
    except OSError as exc:
        error_type, detail = classify_os_error(exc)
        raise ProbeFailure(error_type, f"proxy {proxy.label}: {detail}") from None


async def _tunnel(transport: asyncio.Transport, exchange: Exchange, proxy: Proxy, host: str, port: int,
                  headers: tuple[tuple[str, str], ...]) -> None:
    """Ask the proxy for a tunnel to host:port (RFC 9110 §9.3.6); raises unless it agrees."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    lines += [f"User-Agent: {v}" for k, v in headers if k.lower() == "user-agent"]
    if proxy.authorization is not None:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    with _at(proxy):
        await exchange.done
    assert exchange.reader.head is not None
    status = exchange.reader.head.status
    if not 200 <= status < 300:
        raise _proxy_refused(proxy, status, "CONNECT")


def _proxy_refused(proxy: Proxy, status: int, what: str) -> ProbeFailure:
    """A proxy's refusal: 407 is ``auth`` (and 401 to CONNECT, which some proxies send for
    wrong credentials), a gateway timeout ``timeout``; any other refusal of a tunnel is
    ``http_status`` with the proxy's code in the detail."""
    where = f"proxy {proxy.label} answered {what} with {status}"
    if status == 407 or (status == 401 and what == "CONNECT"):
        how = "refused the credentials" if proxy.authorization else "requires credentials: set proxy_basic_auth"
        return ProbeFailure(ErrorType.AUTH, f"{where} ({how})")
    if status == 504:
        return ProbeFailure(ErrorType.TIMEOUT, f"{where} (the target did not answer the proxy in time)")
    return ProbeFailure(ErrorType.HTTP_STATUS, f"{where} (it could not or would not reach the target)")


def _eligible(found: list[tuple[int, Any]], request: Request, host: str) -> list[tuple[int, Any]]:
    family: int | None = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6}.get(request.ip_protocol)
    if request.source_ip is not None:
        family = Names.literal(request.source_ip)
    if family is None:
        return found
    kept = [a for a in found if a[0] == family]
    if not kept:
        which = "IPv4" if family == socket.AF_INET else "IPv6"
        raise ProbeFailure(ErrorType.DNS, f"{host} has no {which} address (ip_protocol/source_ip ask for one)")
    return kept


async def _connect(loop: asyncio.AbstractEventLoop, addresses: list[tuple[int, Any]], exchange: Exchange,
                   source_ip: str | None) -> asyncio.Transport:
    """A TCP connection to the first address that takes one, every address raced 250 ms apart
    (RFC 8305); one address is connected to directly."""
    if len(addresses) == 1 and source_ip is None:
        family, sockaddr = addresses[0]
        transport, _ = await loop.create_connection(lambda: exchange, sockaddr[0], sockaddr[1], family=family)
        return transport
    infos = [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr) for family, sockaddr in addresses]
    local = None
    if source_ip is not None:
        family = Names.literal(source_ip) or socket.AF_INET
        local = [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (source_ip, 0))]
    try:
        sock = await aiohappyeyeballs.start_connection(infos, local_addr_infos=local,
                                                       happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=1)
    except OSError as exc:
        if exc.errno is None:  # several addresses failed differently: the first one's reason
            found = _ERRNO.search(str(exc))
            if found is not None:
                raise OSError(int(found.group(1)), str(exc)) from None
        raise
    try:
        transport, _ = await loop.create_connection(lambda: exchange, sock=sock)
    except BaseException:
        sock.close()
        raise
    return transport


def _as_text(value: str) -> str:
    """A header value as it was sent: raw UTF-8 (as servers put it in a Location) read as
    UTF-8, other bytes kept as they are for percent-encoding."""
    return value.encode("latin-1").decode("utf-8", "surrogateescape")


def _origin(parts: Any) -> tuple[str, str, int | None]:
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port


def _hop(parts: Any, method: str, headers: tuple[tuple[str, str], ...], body: bytes | None, read_body: bool,
         host_header: str | None, server_name: str | None) -> Hop:
    """The hop to ``parts``: its host as DNS carries it and its port (the scheme's by default)."""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ProbeFailure(ErrorType.PROTOCOL, "invalid port in the URL") from None
    return Hop(parts, method, ascii_host(parts.hostname or ""), port, headers, body, read_body, host_header,
               server_name)
