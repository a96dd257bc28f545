"""A DNS server for the tests that answers every A query with 127.0.0.1, slowly for some names.

    python -m tests.harness.slowdns --port 53 --delay 3

Names starting with "slow" are answered after --delay seconds; others at once. AAAA and
other queries get an empty answer. Run inside the test's own network namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import struct


def _qname(packet: bytes) -> tuple[str, int]:
    labels, i = [], 12
    while packet[i]:
        n = packet[i]
        labels.append(packet[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += n + 1
    return ".".join(labels), i + 1


def answer(query: bytes) -> tuple[bytes, str]:
    name, end = _qname(query)
    qtype = struct.unpack("!H", query[end:end + 2])[0]
    question = query[12:end + 4]
    header = query[:2] + struct.pack("!HHHHH", 0x8180, 1, 1 if qtype == 1 else 0, 0, 0)
    body = question
    if qtype == 1:
        body += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([127, 0, 0, 1])
    return header + body, name


class Protocol(asyncio.DatagramProtocol):
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply, name = answer(data)
        delay = self.delay if name.startswith("slow") else 0.0
        asyncio.get_running_loop().call_later(delay, lambda: self.transport and self.transport.sendto(reply, addr))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--delay", type=float, default=3.0)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: Protocol(args.delay), local_addr=("127.0.0.1", args.port))
    print("DNS READY", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
