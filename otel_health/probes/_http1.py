"""The HTTP/1.1 exchange a health check makes: one request on a fresh connection, the answer
framed by llhttp (through ``httptools``), the whole response read and timed. When TLS agrees
on ``h2`` (or HTTP/2 is asked for by prior knowledge) the connection is handed to ``_http2``.

Our layer does what a parser cannot: resolve (``_dns.Names``), race every address of a name
(RFC 8305, on ``aiohappyeyeballs``), go through a forward proxy (``_proxy``: absolute form,
or a CONNECT tunnel whose answer the same reader frames), TLS, one request with
``Connection: close``, redirects, caps, content codings (``_codings``) and the time of each
step. Framing, the status line,
header syntax, chunk sizes and trailers are llhttp's. Where llhttp needs help, the
:class:`ResponseReader` gives it (the README's design section lists each point, with the
divergences from other clients):

- obs-fold is accepted (RFC 9112 §5.2: a client replaces it with spaces) through llhttp's
  lenient header mode, which also lets control bytes through header values: they are
  checked here again;
- a bare LF ending a line, a chunk size followed by spaces, and Content-Length beside
  chunked transfer coding are accepted, as curl, Go and h11 accept them;
- an answer to HEAD, and a 204 or 304, ends at its headers; 1xx interim answers are dropped;
- trailers are told from headers by arriving after the head;
- the end of the connection ends a body that has no length, and cuts short one that has;
- the head is capped in size and in the number of its fields.

Every malformed answer becomes a :class:`~otel_health.errors.ProbeFailure` of type
``protocol`` that says what was wrong; an answer cut short, ``connection_reset``. Nothing
here knows of spans or metrics: the HTTP probe draws those around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

import aiohappyeyeballs
import httptools
import idna

from ..errors import ErrorType, ProbeFailure
from ._base import classify_os_error
from ._codings import ACCEPT_ENCODING, Decoder, InvalidCoding, decoder_for
from ._dns import Names
from ._messages import MAX_HEAD_BYTES, MAX_HEAD_FIELDS, SECRET_HEADERS, Request, Response, Timings
from ._proxy import Proxy

if TYPE_CHECKING:
    from ._http2 import H2Exchange

__all__ = ["HAPPY_EYEBALLS_DELAY", "MAX_HEAD_BYTES", "MAX_HEAD_FIELDS", "MAX_REDIRECTS", "SECRET_HEADERS",
           "Http1Client", "Request", "Response", "ResponseReader", "Timings", "ascii_host"]

MAX_REDIRECTS = 10
HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305's recommended connection attempt delay
_TLS_GOODBYE = 2.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_ERRNO = re.compile(r"\[Errno (\d+)\]")
_CUT_SHORT = "server closed the connection without a complete response"
# Fields of an HTTP/1.1 connection that HTTP/2 forbids (RFC 9113 §8.2.2); Host becomes :authority.
_H2_CONNECTION_FIELDS = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
                                   "host", "te"})


def _invalid(what: str) -> ProbeFailure:
    return ProbeFailure(ErrorType.PROTOCOL, f"invalid HTTP response: {what}")


class _Stop(Exception):
    """Raised from a parser callback to end parsing: the response is complete (or enough)."""


class ResponseReader:
    """Bytes in, one response out: llhttp frames it, this class holds llhttp to what a client
    must check. Sans-I/O, so tests feed it any split of any answer.

    ``sink(head)`` is called once the head is known (not for answers without a body) and
    returns where body bytes go: a callable that returns False when it wants no more.
    """

    __slots__ = ("_fields", "_method", "_parser", "_prefix", "_raised", "_read_body", "_released", "_sink", "_sink_for",
                 "_size", "complete", "framing", "head", "received", "trailers")

    def __init__(self, method: str, sink: Callable[[Response], Callable[[bytes], bool]], *,
                 read_body: bool = True) -> None:
        self._method = method
        self._read_body = read_body
        self._sink_for = sink
        self._sink: Callable[[bytes], bool] | None = None
        self._fields: list[tuple[str, str]] = []
        self._size = 0
        self._raised: ProbeFailure | None = None
        self._prefix = b""
        self.head: Response | None = None
        self.trailers: list[tuple[str, str]] = []
        self.framing = ""  # "length", "chunked", "close" or "none"
        self.complete = False
        self.received = 0
        # llhttp, from the first bytes until release(): it holds this reader's callbacks, and
        # the two would otherwise outlive the check as a cycle only the garbage collector frees.
        self._parser: httptools.HttpResponseParser | None = None
        self._released = False

    # -- what the caller uses --

    def feed(self, data: bytes) -> None:
        if self.complete or self._released:
            return
        parser = self._parser
        if parser is None:
            parser = self._parser = httptools.HttpResponseParser(self)
            parser.set_dangerous_leniencies(
                lenient_headers=True, lenient_optional_cr_before_lf=True, lenient_chunked_length=True,
                lenient_spaces_after_chunk_size=True)
        if self.received < 5:
            # llhttp also takes RTSP/ and ICE/ answers: an HTTP client takes only HTTP/.
            self._prefix = (self._prefix + data)[:5]
            if not b"HTTP/".startswith(self._prefix) and not self._prefix.startswith(b"HTTP/"):
                raise _invalid("not an HTTP status line")
        self.received += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            if self._raised is not None:
                raise self._raised from None
            if not self.complete:
                raise _invalid("the parser stopped") from None
        except httptools.HttpParserUpgrade:
            raise _invalid("101 Switching Protocols, but no upgrade was asked for") from None
        except httptools.HttpParserError as exc:
            raise _invalid(self._reason(exc)) from None
        if self.head is None and self.received > MAX_HEAD_BYTES:
            raise _invalid(f"headers longer than {MAX_HEAD_BYTES} bytes")

    def feed_eof(self) -> None:
        """The connection has ended: the answer is complete, or cut short."""
        if self.complete:
            return
        if self.head is None:
            raise ProbeFailure(ErrorType.CONNECTION_RESET, _CUT_SHORT if self.received else
                               "server closed the connection without answering")
        if self.framing != "close":
            raise ProbeFailure(ErrorType.CONNECTION_RESET, f"{_CUT_SHORT} (the body ends early)")
        self.complete = True

    def release(self) -> None:
        """The exchange is over: let llhttp go (later bytes are ignored)."""
        self._released = True
        self._parser = None

    # -- llhttp's callbacks --

    def on_message_begin(self) -> None:
        self._fields = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._size += len(name) + len(value) + 4
        if self._size > MAX_HEAD_BYTES:
            self._fail(f"headers longer than {MAX_HEAD_BYTES} bytes")
        target = self._fields if self.head is None else self.trailers
        if len(target) >= MAX_HEAD_FIELDS:
            self._fail(f"more than {MAX_HEAD_FIELDS} header fields")
        value = value.strip(b" \t")
        if _CTL.search(value):
            self._fail(f"control character in the value of {name[:40].decode('latin-1')!r}")
        target.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None  # llhttp calls only while it is held
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._fields = []  # an interim answer; its headers are not the final answer's
            return
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            self._fail(f"HTTP version {version} in the status line of an HTTP/1.1 exchange")
        if status < 100:
            self._fail(f"status code {status}")
        if status == 101:
            self._fail("101 Switching Protocols, but no upgrade was asked for")
        head = self.head = Response(status, version, self._fields)
        coding = [v.strip().lower() for n, value in head.fields if n == "transfer-encoding" for v in value.split(",")]
        if coding and coding != ["chunked"]:
            self._fail(f"unsupported transfer coding {', '.join(coding)[:40]!r}")
        if self._method == "HEAD" or status in (204, 304):
            self.framing = "none"
        elif coding:
            self.framing = "chunked"
        elif any(n == "content-length" for n, _ in head.fields):
            self.framing = "length"
        else:
            self.framing = "close"
        if self.framing == "none" or not self._read_body:
            self.complete = True
            raise _Stop
        try:
            self._sink = self._sink_for(head)
        except ProbeFailure as exc:
            self._raised = exc
            raise

    def on_body(self, data: bytes) -> None:
        sink = self._sink
        if sink is None:
            return
        try:
            more = sink(data)
        except ProbeFailure as exc:
            self._raised = exc
            raise
        if not more:
            self.complete = True
            raise _Stop

    def on_message_complete(self) -> None:
        if self.head is not None:
            self.complete = True
            raise _Stop

    def _fail(self, what: str) -> None:
        self._raised = _invalid(what)
        raise self._raised

    def _reason(self, exc: Exception) -> str:
        reason = str(exc) or type(exc).__name__
        parser = self._parser
        if self.head is None and parser is not None and parser.get_status_code() == 0 \
                and reason.startswith("Expected HTTP/"):
            return "not an HTTP status line"
        return reason[:1].lower() + reason[1:]


class _Body:
    """Where a response's body goes: decoded, cut at the cap."""

    __slots__ = ("cap", "coding", "cut", "decoder", "out")

    def __init__(self, head: Response, cap: int) -> None:
        self.cap = cap
        self.coding = ", ".join(head.values("content-encoding"))
        try:
            self.decoder: Decoder | None = decoder_for(self.coding)
        except InvalidCoding as exc:
            raise _invalid(str(exc)) from None
        self.out = bytearray()
        self.cut = False

    def __call__(self, data: bytes) -> bool:
        if self.decoder is not None:
            try:
                data = self.decoder.feed(data, self.cap + 1 - len(self.out))
            except InvalidCoding as exc:
                raise _invalid(str(exc)) from None
        self.out += data
        if len(self.out) > self.cap:
            self.cut = True
            del self.out[self.cap:]
            return False
        return True

    def finish(self) -> None:
        if self.decoder is not None and not self.cut:
            try:
                self.decoder.finish()
            except InvalidCoding as exc:
                raise _invalid(str(exc)) from None


