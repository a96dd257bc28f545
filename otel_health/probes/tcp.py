"""TCP probe: connect (optionally TLS), then optionally a dialog: lines sent, lines expected,
an upgrade to TLS (STARTTLS) on the way, as blackbox_exporter's ``query_response`` does.

Each step of ``dialog`` is read as blackbox_exporter reads one of ``query_response``: first its
``expect`` (lines the server sends, each without its ``\n`` and a ``\r`` before it, until one
matches: ``^`` and ``$`` anchor each line, so an IRC welcome after a NOTICE and ``+PONG`` after
``+OK`` are found), then its ``send`` (``${1}`` or ``${name}`` in it replaced by the groups of
that step's match, as Go's ``Regexp.Expand`` does), then its ``starttls``. A last line without a
newline is matched when the server closes the connection; a line past 64 KiB fails the check,
as blackbox_exporter's line reader does. ``send`` and ``expect`` at the top are the one-line
dialog: the send, then the expect."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import Fields, Secret, Target
from ..config.values import is_ip_address
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, host_port
from ._chain import TLS_INFO, ChainReport, record
from ._match import Pattern, PatternError
from ._revocation import StapleAt, TlsProbe, parse_revocation
from ._starttls import LOGINS, PRESETS
from ._tls import client_context, transport_chain

__all__ = ["TcpOptions", "TcpProbe"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]_]{1,253}$")
_MAX_READ = 64 * 1024


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a dialog: expect a line, then send, then upgrade to TLS (each optional)."""

    expect: Pattern | None = None
    send: bytes | None = None
    starttls: bool = False
    expands: bool = False  # the send refers to the expect's groups


@dataclass(frozen=True, slots=True)
class TcpOptions:
    host: str
    port: int
    tls: bool = False
    tls_verify: bool = True
    ca_file: Path | None = None
    server_name: str | None = None
    dialog: tuple[Step, ...] = ()
    ip_protocol: str = "auto"
    source_ip: str | None = None
    starttls: str | None = None  # smtp, imap, pop3, xmpp: the protocol's own upgrade, before the dialog
    username: str | None = None  # a login after the upgrade (smtp, imap, pop3)
    password: Secret | None = None
    check_revocation: str = "off"  # "off", "stapled", "ocsp" (_revocation)
    revocation_unknown: str = "warn"

    @classmethod
    def parse(cls, f: Fields) -> TcpOptions | None:
        host = f.text("host", required=True, pattern=_HOST_RE, hint="use a host name or an IP address")
        port = f.whole("port", 0, minimum=1, maximum=65535)
        if not f.has("port"):
            f.problem("port", "is required: the TCP port to connect to, 1-65535")
        send = f.text("send")
        expect = _pattern(f, "expect", f.text("expect"))
        dialog: list[Step] = []
        if send is not None:
            dialog.append(Step(send=_unescape(send).encode("latin-1", errors="replace")))
        if expect is not None:
            dialog.append(Step(expect=expect))
        steps = list(f.each("dialog"))
        if steps and (send is not None or f.has("expect")):
            f.problem("dialog", "and send or expect are both given; write the send and the expect as steps of dialog")
        tls = f.flag("tls", False)
        preset = f.text("starttls", None, choices=tuple(PRESETS))

        if preset is not None and tls:
            f.problem("starttls", "upgrades a plain connection, but tls: true makes it TLS from the start; keep one")
        for _, step in steps:
            parsed = _step(step)
            if parsed is not None:
                dialog.append(parsed)
            if parsed is not None and parsed.starttls and (tls or preset is not None):
                step.problem("starttls", "is true, but the connection is TLS already (tls: true, or the target's "
                                         "starttls); keep one")
        revocation, unknown = parse_revocation(f, tls or preset is not None or any(s.starttls for s in dialog),
                                               "set tls: true, or starttls")
        options = cls(
            host=host or "",
            port=port,
            tls=tls,
            tls_verify=f.flag("tls_verify", True),
            ca_file=f.path("ca_file"),
            server_name=f.text("server_name"),
            dialog=tuple(dialog),
            ip_protocol=f.text("ip_protocol", "auto", choices=_IP_PROTOCOLS),
            source_ip=f.text("source_ip"),
            starttls=preset,
            username=f.text("username"),
            password=f.secret("password"),
            check_revocation=revocation,
            revocation_unknown=unknown,
        )
        if (options.username is None) != (options.password is None):
            f.problem("username" if options.username is None else "password",
                      "and password (by reference) go together: the login after STARTTLS needs both")
        elif options.username is not None and preset not in LOGINS:
            f.problem("username", f"logs in after STARTTLS, which needs starttls: {', '.join(LOGINS)}")
        elif options.username is not None and options.password is not None:
            if any(c in options.username for c in " \t\r\n\0"):
                f.problem("username", "holds a space or a control character; a login command cannot carry it")
            if any(c in options.password.reveal() for c in "\r\n\0"):
                f.problem("password", "holds a line break; a login command cannot carry it")
        if options.source_ip is not None and not is_ip_address(options.source_ip):
            f.problem("source_ip", f"{options.source_ip[:60]!r} is not an IP address; give one of this host's")
        return options if host and port else None

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.starttls is not None or any(step.starttls for step in self.dialog)

    def secrets(self) -> Iterator[Secret]:
        return iter((self.password,) if self.password is not None else ())

    def where(self) -> str:
        return host_port(self.host, self.port)

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "tls": self.tls, "starttls": self.starttls,
                "username": self.username, "password": self.password.source if self.password else None,
                "ip_protocol": self.ip_protocol, "source_ip": self.source_ip,
                "check_revocation": self.check_revocation, "revocation_unknown": self.revocation_unknown,
                "dialog": [{"expect": s.expect.pattern if s.expect is not None else None, "send": s.send is not None,
                            "starttls": s.starttls} for s in self.dialog]}


