"""HTTP/1.1 on the wire: the request head a check sends (``Connection: close``, absolute form
to a forward proxy) and the answer framed by llhttp (through ``httptools``), read on the
connection the client (``_client``) made. Sans-I/O but for :class:`Exchange`, the asyncio
protocol that feeds the reader.

Framing, the status line, header syntax, chunk sizes and trailers are llhttp's. Where llhttp needs help, the
:class:`ResponseReader` gives it (docs/design.md lists each point, with the
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
import re
import ssl
import time
from collections.abc import Callable
from typing import Any

import httptools

from ..errors import ErrorType, ProbeFailure
from ._codings import ACCEPT_ENCODING
from ._messages import MAX_HEAD_BYTES, MAX_HEAD_FIELDS, Hop, Response, Timings, invalid

__all__ = ["Exchange", "ResponseReader", "no_body", "request_head"]

_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_CUT_SHORT = "server closed the connection without a complete response"


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
                raise invalid("not an HTTP status line")
        self.received += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            if self._raised is not None:
                raise self._raised from None
            if not self.complete:
                raise invalid("the parser stopped") from None
        except httptools.HttpParserUpgrade:
            raise invalid("101 Switching Protocols, but no upgrade was asked for") from None
        except httptools.HttpParserError as exc:
            raise invalid(self._reason(exc)) from None
        if self.head is None and self.received > MAX_HEAD_BYTES:
            raise invalid(f"headers longer than {MAX_HEAD_BYTES} bytes")

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
        self._raised = invalid(what)
        raise self._raised

    def _reason(self, exc: Exception) -> str:
        reason = str(exc) or type(exc).__name__
        parser = self._parser
        if self.head is None and parser is not None and parser.get_status_code() == 0 \
                and reason.startswith("Expected HTTP/"):
            return "not an HTTP status line"
        return reason[:1].lower() + reason[1:]


class Exchange(asyncio.Protocol):
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


def no_body(_: Response) -> Callable[[bytes], bool]:
    return lambda _data: False


def request_head(hop: Hop, *, absolute: bool = False) -> bytes:
    """The request's head on HTTP/1.1: ``absolute`` to a forward proxy (RFC 9112 §3.2.2)."""
    path, authority = hop.target()
    if absolute:
        path = f"{hop.parts.scheme}://{authority}{path}"
    method, headers, body = hop.method, hop.headers, hop.body
    given = {name.lower() for name, _ in headers}
    lines = [f"{method} {path} HTTP/1.1", f"Host: {hop.host_header or authority}"]
    if "accept" not in given:
        lines.append("Accept: */*")
    if hop.read_body and "accept-encoding" not in given:
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
