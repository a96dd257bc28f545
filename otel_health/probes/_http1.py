"""A small HTTP/1.1 client: one request on a fresh connection, as a health check makes it.

A general client pays for what a check never uses (pools, cookie jars, streaming
payload objects, hooks); measured on a loop of 400 GETs a second, aiohttp's client costs
2.6 times a bare protocol doing the same exchange (``benchmarks/http_clients.py``). This
one does the exchange and no more: resolve (cached, on threads of its own), connect
(TLS by the standard library), write one request, parse the status line and headers, and
read the body only when an assertion needs it, framed by Content-Length, chunked transfer
coding or the end of the connection, decoded from gzip or deflate, and capped.

Every malformed answer becomes a :class:`~otel_health.errors.ProbeFailure` of type
``protocol``; an answer cut short, ``connection_reset``. Nothing here knows of spans or
metrics: the HTTP probe draws those around it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import ssl
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from ..errors import ErrorType, ProbeFailure
from ._dns import DNS_THREADS, DaemonPool

__all__ = ["MAX_HEAD_BYTES", "MAX_REDIRECTS", "Http1Client", "Names", "Response"]

MAX_HEAD_BYTES = 65536
MAX_REDIRECTS = 10
_DNS_TTL = 10.0
_HIGH_WATER = 1 << 20
_TLS_GOODBYE = 2.0
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) ([1-9]\d\d)(?:[ \t][^\r\n]*)?")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NO_BODY = frozenset({204, 304})
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


def _invalid(what: str) -> ProbeFailure:
    return ProbeFailure(ErrorType.PROTOCOL, f"invalid HTTP response: {what}")


_CUT_SHORT = "server closed the connection without a complete response"
_LITERALS: dict[str, int | None] = {}  # host -> address family, None for a name


@dataclass(slots=True)
class Response:
    status: int
    version: str                   # "1.1", "1.0"
    headers: dict[str, str]        # lower-case names; repeated headers joined with ", "
    body: bytes                    # decoded, at most the cap; empty unless asked for
    truncated: bool = False        # the body went past the cap and was cut there
    peer_cert: bytes | None = None  # DER of the last TLS peer, also with verification off


class Names:
    """getaddrinfo on a pool of daemon threads, each name cached for 10 s and looked up once
    at a time however many checks ask for it (a slow DNS server costs those checks their
    timeouts and nothing else: the loop's default pool, and the scrape, never wait on it)."""

    def __init__(self, threads: int = DNS_THREADS, ttl: float = _DNS_TTL) -> None:
        self._pool = DaemonPool(threads, "otel-health-dns")
        self._ttl = ttl
        self._cache: dict[tuple[str, int], tuple[float, list[tuple[int, Any]]]] = {}
        self._pending: dict[tuple[str, int], asyncio.Future[list[tuple[int, Any]]]] = {}

    @staticmethod
    def literal(host: str) -> int | None:
        """The address family when ``host`` is an IP address, else None."""
        family = _LITERALS.get(host, -1)
        if family == -1:
            try:
                family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
            except ValueError:
                family = None
            if len(_LITERALS) >= 4096:
                _LITERALS.clear()
            _LITERALS[host] = family
        return family

    async def resolve(self, host: str, port: int) -> list[tuple[int, Any]]:
        key = (host, port)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        lookup = self._pending.get(key)
        if lookup is None:
            # The lookup is a task of its own: a check that times out leaves it running,
            # and its answer lands in the cache for the next check.
            lookup = asyncio.ensure_future(self._lookup(key))
            self._pending[key] = lookup
            lookup.add_done_callback(functools.partial(self._settled, key))
        return await asyncio.shield(lookup)

    def _settled(self, key: tuple[str, int], lookup: asyncio.Future[Any]) -> None:
        self._pending.pop(key, None)
        if not lookup.cancelled():
            lookup.exception()  # retrieved here: every check that asked may have timed out

    async def _lookup(self, key: tuple[str, int]) -> list[tuple[int, Any]]:
        loop = asyncio.get_running_loop()
        infos = await loop.run_in_executor(self._pool, socket.getaddrinfo, key[0], key[1], 0, socket.SOCK_STREAM)
        addresses = _unique([(info[0], info[4]) for info in infos])
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "no address")
        now = time.monotonic()
        if len(self._cache) >= 4096:
            self._expire(now)
        self._cache[key] = (now + self._ttl, addresses)
        return addresses

    def _expire(self, now: float) -> None:
        for key in [k for k, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[key]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _unique(addresses: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    seen: set[Any] = set()
    out = []
    for family, sockaddr in addresses:
        if sockaddr not in seen:
            seen.add(sockaddr)
            out.append((family, sockaddr))
    return out


class _Connection(asyncio.Protocol):
    """Bytes as they arrive, and a way to wait for more."""

    __slots__ = ("_waiter", "buffer", "eof", "error", "paused", "transport")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.paused = False
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def more(self) -> None:
        """Wait for more bytes; raise when the peer has gone before they came."""
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        if self.eof:
            if self.error is not None:
                raise self.error
            raise ProbeFailure(ErrorType.CONNECTION_RESET, _CUT_SHORT)
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if not self.buffer and self.eof:
            if self.error is not None:
                raise self.error
            raise ProbeFailure(ErrorType.CONNECTION_RESET, _CUT_SHORT)

    def take(self, n: int) -> bytes:
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    async def line(self, limit: int, what: str) -> bytes:
        """One CRLF-terminated line, without its ending."""
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end >= 0:
                data = self.take(end + 1)
                return data[:-2] if data.endswith(b"\r\n") else data[:-1]
            if len(self.buffer) > limit:
                raise _invalid(f"{what} longer than {limit} bytes")
            start = len(self.buffer)
            await self.more()


@dataclass(slots=True)
class _Head:
    status: int
    version: str
    headers: dict[str, str]


class Http1Client:
    """One request per connection, redirects followed, the body read only on demand."""

    def __init__(self, names: Names | None = None) -> None:
        self.names = names or Names()

    def close(self) -> None:
        self.names.close()

    async def fetch(
        self,
        url: str,
        method: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        *,
        context: Callable[[], ssl.SSLContext],
        follow_redirects: bool,
        read_body: bool,
        max_body: int,
        marks: dict[str, float],
        private: frozenset[str] = _SECRET_HEADERS,
    ) -> Response:
        """The response to ``method url``, after at most ten redirects when following them.

        ``marks`` gets perf_counter stamps: dns_start/dns_end (names only), connect_start,
        connect_end, headers, body_end. ``context`` is called for https URLs only. Headers
        named in ``private`` (lower case) are not sent on past a redirect to another origin.
        """
        peer_cert = None
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            response = await self._once(parts, method, headers, body, context, follow_redirects, read_body,
                                        max_body, marks)
            peer_cert = response.peer_cert or peer_cert
            response.peer_cert = peer_cert
            location = response.headers.get("location")
            if not (follow_redirects and response.status in _REDIRECTS and location):
                return response
            target = urljoin(url, location.strip())
            new = urlsplit(target)
            if new.scheme not in ("http", "https") or not new.hostname:
                raise _invalid("redirect to a location that is not an http(s) URL")
            if _origin(new) != _origin(parts):
                # Credentials go to the origin they were configured for, never further.
                headers = [(k, v) for k, v in headers if k.lower() not in private]
            if (response.status == 303 and method != "HEAD") or (
                    response.status in (301, 302) and method == "POST"):
                method, body = "GET", None
            url = target
            for mark in ("dns_start", "dns_end", "headers", "body_end"):
                marks.pop(mark, None)
        raise ProbeFailure(ErrorType.PROTOCOL, f"too many redirects (more than {MAX_REDIRECTS})")

    async def _once(self, parts: Any, method: str, headers: list[tuple[str, str]], body: bytes | None,
                    context: Callable[[], ssl.SSLContext], follow_redirects: bool, read_body: bool,
                    max_body: int, marks: dict[str, float]) -> Response:
        host = parts.hostname or ""
        tls = parts.scheme == "https"
        try:
            port = parts.port or (443 if tls else 80)
        except ValueError:
            raise ProbeFailure(ErrorType.UNKNOWN, "invalid port in the URL") from None
        request = _request_head(method, parts, host, port, tls, headers, body, read_body)
        marks["connect_start"] = time.perf_counter()
        family = Names.literal(host)
        if family is None:
            marks["dns_start"] = marks["connect_start"]
            try:
                addresses = await self.names.resolve(host, port)
            except socket.gaierror:
                raise ProbeFailure(ErrorType.DNS, "name resolution failed") from None
            except UnicodeError:
                raise ProbeFailure(ErrorType.DNS, "the host name cannot be encoded for DNS") from None
            marks["dns_end"] = time.perf_counter()
        else:
            addresses = [(family, (host, port))]
        conn = await _connect(addresses, context() if tls else None, host if family is None else None)
        marks["connect_end"] = time.perf_counter()
        transport = conn.transport
        assert transport is not None
        complete = False
        try:
            peer_cert = None
            if tls:
                ssl_object = transport.get_extra_info("ssl_object")
                peer_cert = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            transport.write(request + body if body else request)
            head = await _read_head(conn)
            marks["headers"] = time.perf_counter()
            response = Response(head.status, head.version, head.headers, b"", peer_cert=peer_cert)
            redirect = follow_redirects and head.status in _REDIRECTS and "location" in head.headers
            if read_body and not redirect and method != "HEAD" and head.status not in _NO_BODY:
                response.body, response.truncated = await _read_body(conn, head, max_body)
            marks["body_end"] = time.perf_counter()
            complete = True
            return response
        finally:
            if complete:
                transport.close()
            else:
                transport.abort()


async def _connect(addresses: list[tuple[int, Any]], context: ssl.SSLContext | None,
                   server_hostname: str | None) -> _Connection:
    """A connection to the first address that takes one; the last failure if none does."""
    loop = asyncio.get_running_loop()
    error: BaseException | None = None
    for family, sockaddr in addresses:
        conn = _Connection()
        try:
            if context is None:
                await loop.create_connection(_returning(conn), sockaddr[0], sockaddr[1], family=family)
            else:
                # After the answer, the TLS goodbye gets 2 s; a peer that never sends its own
                # must not hold the socket for the default 30.
                await loop.create_connection(_returning(conn), sockaddr[0], sockaddr[1], family=family, ssl=context,
                                             server_hostname=server_hostname, ssl_shutdown_timeout=_TLS_GOODBYE)
            return conn
        except (OSError, ssl.SSLError) as exc:
            error = exc
            if isinstance(exc, ssl.SSLError):
                break  # the server answered; another address would not make the certificate better
    assert error is not None
    raise error


def _origin(parts: Any) -> tuple[str, str, int | None]:
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port


def _returning(conn: _Connection) -> Callable[[], _Connection]:
    return lambda: conn


def _request_head(method: str, parts: Any, host: str, port: int, tls: bool, headers: list[tuple[str, str]],
                  body: bytes | None, read_body: bool) -> bytes:
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_QUERY_SAFE)
    try:
        authority = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise ProbeFailure(ErrorType.DNS, "the host name cannot be encoded for DNS") from None
    if ":" in authority:
        authority = f"[{authority}]"
    if port != (443 if tls else 80):
        authority += f":{port}"
    given = {name.lower() for name, _ in headers}
    lines = [f"{method} {path} HTTP/1.1", f"Host: {authority}"]
    if "accept" not in given:
        lines.append("Accept: */*")
    if read_body and "accept-encoding" not in given:
        lines.append("Accept-Encoding: gzip, deflate")
    for name, value in headers:
        if name.lower() in ("host", "connection", "content-length", "transfer-encoding"):
            continue
        if "\r" in value or "\n" in value:
            raise ProbeFailure(ErrorType.UNKNOWN, f"header {name!r} has a line break in its value")
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
        raise ProbeFailure(ErrorType.UNKNOWN, "a header holds characters outside Latin-1") from None


def _head_end(buffer: bytearray) -> tuple[int, int]:
    """Where the head ends and the length of the blank line that ends it; (-1, 0) if not yet.
    Lines end in CRLF; a bare LF is taken too, as RFC 9112 allows."""
    crlf = buffer.find(b"\r\n\r\n")
    lf = buffer.find(b"\n\n")
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, 2
    return crlf, (4 if crlf >= 0 else 0)


async def _read_head(conn: _Connection) -> _Head:
    """Status line and headers; 1xx interim answers are skipped."""
    while True:
        end, blank = _head_end(conn.buffer)
        while end < 0:
            if len(conn.buffer) > MAX_HEAD_BYTES:
                raise _invalid(f"headers longer than {MAX_HEAD_BYTES} bytes")
            if not b"HTTP/".startswith(conn.buffer[:5]):
                raise _invalid("not an HTTP status line")  # another protocol: no need to wait for more
            await conn.more()
            end, blank = _head_end(conn.buffer)
        if end > MAX_HEAD_BYTES:
            raise _invalid(f"headers longer than {MAX_HEAD_BYTES} bytes")
        raw = conn.take(end + blank)
        head = raw[:end]
        lines = head.split(b"\r\n")
        if blank == 2 or head.count(b"\n") != len(lines) - 1:
            lines = [line.removesuffix(b"\r") for line in head.split(b"\n")]
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise _invalid("not an HTTP status line")
        status = int(match.group(3))
        version = f"{match.group(1).decode()}.{match.group(2).decode()}"
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip() or b" " in name:
                raise _invalid("malformed header line")
            key = name.decode("latin-1").lower()
            text = value.strip(b" \t").decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        if 100 <= status < 200 and status != 101:
            continue
        return _Head(status, version, headers)


async def _read_body(conn: _Connection, head: _Head, cap: int) -> tuple[bytes, bool]:
    """The body, decoded and cut at ``cap`` bytes; True when it was cut."""
    encoding = head.headers.get("content-encoding", "").strip().lower()
    decoder = _decoder(encoding)
    out = bytearray()
    cut = False

    def add(data: bytes) -> bool:
        nonlocal cut
        if decoder is not None:
            try:
                data = decoder.decompress(data, cap + 1 - len(out))
            except zlib.error:
                raise _invalid(f"body is not valid {encoding}") from None
        out.extend(data)
        if len(out) > cap:
            cut = True
            del out[cap:]
            return False
        return True

    transfer = head.headers.get("transfer-encoding", "").lower()
    if transfer:
        if transfer.rsplit(",", 1)[-1].strip() != "chunked":
            raise _invalid(f"unsupported transfer coding {transfer[:40]!r}")
        await _chunked(conn, add)
    elif "content-length" in head.headers:
        await _exactly(conn, _content_length(head.headers["content-length"]), add)
    else:
        while True:
            if conn.buffer and not add(conn.take(len(conn.buffer))):
                break
            if conn.eof:
                if conn.error is not None and not isinstance(conn.error, ssl.SSLError):
                    raise conn.error
                break
            try:
                await conn.more()
            except ProbeFailure:
                break  # the end of the connection is the end of this body
    if decoder is not None and not cut:
        try:
            out.extend(decoder.flush())  # what the decoder still holds, already decoded
        except zlib.error:
            raise _invalid(f"body is not valid {encoding}") from None
        if len(out) > cap:
            cut = True
            del out[cap:]
    return bytes(out), cut


def _content_length(value: str) -> int:
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1:
        raise _invalid("conflicting Content-Length headers")
    text = values.pop()
    if not text.isdigit() or len(text) > 18:
        raise _invalid("Content-Length is not a number")
    return int(text)


async def _exactly(conn: _Connection, size: int, add: Callable[[bytes], bool]) -> bool:
    """Hand ``size`` bytes to ``add`` as they come; False as soon as ``add`` wants no more."""
    remaining = size
    while remaining > 0:
        if not conn.buffer:
            await conn.more()
        data = conn.take(min(remaining, len(conn.buffer)))
        remaining -= len(data)
        if not add(data):
            return False
    return True


async def _chunked(conn: _Connection, add: Callable[[bytes], bool]) -> None:
    while True:
        size_line = await conn.line(4096, "chunk size line")
        size_text = size_line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _invalid("bad chunk size") from None
        if size_text[:1] in (b"+", b"-") or size < 0:
            raise _invalid("bad chunk size")
        if size == 0:
            while await conn.line(8192, "trailer line"):
                pass
            return
        if not await _exactly(conn, size, add):
            return
        if await conn.line(2, "chunk ending") != b"":
            raise _invalid("chunk not followed by CRLF")


class _Deflate:
    """zlib-wrapped deflate as the RFC says, or raw deflate as some servers send it."""

    def __init__(self) -> None:
        self._inner: zlib._Decompress | None = None

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            raw = not (len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0)
            self._inner = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        return self._inner.decompress(data, max(max_length, 1))

    def flush(self) -> bytes:
        return self._inner.flush() if self._inner is not None else b""


class _Gzip:
    def __init__(self) -> None:
        self._inner = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def decompress(self, data: bytes, max_length: int) -> bytes:
        return self._inner.decompress(data, max(max_length, 1))

    def flush(self) -> bytes:
        return self._inner.flush()


def _decoder(encoding: str) -> _Gzip | _Deflate | None:
    if encoding in ("gzip", "x-gzip"):
        return _Gzip()
    if encoding == "deflate":
        return _Deflate()
    if encoding in ("", "identity"):
        return None
    raise _invalid(f"unsupported content coding {encoding[:40]!r}")