def _pattern(f: Fields, name: str, text: str | None, *, captures: bool = False) -> Pattern | None:
    if text is None:
        return None
    try:
        return Pattern(_unescape(text), latin1=True, captures=captures)
    except PatternError as exc:
        f.problem(name, str(exc))
        return None


def _step(f: Fields) -> Step | None:
    send = f.text("send")
    raw = _unescape(send).encode("latin-1", errors="replace") if send is not None else None
    expands = raw is not None and b"$" in raw
    expect = _pattern(f, "expect", f.text("expect"), captures=expands)
    starttls = f.flag("starttls", False)
    f.finish()
    if raw is None and expect is None and not starttls:
        if f.empty:  # a step with other fields has had them named
            f.problem(None, "a step needs expect, send or starttls")
        return None
    if expect is None and re.search(rb"\$\{[A-Za-z0-9_]+\}", raw or b""):  # without an expect, $ is sent as is
        f.problem("send", "refers to a group (${1}), but the step has no expect to take it from; add one")
    return Step(expect=expect, send=raw, starttls=starttls, expands=expands and expect is not None)


def _unescape(text: str) -> str:
    # Lets a YAML plain string say "PING\r\n" without double-quoting rules getting in the way.
    return text.replace("\\r", "\r").replace("\\n", "\n").replace("\\t", "\t")


