"""UDP probe: a datagram sent, an answer expected (and matched), as Gatus's and cloudprober's
UDP checks do: a DNS, NTP, SNMP, memcached or game server's own query, written as text or hex.

The socket is connected to the target's address, so an ICMP port unreachable comes back as
``connection_refused`` (the port is closed) and an ICMP host or network unreachable as
``unreachable``; no answer within the timeout is ``timeout``. The answer is the first datagram
that comes from the target's address (the kernel drops others on a connected socket), at most
64 KiB, matched by RE2 byte by byte (Latin-1)."""

from __future__ import annotations

import asyncio
import binascii
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, Probe, classify_os_error, host_port
from ._match import Pattern, pattern_field

__all__ = ["UdpOptions", "UdpProbe"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]_]{1,253}$")
_FAMILIES = {"auto": socket.AF_UNSPEC, "ip4": socket.AF_INET, "ip6": socket.AF_INET6}
MAX_SEND = 65_507  # bytes of one IPv4 UDP datagram's payload
SHOWN = 64  # bytes of an answer a failure's detail shows


@dataclass(frozen=True, slots=True)
class UdpOptions:
    host: str
    port: int
    send: bytes = b""
    expect: Pattern | None = None
    ip_protocol: str = "auto"
    source_ip: str | None = None

    @classmethod
    def parse(cls, f: Fields) -> UdpOptions | None:
        host = f.text("host", required=True, pattern=_HOST_RE, hint="use a host name or an IP address")
        port = f.whole("port", 0, minimum=1, maximum=65535)
        if not f.has("port"):
            f.problem("port", "is required: the UDP port the datagram goes to, 1-65535")
        text, hexed = f.text("send"), f.text("send_hex")
        payload = b""
        if text is not None and hexed is not None:
            f.problem("send_hex", "and send are both given; write the datagram one way")
        elif text is not None:
            payload = _unescape(text).encode("latin-1", errors="replace")
        elif hexed is not None:
            try:
                payload = binascii.unhexlify(re.sub(r"[\s:]", "", hexed))
            except (binascii.Error, ValueError):
                f.problem("send_hex", "is not hexadecimal bytes; write pairs of hex digits, such as "
                                      "'ffffffff54536f7572636520456e67696e6520517565727900'")
        else:
            f.problem("send", "is required: the datagram to send (send_hex for bytes written in hexadecimal); "
                              "a UDP service answers only what it is asked")
        if len(payload) > MAX_SEND:
            f.problem("send_hex" if hexed is not None else "send",
                      f"is {len(payload)} bytes; a UDP datagram carries at most {MAX_SEND}")
        expect = pattern_field(f, "expect", latin1=True)  # RE2 reads \r, \n, \t and \xNN itself
        options = cls(host=host or "", port=port, send=payload, expect=expect,
                      ip_protocol=f.text("ip_protocol", "auto", choices=tuple(_FAMILIES)) or "auto",
                      source_ip=f.text("source_ip"))
        return options if host else None

    def secrets(self) -> Iterator[Secret]:
        return iter(())  # a datagram names no credential

    def where(self) -> str:
        return f"udp {host_port(self.host, self.port)}"

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "send_bytes": len(self.send),
                "expect": self.expect.pattern if self.expect is not None else None,
                "ip_protocol": self.ip_protocol, "source_ip": self.source_ip}


def _unescape(text: str) -> str:
    """``\\r``, ``\\n``, ``\\t`` and ``\\xNN`` in a plain YAML string: what ``send`` means (the TCP
    kind reads the first three; a UDP query is often binary)."""
    text = text.replace("\\r", "\r").replace("\\n", "\n").replace("\\t", "\t")
    return re.sub(r"\\x([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


class _Answer(asyncio.DatagramProtocol):
    """The first datagram, or the first error the socket reports (an ICMP unreachable)."""

    def __init__(self, future: asyncio.Future[bytes]) -> None:
        self.future = future

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.future.done():
            self.future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self.future.done():
            self.future.set_exception(exc)


def _shown(data: bytes) -> str:
    """The start of an answer, printable: its text where it is text, escapes elsewhere."""
    cut = data[:SHOWN]
    return repr(cut)[2:-1] + ("…" if len(data) > SHOWN else "")


class UdpProbe(Probe):
    kind = "udp"
    component_type = "udp"
    check_name = "connectivity"
    options_type = UdpOptions

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        if isinstance(exc, ConnectionRefusedError):
            return ErrorType.CONNECTION_REFUSED, "the port is closed (an ICMP port unreachable came back)"
        return classify_os_error(exc)

    async def _check(self, target: Target, attempt: Attempt) -> None:
        o: UdpOptions = target.options
        loop = asyncio.get_running_loop()
        attributes: dict[str, str | int] = {"server.address": o.host, "server.port": o.port,
                                            "network.transport": "udp"}
        future: asyncio.Future[bytes] = loop.create_future()
        with self.step(attempt, "connect", "connect", attributes):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Answer(future), remote_addr=(o.host, o.port), family=_FAMILIES[o.ip_protocol],
                local_addr=(o.source_ip, 0) if o.source_ip is not None else None)
        try:
            with self.step(attempt, "exchange", "exchange", attributes) as span:
                transport.sendto(o.send)
                answer = await future
                span.set_attribute("tta.udp.answer_bytes", len(answer))
        finally:
            transport.close()
        if o.expect is not None and not o.expect.found(answer):
            raise ProbeFailure(ErrorType.ASSERTION, f"the answer did not match {o.expect.pattern!r}: "
                                                    f"'{_shown(answer)}' ({len(answer)} bytes)")
