"""An HTTP/2 server (h2c, prior knowledge) that misbehaves on purpose, one way per path, for
the fault tests: the protocol itself is proven against nginx.

- ``/ok``: 200 "ok"
- ``/reset``: the head, then RST_STREAM INTERNAL_ERROR
- ``/goaway``: GOAWAY INTERNAL_ERROR before any answer
- ``/hang``: the head, then nothing
- ``/uppercase``: a header block with an upper-case field name (malformed in HTTP/2)
- ``/no-status``: a header block without ``:status``
- ``/stream-zero``: a DATA frame on stream 0 (a connection error)
"""

from __future__ import annotations

import asyncio
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events


class _Server(asyncio.Protocol):
    def __init__(self) -> None:
        self.conn = h2.connection.H2Connection(config=h2.config.H2Configuration(
            client_side=False, validate_outbound_headers=False, normalize_outbound_headers=False))
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.conn.initiate_connection()
        self.transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except Exception:  # a test server: whatever the client sent, stop
            self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self._answer(event.stream_id, dict(event.headers).get(b":path", b"/").decode())
        self.transport.write(self.conn.data_to_send())

    def _answer(self, stream: int, path: str) -> None:
        head = [(":status", "200"), ("content-type", "text/plain")]
        if path == "/ok":
            self.conn.send_headers(stream, head)
            self.conn.send_data(stream, b"ok", end_stream=True)
        elif path == "/reset":
            self.conn.send_headers(stream, head)
            self.conn.reset_stream(stream, h2.errors.ErrorCodes.INTERNAL_ERROR)
        elif path == "/goaway":
            self.conn.close_connection(h2.errors.ErrorCodes.INTERNAL_ERROR)
        elif path == "/hang":
            self.conn.send_headers(stream, head)
        elif path == "/uppercase":
            self.conn.send_headers(stream, [*head, ("X-Upper", "yes")], end_stream=True)
        elif path == "/no-status":
            self.conn.send_headers(stream, [("content-type", "text/plain")], end_stream=True)
        elif path == "/stream-zero":
            self.transport.write(self.conn.data_to_send() + b"\x00\x00\x02\x00\x00\x00\x00\x00\x00ok")


async def start(port: int = 0) -> asyncio.Server:
    """The server on 127.0.0.1 (a free port unless given), in the running loop."""
    return await asyncio.get_running_loop().create_server(_Server, "127.0.0.1", port)