class _Exchange(asyncio.Protocol):
    """Feeds what arrives to the reader; ``done`` settles when the answer is complete.
    A proxy's answer to CONNECT comes first, then :meth:`expect` hands over to the target's."""

    __slots__ = ("done", "open", "reader", "timed", "timings", "transport")

    def __init__(self, reader: ResponseReader, done: asyncio.Future[None], timings: Timings, *,
                 timed: bool = True) -> None:
        self.reader = reader
        self.done = done
        self.timings = timings
        self.timed = timed  # the head's arrival is the request phase's end
        self.transport: asyncio.Transport | None = None
        self.open: set[Any] | None = None  # the client's connections not yet closed

    def expect(self, reader: ResponseReader, done: asyncio.Future[None]) -> None:
        self.reader.release()
        self.reader, self.done, self.timed = reader, done, True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        reader = self.reader
        try:
            reader.feed(data)
        except ProbeFailure as exc:
            self.done.set_exception(exc)
            return
        if self.timed and reader.head is not None and self.timings.headers is None:
            self.timings.headers = time.perf_counter()
        if reader.complete:
            self.done.set_result(None)

    def eof_received(self) -> bool:
        self._ended(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.open is not None:
            self.open.discard(self)
        self._ended(exc)

    def _ended(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        # A TLS peer that closes without its close_notify still ends a body that runs to the
        # close (curl and browsers take it so); any other error is the answer's failure.
        if exc is not None and not (isinstance(exc, ssl.SSLError) and self.reader.framing == "close"):
            self.done.set_exception(exc)
            return
        try:
            self.reader.feed_eof()
        except ProbeFailure as failure:
            self.done.set_exception(failure)
            return
        self.done.set_result(None)


def ascii_host(host: str) -> str:
    """The name as DNS and the Host header carry it: ASCII names unchanged (underscores
    too), others mapped by UTS-46 (non-transitional, as browsers and curl do) to A-labels."""
    if host.isascii():
        return host
    try:
        mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
        return ".".join(label if label.isascii() else idna.alabel(label).decode("ascii")
                        for label in mapped.split("."))
    except (idna.IDNAError, UnicodeError) as exc:
        raise ProbeFailure(ErrorType.DNS, f"the host name cannot be encoded for DNS ({exc})") from None


class Http1Client:
    """One request per connection, redirects followed, the whole answer read."""

    def __init__(self, names: Names | None = None) -> None:
        self.names = names or Names()
        # Connections whose close has begun but not ended: a TLS close waits for the peer's
        # close_notify (at most _TLS_GOODBYE), after the check is over.
        self._open: set[_Exchange | H2Exchange] = set()

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
        peer_cert = None
        downgraded = False
        cookies_set: list[tuple[str, str]] = []
        timings.start = time.perf_counter()
        for hop in range(MAX_REDIRECTS + 1):
            if hop:
                timings.next_hop(time.perf_counter())
            parts = urlsplit(url)
            response = await self._once(request, parts, method, headers, body, host_header, server_name, timings)
            peer_cert = response.peer_cert or peer_cert
            response.peer_cert = peer_cert
            response.url = url
            response.downgraded = downgraded
            cookies_set += [(url, value) for value in response.values("set-cookie")]
            response.cookies_set = cookies_set
            if not (request.follow_redirects and response.status in _REDIRECTS):
                return response
            locations = set(response.values("location"))
            if not locations:
                return response
            if len(locations) > 1:
                raise _invalid("a redirect with more than one Location")
            target = urljoin(url, _as_text(locations.pop()))
            new = urlsplit(target)
            if new.scheme not in ("http", "https") or not new.hostname:
                raise _invalid("redirect to a location that is not an http(s) URL")
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

    async def _once(self, request: Request, parts: Any, method: str, headers: tuple[tuple[str, str], ...],
                    body: bytes | None, host_header: str | None, server_name: str | None,
                    timings: Timings) -> Response:
        tls = parts.scheme == "https"
        try:
            port = parts.port or (443 if tls else 80)
        except ValueError:
            raise ProbeFailure(ErrorType.PROTOCOL, "invalid port in the URL") from None
        host = ascii_host(parts.hostname or "")
        proxy = request.proxies.for_url(parts.scheme, host, port) if request.proxies is not None else None
        if proxy is not None and not tls:
            # Absolute form to the proxy, its credentials with it (the proxy takes them off).
            if proxy.authorization is not None:
                headers = (*headers, ("Proxy-Authorization", proxy.authorization))
            head = _request_head(method, parts, host, port, tls, headers, body, request.read_body, host_header,
                                 absolute=True)
        else:
            head = _request_head(method, parts, host, port, tls, headers, body, request.read_body, host_header)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        sink: list[_Body] = []

        def body_sink(response: Response) -> Callable[[bytes], bool]:
            sink.append(_Body(response, request.max_body))
            return sink[0]

        reader = ResponseReader(method, body_sink, read_body=request.read_body)
        with _at(proxy):
            if proxy is None:
                addresses = await self._addresses(request, host, port, timings)
            else:
                addresses = await self._addresses(request, proxy.host, proxy.port, timings)
            if proxy is not None and tls:
                tunnel: asyncio.Future[None] = loop.create_future()
                exchange = _Exchange(ResponseReader("CONNECT", _no_body, read_body=False), tunnel, timings,
                                     timed=False)
            else:
                exchange = _Exchange(reader, done, timings)
            transport = await _connect(loop, addresses, exchange, request.source_ip)
        timings.connected = time.perf_counter()
        exchange.open = self._open
        self._open.add(exchange)
        complete = False
        try:
            peer_cert = None
            if proxy is not None and tls:
                await _tunnel(transport, exchange, proxy, host, port, headers)
                timings.tunneled = time.perf_counter()
                exchange.expect(reader, done)
            if tls:
                assert request.context is not None
                transport = await loop.start_tls(  # type: ignore[assignment]
                    transport, exchange, request.context(), server_hostname=server_name or host,
                    ssl_shutdown_timeout=_TLS_GOODBYE)
                exchange.transport = transport
                timings.secured = time.perf_counter()
                ssl_object = transport.get_extra_info("ssl_object")
                peer_cert = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
                agreed = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            else:
                agreed = None
            if agreed == "h2" or (request.http2 == "prior_knowledge" and proxy is None):
                response = await self._h2(transport, exchange, request, parts, method, host, port, tls, headers,
                                          body, host_header, sink, timings)
            else:
                transport.write(head + body if body else head)
                await done
                assert reader.head is not None
                response = reader.head
                response.trailers = reader.trailers
            if proxy is not None and response.status == 407:
                raise _proxy_refused(proxy, 407, "the request")
            response.peer_cert, response.tls = peer_cert, tls
            if sink:
                sink[0].finish()
                response.body, response.truncated = bytes(sink[0].out), sink[0].cut
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

    async def _h2(self, transport: asyncio.Transport, exchange: _Exchange, request: Request, parts: Any,
                  method: str, host: str, port: int, tls: bool, headers: tuple[tuple[str, str], ...],
                  body: bytes | None, host_header: str | None, sink: list[_Body], timings: Timings) -> Response:
        """The exchange over HTTP/2 on ``transport``, which the HTTP/1.1 protocol hands over."""
        from ._http2 import H2Exchange  # h2 is loaded by the first HTTP/2 exchange only

        def body_sink(response: Response) -> Callable[[bytes], bool]:
            sink.append(_Body(response, request.max_body))
            return sink[0]

        h2x = H2Exchange(_h2_headers(method, parts, host, port, tls, headers, body, request.read_body, host_header),
                         body, head_only=method == "HEAD" or not request.read_body, sink=body_sink, timings=timings)
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


def _no_body(_: Response) -> Callable[[bytes], bool]:
    return lambda _data: False


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


async def _tunnel(transport: asyncio.Transport, exchange: _Exchange, proxy: Proxy, host: str, port: int,
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


async def _connect(loop: asyncio.AbstractEventLoop, addresses: list[tuple[int, Any]], exchange: _Exchange,
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


def _target(parts: Any, host: str, port: int, tls: bool) -> tuple[str, str]:
    """The request target (path and query, percent-encoded) and the authority (the port only
    when it is not the scheme's)."""
    path = quote(parts.path or "/", safe=_PATH_SAFE, errors="surrogateescape")
    if parts.query:
        path += "?" + quote(parts.query, safe=_QUERY_SAFE, errors="surrogateescape")
    authority = f"[{host}]" if ":" in host else host
    if port != (443 if tls else 80):
        authority += f":{port}"
    return path, authority


def _h2_headers(method: str, parts: Any, host: str, port: int, tls: bool, headers: tuple[tuple[str, str], ...],
                body: bytes | None, read_body: bool, host_header: str | None) -> list[tuple[str, str]]:
    """The request's header block for HTTP/2 (RFC 9113 §8.3): the pseudo-headers, then the
    same fields as on HTTP/1.1 in lower case, less those HTTP/2 forbids."""
    path, authority = _target(parts, host, port, tls)
    out = [(":method", method), (":scheme", "https" if tls else "http"), (":authority", host_header or authority),
           (":path", path)]
    given = {name.lower() for name, _ in headers}
    if "accept" not in given:
        out.append(("accept", "*/*"))
    if read_body and "accept-encoding" not in given:
        out.append(("accept-encoding", ACCEPT_ENCODING))
    for name, value in headers:
        lower = name.lower()
        if lower in _H2_CONNECTION_FIELDS:
            continue
        if "\r" in value or "\n" in value or "\0" in value:
            raise ProbeFailure(ErrorType.PROTOCOL, f"header {name!r} has a line break in its value")
        out.append((lower, value))
    if body is not None:
        if "content-type" not in given:
            out.append(("content-type", "text/plain; charset=utf-8"))
        out.append(("content-length", str(len(body))))
    return out


def _request_head(method: str, parts: Any, host: str, port: int, tls: bool, headers: tuple[tuple[str, str], ...],
                  body: bytes | None, read_body: bool, host_header: str | None, *, absolute: bool = False) -> bytes:
    path, authority = _target(parts, host, port, tls)
    if absolute:  # to a forward proxy (RFC 9112 §3.2.2)
        path = f"{parts.scheme}://{authority}{path}"
    given = {name.lower() for name, _ in headers}
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host_header or authority}"]
    if "accept" not in given:
        lines.append("Accept: */*")
    if read_body and "accept-encoding" not in given:
        lines.append(f"Accept-Encoding: {ACCEPT_ENCODING}")
    for name, value in headers:
        if "\r" in value or "\n" in value or "\0" in value:
            raise ProbeFailure(ErrorType.PROTOCOL, f"header {name!r} has a line break in its value")
        lines.append(f"{name}: {value}")
    if body is not None:
        if "content-type" not in given:
            lines.append("Content-Type: text/plain; charset=utf-8")
        lines.append(f"Content-Length: {len(body)}")
    elif method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: 0")
    lines.append("Connection: close")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise ProbeFailure(ErrorType.PROTOCOL, "a request header holds characters outside Latin-1") from None
