"""HTTP/3 (RFC 9114) over QUIC (RFC 9000) on aioquic: one request on a connection of its own,
the answer read as the other versions read theirs (head bounded, body decoded and capped).

QUIC brings TLS 1.3 inside its handshake: the check's ``quic`` phase is the handshake (address
resolution included: aioquic resolves), then ``request`` until the head and ``body``. No proxy
(HTTP/3 goes over UDP, which a forward proxy does not carry), no redirect followed: the answer
is judged as it came. The server's certificate is verified as the target's TLS options say.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from ..errors import ErrorType, ProbeFailure
from ._codings import ACCEPT_ENCODING, Body
from ._messages import MAX_HEAD_BYTES, MAX_HEAD_FIELDS, Request, Response, Timings

__all__ = ["fetch"]

_CRYPTO_ERROR = 0x100  # a QUIC error code of 0x100 + n is TLS alert n (RFC 9001, 4.8)
_CERTIFICATE_ALERTS = {42, 43, 44, 45, 46, 48}  # bad, unsupported, revoked, expired, unknown certificate; unknown CA


def _terminated(code: int, reason: str) -> ProbeFailure:
    """Why a QUIC connection ended, as a check's failure."""
    said = reason[:160] or f"error code {code:#x}"
    if _CRYPTO_ERROR <= code < _CRYPTO_ERROR + 0x100:
        alert = code - _CRYPTO_ERROR
        if alert in _CERTIFICATE_ALERTS:
            return ProbeFailure(ErrorType.TLS, f"certificate not accepted: {said}")
        return ProbeFailure(ErrorType.TLS, f"TLS handshake failed in QUIC (alert {alert}): {said}")
    return ProbeFailure(ErrorType.CONNECTION_RESET, f"the QUIC connection was closed ({said})")


@functools.cache
def _client_type() -> Any:
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.events import ConnectionTerminated

    class Client(QuicConnectionProtocol):
        """Sends one request and gathers its answer."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.h3 = H3Connection(self._quic)
            self.stream: int | None = None
            self.head: list[tuple[bytes, bytes]] | None = None
            self.body: Body | None = None
            self.cap = 0
            self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.timings: Timings | None = None
            self.terminated: ProbeFailure | None = None  # why the connection ended, when it did

        def send(self, headers: list[tuple[bytes, bytes]], body: bytes | None, cap: int, timings: Timings) -> None:
            self.stream = self._quic.get_next_available_stream_id()
            self.cap, self.timings = cap, timings
            self.h3.send_headers(self.stream, headers, end_stream=body is None)
            if body is not None:
                self.h3.send_data(self.stream, body, end_stream=True)
            self.transmit()

        def error_received(self, exc: Exception) -> None:
            """The network's word on a datagram (ICMP: nothing listens on that port): the check's end."""
            waiter = self._connected_waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
            self._end(exc)

        def _end(self, error: BaseException | None = None) -> None:
            if not self.done.done():
                if error is None:
                    self.done.set_result(None)
                else:
                    self.done.set_exception(error)
                    self.done.exception()  # said by whoever awaits it, or by the handshake's own failure

        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, ConnectionTerminated):
                self.terminated = _terminated(event.error_code, event.reason_phrase)
                self._end(self.terminated)
                return
            try:
                for h3_event in self.h3.handle_event(event):
                    self._h3_event(h3_event)
            except ProbeFailure as failure:
                self._end(failure)

        def _h3_event(self, event: Any) -> None:
            if getattr(event, "stream_id", None) != self.stream:
                return
            if isinstance(event, HeadersReceived) and self.head is None:
                if self.timings is not None:
                    self.timings.headers = time.perf_counter()
                if len(event.headers) > MAX_HEAD_FIELDS or sum(len(n) + len(v) for n, v in event.headers) > \
                        MAX_HEAD_BYTES:
                    raise ProbeFailure(ErrorType.PROTOCOL, "the answer's head is over its bounds")
                self.head = event.headers
                coding = next((v.decode("latin-1") for n, v in event.headers if n == b"content-encoding"), "")
                self.body = Body(coding.strip().lower(), self.cap)
            elif isinstance(event, DataReceived) and self.body is not None:
                if not self.body(event.data):  # past the cap: the rest is not wanted
                    self._end()
                    return
            if getattr(event, "stream_ended", False):
                if self.body is not None:
                    self.body.finish()
                self._end()

    return Client


async def fetch(request: Request, timings: Timings, extra: tuple[tuple[str, str], ...], *, verify: bool,
                ca_file: Path | None) -> Response:
    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    parts = urlsplit(request.url)
    host, port = parts.hostname or "", parts.port or 443
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN,
                                      server_name=request.server_name or host,
                                      verify_mode=ssl.CERT_REQUIRED if verify else ssl.CERT_NONE)
    if ca_file is not None:
        configuration.load_verify_locations(str(ca_file))
    authority = request.host or parts.netloc.rsplit("@", 1)[-1]
    headers = [(b":method", request.method.encode()), (b":scheme", b"https"), (b":authority", authority.encode()),
               (b":path", (parts.path or "/").encode() + (b"?" + parts.query.encode() if parts.query else b"")),
               (b"accept-encoding", ACCEPT_ENCODING.encode())]
    headers += [(name.lower().encode(), value.encode("latin-1", "replace"))
                for name, value in (*request.headers, *extra) if name.lower() not in ("host", "connection",
                                                                                     "accept-encoding")]
    timings.start = time.perf_counter()
    loop = asyncio.get_running_loop()
    family = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6}.get(request.ip_protocol, socket.AF_UNSPEC)
    address = (await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM))[0]
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _client_type()(QuicConnection(configuration=configuration)), family=address[0],
        local_addr=(request.source_ip, 0) if request.source_ip is not None else None,
        remote_addr=cast(tuple[str, int], address[4][:2] if address[0] == socket.AF_INET else address[4]))
    # connected: the network's refusal (ICMP) reaches the socket
    client: Any = protocol
    try:
        client.connect(address[4])
        await client.wait_connected()
        timings.secured = time.perf_counter()
        client.send(headers, request.body, request.max_body if request.read_body else 0, timings)
        await client.done
        timings.done = time.perf_counter()
        head, body = client.head or [], client.body
        tls = client._quic.tls
        chain = [c for c in (getattr(tls, "_peer_certificate", None), *getattr(tls, "_peer_certificate_chain", ()))
                 if c is not None]
    except ConnectionError:
        if client.terminated is not None:
            raise client.terminated from None
        raise
    finally:
        # CONNECTION_CLOSE goes out now (a datagram sent at once); no check waits for the closing
        # handshake: its answer is in, or its time is up
        client.close()
        transport.close()
    status = next((v for n, v in head if n == b":status"), b"")
    if not status.isdigit():
        raise ProbeFailure(ErrorType.PROTOCOL, "the answer has no :status")
    from cryptography.hazmat.primitives.serialization import Encoding

    return Response(
        status=int(status), version="3.0",
        fields=[(n.decode("latin-1"), v.decode("latin-1").strip()) for n, v in head if not n.startswith(b":")],
        body=bytes(body.out) if body is not None else b"", truncated=bool(body and body.cut),
        peer_chain=tuple(c.public_bytes(Encoding.DER) for c in chain), url=request.url, tls=True,
        undecodable=body.undecodable if body is not None else None,
    )
