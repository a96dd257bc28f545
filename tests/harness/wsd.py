"""A WebSocket server for the tests, on the ``websockets`` package's server, plain and TLS, and a
port of hand-made handshakes for what no maintained server would do.

    python -m tests.harness.wsd --port P --tls-port T --cert C --key K --raw-port R

Paths of the websockets servers: ``/echo`` echoes each message (subprotocol ``chat.v1`` when
offered); ``/greet`` says ``hello`` first, then echoes; ``/forbidden`` refuses the upgrade
with 403; ``/crash`` closes with 1011 on the first message; ``/headers`` sends back the
request's ``X-Check`` and ``Authorization`` headers as a message. The raw port: ``/bad-accept``
answers 101 with a wrong ``Sec-WebSocket-Accept``; ``/deaf`` completes the handshake and then
never answers a close; ``/http`` answers ``200 OK`` as a plain web server does."""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import http
import ssl

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def _handler(ws: ServerConnection) -> None:
    path = ws.request.path if ws.request is not None else "/"
    if path == "/greet":
        await ws.send("hello")
    if path == "/headers":
        headers = ws.request.headers if ws.request is not None else {}
        await ws.send(f"x-check={headers.get('X-Check')} authorization={headers.get('Authorization')}")
    async for message in ws:
        if path == "/crash":
            await ws.close(1011, "internal error")
            return
        await ws.send(message)


def _refuse(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/forbidden":
        return connection.respond(http.HTTPStatus.FORBIDDEN, "no\n")
    return None


def _subprotocol(connection: ServerConnection, offered: list[str]) -> str | None:
    return "chat.v1" if "chat.v1" in offered else None


async def _raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    path = head.split(" ", 2)[1]
    key = next((line.split(":", 1)[1].strip() for line in head.split("\r\n")
                if line.lower().startswith("sec-websocket-key:")), "")
    accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
    if path == "/http":
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    else:
        if path == "/bad-accept":
            accept = base64.b64encode(b"x" * 20).decode()
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        await writer.drain()
        while await reader.read(65536):  # /deaf: reads the close frame and never answers it
            pass
    await writer.drain()
    writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-port", type=int, required=True)
    parser.add_argument("--raw-port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    common = {"process_request": _refuse, "select_subprotocol": _subprotocol, "compression": None}
    async with serve(_handler, "127.0.0.1", args.port, **common), \
            serve(_handler, "127.0.0.1", args.tls_port, ssl=context, **common):
        raw = await asyncio.start_server(_raw, "127.0.0.1", args.raw_port)
        async with raw:
            await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
