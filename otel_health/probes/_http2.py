"""The HTTP/2 exchange a health check makes: one request on a connection of its own, framed by
the ``h2`` package (frames, HPACK, flow control, the state of the stream and what a valid
header block is), on the connection :class:`~._client.HttpClient` made: resolving, racing
addresses, a proxy's tunnel and TLS stay that layer's, and so do redirects, caps, content
codings and the timings.

The connection is HTTP/2 when TLS agreed on ``h2`` by ALPN (``http2: true``), or from the
first byte on a plain connection (``http2_prior_knowledge: true``, h2c). What the server
sends is judged as on HTTP/1.1: a malformed frame or header block, a GOAWAY or a stream reset
before the answer is complete each end the check with a named reason; 1xx interim answers are
dropped; a body past the cap is cut there and the stream cancelled; flow control windows are
given back as the body is read, so a body past the server's first window of 64 KiB arrives.

``h2`` (and ``hpack``, ``hyperframe``) are imported when the first HTTP/2 exchange begins.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from ..errors import ErrorType, ProbeFailure
from ._codings import ACCEPT_ENCODING
from ._messages import MAX_HEAD_BYTES, MAX_HEAD_FIELDS, Hop, Response, Timings

__all__ = ["H2Exchange", "h2_headers"]

_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Fields of an HTTP/1.1 connection that HTTP/2 forbids (RFC 9113 §8.2.2); Host becomes :authority.
_CONNECTION_FIELDS = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
                                "host", "te"})
_WINDOW = 1 << 20  # what the probe lets the server send before it gives window back


def _invalid(what: str) -> ProbeFailure:
    return ProbeFailure(ErrorType.PROTOCOL, f"invalid HTTP/2 response: {what}")


class H2Exchange(asyncio.Protocol):
    """One request and its answer over HTTP/2. ``done`` settles when the answer is complete
    (or cut at the cap), or with the reason it cannot be."""

    def __init__(self, headers: list[tuple[str, str]], body: bytes | None, *, head_only: bool,
                 sink: Callable[[Response], Callable[[bytes], bool]], timings: Timings) -> None:
        self._conn = h2.connection.H2Connection(config=h2.config.H2Configuration(
            client_side=True, header_encoding="latin-1", validate_inbound_headers=True,
            normalize_inbound_headers=False))
        self._headers = headers
        self._pending = body or b""  # body bytes the flow control windows have not let out yet
        self._has_body = body is not None
        self._head_only = head_only
        self._sink_for = sink
        self._sink: Callable[[bytes], bool] | None = None
        self._timings = timings
        self._stream = 0
        self._size = 0
        self._received = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.head: Response | None = None
        self.trailers: list[tuple[str, str]] = []
        self.transport: asyncio.Transport | None = None
        self.open: set[Any] | None = None  # the client's connections not yet closed

    def begin(self, transport: asyncio.Transport) -> None:
        """Take over ``transport`` (already TLS when it will be): preface, settings, request."""
        self.transport = transport
        conn = self._conn
        conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEAD_BYTES,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
        })
        conn.initiate_connection()
        conn.increment_flow_control_window(_WINDOW)  # the connection's window, beside the stream's
        self._stream = conn.get_next_available_stream_id()
        conn.send_headers(self._stream, self._headers, end_stream=not self._has_body)
        self._send_body()
        self._flush()

    def finish(self) -> None:
        """Say goodbye (GOAWAY) once the answer is in; the caller closes the transport."""
        if self.transport is not None and not self.transport.is_closing():
            try:
                self._conn.close_connection()
                self._flush()
            except h2.exceptions.ProtocolError:
                pass

    # -- asyncio.Protocol --

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        if not self._received:
            self._received = True
            if data.startswith(b"HTTP/1."):
                # h2 would wait for the rest of a "frame" megabytes long: say what it is instead.
                self._fail(_invalid("the server answered in HTTP/1.1 (it does not speak HTTP/2 here; without "
                                    "TLS, HTTP/2 needs a server that takes it by prior knowledge)"))
                return
        try:
            events = self._conn.receive_data(data)
            for event in events:
                self._on(event)
                if self.done.done():
                    break
        except ProbeFailure as failure:
            self._fail(failure)
        except h2.exceptions.ProtocolError as exc:
            self._fail(_invalid(_said(exc)))
        self._flush()

    def eof_received(self) -> bool:
        self._ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.open is not None:
            self.open.discard(self)
        if exc is not None and not self.done.done():
            self.done.set_exception(exc)
        self._ended()

    # -- what h2 tells --

    def _on(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            self._on_head(event.headers)
            if event.stream_ended is not None:
                self._complete()
        elif isinstance(event, h2.events.DataReceived):
            self._conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if self._sink is not None and event.data and not self._sink(event.data):
                self._complete(cancel=True)  # cut at the cap
            elif event.stream_ended is not None:
                self._complete()
        elif isinstance(event, h2.events.TrailersReceived):
            self.trailers = self._fields(event.headers, "trailer")
            self._complete()
        elif isinstance(event, h2.events.StreamEnded):
            self._complete()
        elif isinstance(event, h2.events.StreamReset):
            code = _code(event.error_code)
            self._fail(ProbeFailure(ErrorType.CONNECTION_RESET, f"the server reset the stream ({code}) "
                                                                "before the answer was complete"))
        elif isinstance(event, h2.events.ConnectionTerminated):
            code = _code(event.error_code)
            if event.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR:
                said = f": {event.additional_data[:100].decode('latin-1')!r}" if event.additional_data else ""
                self._fail(_invalid(f"the server ended the connection saying our side erred (GOAWAY {code}){said}"))
            else:
                self._fail(ProbeFailure(ErrorType.CONNECTION_RESET, f"the server ended the connection (GOAWAY "
                                                                    f"{code}) before the answer was complete"))
        elif isinstance(event, h2.events.WindowUpdated):
            self._send_body()

    def _on_head(self, headers: Any) -> None:  # (str, str) pairs: header_encoding is set
        status_text = next((v for n, v in headers if n == ":status"), "")
        if not status_text.isdigit() or len(status_text) != 3:
            raise _invalid(f"status {status_text[:10]!r}")
        status = int(status_text)
        fields = self._fields(headers, "header")
        self.head = head = Response(status, "2.0", fields)
        if self._timings.headers is None:
            self._timings.headers = time.perf_counter()
        if self._head_only or status in (204, 304):
            self._complete(cancel=True)
            return
        self._sink = self._sink_for(head)

    def _fields(self, headers: Any, what: str) -> list[tuple[str, str]]:
        fields = []
        for name, value in headers:
            self._size += len(name) + len(value) + 32
            if self._size > MAX_HEAD_BYTES:
                raise _invalid(f"headers longer than {MAX_HEAD_BYTES} bytes")
            if name.startswith(":"):
                continue
            if _CTL.search(value):
                raise _invalid(f"control character in the value of {what} {name[:40]!r}")
            fields.append((name, value))
            if len(fields) > MAX_HEAD_FIELDS:
                raise _invalid(f"more than {MAX_HEAD_FIELDS} header fields")
        return fields

    # -- our side --

    def _send_body(self) -> None:
        conn, stream = self._conn, self._stream
        while self._pending:
            try:
                room = min(conn.local_flow_control_window(stream), conn.max_outbound_frame_size)
            except h2.exceptions.StreamClosedError:
                return
            if room <= 0:
                return  # a WINDOW_UPDATE lets more out
            chunk, self._pending = self._pending[:room], self._pending[room:]
            conn.send_data(stream, chunk, end_stream=not self._pending)

    def _complete(self, *, cancel: bool = False) -> None:
        if self.done.done():
            return
        if self.head is None:
            raise _invalid("the stream ended without a response")
        if cancel:
            try:
                self._conn.reset_stream(self._stream, h2.errors.ErrorCodes.CANCEL)
            except h2.exceptions.ProtocolError:
                pass
        self.done.set_result(None)

    def _fail(self, failure: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(failure)

    def _ended(self) -> None:
        if self.done.done():
            return
        what = "without answering" if self.head is None else "before the answer was complete"
        self.done.set_exception(ProbeFailure(ErrorType.CONNECTION_RESET, f"server closed the connection {what}"))

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


def _code(code: Any) -> str:
    return code.name if isinstance(code, h2.errors.ErrorCodes) else str(code)


def _said(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:1].lower() + text[1:200]


def h2_headers(hop: Hop) -> list[tuple[str, str]]:
    """The request's header block for HTTP/2 (RFC 9113 §8.3): the pseudo-headers, then the
    same fields as on HTTP/1.1 in lower case, less those HTTP/2 forbids."""
    path, authority = hop.target()
    out = [(":method", hop.method), (":scheme", "https" if hop.tls else "http"),
           (":authority", hop.host_header or authority), (":path", path)]
    given = {name.lower() for name, _ in hop.headers}
    if "accept" not in given:
        out.append(("accept", "*/*"))
    if hop.read_body and "accept-encoding" not in given:
        out.append(("accept-encoding", ACCEPT_ENCODING))
    for name, value in hop.headers:
        lower = name.lower()
        if lower in _CONNECTION_FIELDS:
            continue
        if "\r" in value or "\n" in value or "\0" in value:
            raise ProbeFailure(ErrorType.PROTOCOL, f"header {name!r} has a line break in its value")
        out.append((lower, value))
    if hop.body is not None:
        if "content-type" not in given:
            out.append(("content-type", "text/plain; charset=utf-8"))
        out.append(("content-length", str(len(hop.body))))
    return out