class TcpProbe(TlsProbe):
    kind = "tcp"
    component_type = "tcp"
    check_name = "connectivity"
    options_type = TcpOptions
    schemes = ("tcp", "tcps")
    info_labels = TLS_INFO

    @classmethod
    def options_from_url(cls, url: str) -> TcpOptions:
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise ValueError("a TCP URL needs a host and a port: tcp://HOST:PORT (tcps:// for TLS)")
        return TcpOptions(host=parts.hostname, port=parts.port, tls=parts.scheme == "tcps")

    async def _check(self, target: Target, attempt: Attempt) -> None:
        o: TcpOptions = target.options
        context = client_context(verify=o.tls_verify, ca_file=o.ca_file) if o.uses_tls else None
        server_name = (o.server_name or o.host) if context else None
        attributes: dict[str, str | int] = {"server.address": o.host, "server.port": o.port,
                                            "network.transport": "tcp"}
        with self.step(attempt, "connect", "connect", attributes):
            reader, writer = await asyncio.open_connection(
                o.host, o.port, ssl=context if o.tls else None, server_hostname=server_name if o.tls else None,
                limit=_MAX_READ, family=_FAMILIES[o.ip_protocol],
                local_addr=(o.source_ip, 0) if o.source_ip is not None else None,
            )
        try:
            if o.tls:
                await self._secured(o, attempt, writer, attributes, direct=True)
            if o.starttls is not None and context is not None:
                with self.step(attempt, "starttls", f"STARTTLS {o.starttls}", attributes):
                    await PRESETS[o.starttls](reader, writer, server_name or o.host)
                    await writer.start_tls(context, server_hostname=server_name)
                await self._secured(o, attempt, writer, attributes)
                if o.username is not None and o.password is not None:
                    with self.step(attempt, "auth", f"{o.starttls.upper()} login",
                                   {**attributes, "user.name": o.username}):
                        await LOGINS[o.starttls](reader, writer, o.username, o.password.reveal())
            if o.dialog:
                with self.step(attempt, "exchange", "exchange", attributes):
                    chain = await self._dialog(o, reader, writer, context, server_name, attempt)
                if chain is not None:
                    await self._judge_revocation(o, attempt, chain, attributes, direct=False)
        finally:
            if writer.get_extra_info("ssl_object") is not None:
                # A TLS goodbye waits for the peer's close_notify, which many servers never send
                # (Exim, Dovecot): the check is over, the connection goes at once.
                writer.transport.abort()
            else:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _secured(self, o: TcpOptions, attempt: Attempt, writer: asyncio.StreamWriter,
                       attributes: dict[str, str | int], *, direct: bool = False) -> None:
        """The connection is TLS now: its chain recorded, the leaf's revocation judged when asked."""
        chain = await record(attempt, transport_chain(writer))
        if chain is not None:
            await self._judge_revocation(o, attempt, chain, attributes, direct=direct)

    async def _judge_revocation(self, o: TcpOptions, attempt: Attempt, chain: ChainReport,
                                attributes: dict[str, str | int], *, direct: bool) -> None:
        if o.check_revocation == "off":
            return
        name = o.server_name or o.host
        # A staple is asked for in a handshake of its own: only where TLS starts with the connection.
        staple_at = StapleAt(o.host, o.port, None if is_ip_address(name) else name) if direct else None
        await self.judge_revocation(attempt, chain, o.check_revocation, o.revocation_unknown, staple_at=staple_at,
                                    proxies=None, attributes=attributes)

    async def _dialog(self, o: TcpOptions, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      context: ssl.SSLContext | None, server_name: str | None, attempt: Attempt
                      ) -> ChainReport | None:
        """The dialog's steps; the chain of a STARTTLS step's upgrade, if one upgraded."""
        chain = None
        for number, step in enumerate(o.dialog, 1):
            line = b""
            if step.expect is not None:
                line = await _expect_line(step.expect, reader, number if len(o.dialog) > 1 else 0)
            if step.send is not None:
                send = step.send
                if step.expands and step.expect is not None:
                    send = step.expect.expand(send, line) or send
                writer.write(send)
                await writer.drain()
            if step.starttls and context is not None:
                await writer.start_tls(context, server_hostname=server_name)
                chain = await record(attempt, transport_chain(writer))
        return chain


_FAMILIES = {"auto": socket.AF_UNSPEC, "ip4": socket.AF_INET, "ip6": socket.AF_INET6}
_IP_PROTOCOLS = tuple(_FAMILIES)


async def _expect_line(expect: Pattern, reader: asyncio.StreamReader, step: int) -> bytes:
    """Lines until one matches ``expect``, which is returned (without its line end); the
    connection closed first is an assertion failure. ``step``: its number in the dialog, or 0."""
    where = f"step {step}: " if step else ""
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:  # closed: a last line needs no newline
            line = exc.partial
            if not line:
                raise ProbeFailure(ErrorType.ASSERTION, f"{where}connection closed before a line matched "
                                                        f"/{_show(expect)}/") from None
        except asyncio.LimitOverrunError:
            raise ProbeFailure(ErrorType.ASSERTION, f"{where}a line of over {_MAX_READ // 1024} KiB came before "
                                                    f"one matched /{_show(expect)}/") from None
        line = line[:-1] if line.endswith(b"\n") else line
        line = line[:-1] if line.endswith(b"\r") else line
        if expect.found(line):
            return line


def _show(pattern: Pattern) -> str:
    return pattern.pattern[:80].encode("unicode_escape").decode("ascii")
