"""TCP probe: connect (optionally TLS), optionally send bytes and expect an answer.

``expect`` is matched line by line, as blackbox_exporter's ``query_response`` reads: each line
the server sends (without its ``\n`` and a ``\r`` before it) until one matches, so ``^`` and
``$`` anchor each line (an IRC welcome after a NOTICE, ``+PONG`` after ``+OK``). A last line
without a newline is matched when the server closes the connection; a line past 64 KiB
fails the check, as blackbox_exporter's line reader does."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, Probe, host_port
from ._match import Pattern, PatternError
from ._tls import client_context

__all__ = ["TcpOptions", "TcpProbe"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]_]{1,253}$")
_MAX_READ = 64 * 1024


@dataclass(frozen=True, slots=True)
class TcpOptions:
    host: str
    port: int
    tls: bool = False
    tls_verify: bool = True
    ca_file: Path | None = None
    server_name: str | None = None
    send: bytes | None = None
    expect: Pattern | None = None

    @classmethod
    def parse(cls, f: Fields) -> TcpOptions | None:
        host = f.text("host", required=True, pattern=_HOST_RE, hint="use a host name or an IP address")
        port = f.whole("port", 0, minimum=1, maximum=65535)
        if not f.has("port"):
            f.problem("port", "is required: the TCP port to connect to, 1-65535")
        send = f.text("send")
        expect_text = f.text("expect")
        expect = None
        if expect_text is not None:
            try:
                expect = Pattern(_unescape(expect_text), latin1=True)
            except PatternError as exc:
                f.problem("expect", str(exc))
        options = cls(
            host=host or "",
            port=port,
            tls=f.flag("tls", False),
            tls_verify=f.flag("tls_verify", True),
            ca_file=f.path("ca_file"),
            server_name=f.text("server_name"),
            send=_unescape(send).encode("latin-1", errors="replace") if send is not None else None,
            expect=expect,
        )
        return options if host and port else None

    def secrets(self) -> Iterator[Secret]:
        return iter(())

    def where(self) -> str:
        return host_port(self.host, self.port)

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "tls": self.tls, "send": self.send is not None,
                "expect": self.expect.pattern if self.expect is not None else None}


def _unescape(text: str) -> str:
    # Lets a YAML plain string say "PING\r\n" without double-quoting rules getting in the way.
    return text.replace("\\r", "\r").replace("\\n", "\n").replace("\\t", "\t")


class TcpProbe(Probe):
    kind = "tcp"
    component_type = "tcp"
    check_name = "connectivity"
    options_type = TcpOptions
    schemes = ("tcp", "tcps")

    @classmethod
    def options_from_url(cls, url: str) -> TcpOptions:
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise ValueError("a TCP URL needs a host and a port: tcp://HOST:PORT (tcps:// for TLS)")
        return TcpOptions(host=parts.hostname, port=parts.port, tls=parts.scheme == "tcps")

    async def _check(self, target: Target, attempt: Attempt) -> None:
        o: TcpOptions = target.options
        context = client_context(verify=o.tls_verify, ca_file=o.ca_file) if o.tls else None
        attributes: dict[str, str | int] = {"server.address": o.host, "server.port": o.port,
                                            "network.transport": "tcp"}
        with self.step(attempt, "connect", "connect", attributes):
            reader, writer = await asyncio.open_connection(
                o.host, o.port, ssl=context, server_hostname=(o.server_name or o.host) if context else None,
                limit=_MAX_READ,
            )
        try:
            if o.send is not None or o.expect is not None:
                with self.step(attempt, "exchange", "exchange", attributes):
                    await self._exchange(o, reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _exchange(self, o: TcpOptions, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if o.send is not None:
            writer.write(o.send)
            await writer.drain()
        if o.expect is not None:
            await _expect_line(o.expect, reader)


async def _expect_line(expect: Pattern, reader: asyncio.StreamReader) -> None:
    """Read lines until one matches ``expect``; the connection closed first is an assertion failure."""
    pending = b""
    while True:
        chunk = await reader.read(4096)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop() if chunk else b""  # at the close, the last line needs no newline
        if not chunk and lines and not lines[-1]:
            lines.pop()  # the answer ended with its newline: no line after it
        for line in lines:
            if expect.found(line[:-1] if line.endswith(b"\r") else line):
                return
        if len(pending) > _MAX_READ:
            raise ProbeFailure(ErrorType.ASSERTION, f"a line of over {_MAX_READ // 1024} KiB came before one "
                                                    f"matched /{_show(expect)}/")
        if not chunk:
            raise ProbeFailure(ErrorType.ASSERTION, f"connection closed before a line matched /{_show(expect)}/")


def _show(pattern: Pattern) -> str:
    return pattern.pattern[:80].encode("unicode_escape").decode("ascii")
