"""An HTTP/3 server on aioquic (its own process: ``python -m tests.harness.h3d``), for the http
kind's ``http3: true``: /ok, /status/CODE, /slow?ms=N, /big (2 MiB), /headers (the request's
headers as text), /gzip (a gzip-coded body)."""

from __future__ import annotations

import argparse
import asyncio
import gzip
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated, QuicEvent


class Server(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3: H3Connection | None = None
        self.answering: set[asyncio.Task[None]] = set()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self.h3 = H3Connection(self._quic)
        if self.h3 is None:
            return
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                task = asyncio.ensure_future(self.answer(h3_event.stream_id, dict(h3_event.headers),
                                                         h3_event.headers))
                self.answering.add(task)
                task.add_done_callback(self.answering.discard)

    async def answer(self, stream_id: int, head: dict[bytes, bytes], fields: list[tuple[bytes, bytes]]) -> None:
        assert self.h3 is not None
        url = urlsplit(head.get(b":path", b"/").decode())
        status, body, extra = 200, b"ok\n", [(b"content-type", b"text/plain")]
        if url.path.startswith("/status/"):
            status, body = int(url.path.rsplit("/", 1)[1]), b"as asked\n"
        elif url.path == "/slow":
            await asyncio.sleep(int(parse_qs(url.query).get("ms", ["200"])[0]) / 1000)
        elif url.path == "/big":
            body = b"x" * (2 << 20)
        elif url.path == "/headers":
            body = b"".join(name + b": " + value + b"\n" for name, value in fields if not name.startswith(b":"))
        elif url.path == "/gzip":
            body, extra = gzip.compress(b'{"status": "ok"}'), [(b"content-encoding", b"gzip"),
                                                                (b"content-type", b"application/json")]
        elif url.path != "/ok":
            status, body = 404, b"not here\n"
        self.h3.send_headers(stream_id, [(b":status", str(status).encode()), (b"server", b"h3d"), *extra])
        self.h3.send_data(stream_id, body, end_stream=True)
        self.transmit()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    configuration = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN, max_datagram_frame_size=65536)
    configuration.load_cert_chain(args.cert, args.key)
    await serve("127.0.0.1", args.port, configuration=configuration, create_protocol=Server)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
