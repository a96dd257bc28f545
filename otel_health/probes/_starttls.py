"""A protocol's own way to TLS (``starttls: smtp``, ``imap``, ``pop3`` on a TCP target): the
greeting, the server's word that it offers STARTTLS, the command and its go-ahead, each read as
its RFC says. The caller upgrades the connection once a preset returns; a server that is not
the protocol is ``protocol``, one that does not offer STARTTLS or refuses it ``assertion``,
each naming what it said.

- SMTP (RFC 5321, 3207): a 220 greeting, ``EHLO`` answered 250 with a ``STARTTLS`` line,
  ``STARTTLS`` answered 220. Replies of several lines (``250-``) are read to their last line.
- IMAP (RFC 9051, 3501): an ``* OK`` greeting, ``STARTTLS`` among the capabilities (the
  greeting's, else ``CAPABILITY``'s), ``STARTTLS`` answered ``OK``.
- POP3 (RFC 1939, 2595): a ``+OK`` greeting, ``STLS`` among ``CAPA``'s lines (a server without
  ``CAPA`` is asked anyway), ``STLS`` answered ``+OK``.
- XMPP (RFC 6120): a client stream to the domain (the target's ``server_name``, else its host),
  ``<starttls/>`` among the stream's features, ``<starttls/>`` answered ``<proceed/>``. The
  stream is read by the standard library's XML pull parser (expat), at most 64 KiB of it.

With a username and password, a login over the upgraded connection (``LOGINS``): SMTP's AUTH
(PLAIN, else LOGIN) after a new EHLO, IMAP's AUTHENTICATE PLAIN (else LOGIN), POP3's USER and
PASS. A refused login is ``auth``; the server saying it cannot check one now (SMTP 4xx, IMAP
``[UNAVAILABLE]``, POP3 ``[SYS/TEMP]``) is ``unavailable``; no way to log in offered,
``assertion``.
"""

from __future__ import annotations

import asyncio
import base64
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, cast
from xml.sax.saxutils import quoteattr

from ..errors import ErrorType, ProbeFailure

__all__ = ["LOGINS", "PRESETS"]

_MAX_LINES = 200  # lines of one reply: a server that never ends one is not waited for past it
_HELLO = "otel-health"


async def _line(reader: asyncio.StreamReader, protocol: str) -> str:
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        said = f" after {_shown(exc.partial.decode('latin-1'))}" if exc.partial else ""
        raise ProbeFailure(ErrorType.CONNECTION_RESET, f"{protocol}: the server closed the connection{said}") from None
    except asyncio.LimitOverrunError:
        raise ProbeFailure(ErrorType.PROTOCOL, f"{protocol}: a line of over 64 KiB; not a {protocol} server") from None
    return raw.decode("latin-1").rstrip("\r\n")


def _shown(line: str) -> str:
    return repr(line[:80])


def _send(writer: asyncio.StreamWriter, command: str) -> None:
    writer.write(command.encode("ascii") + b"\r\n")


async def _smtp_reply(reader: asyncio.StreamReader) -> tuple[str, list[str]]:
    """A reply's code and its lines (``250-a``, ``250-b``, ``250 c``)."""
    lines: list[str] = []
    while len(lines) < _MAX_LINES:
        line = await _line(reader, "smtp")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return line[:3], lines
    raise ProbeFailure(ErrorType.PROTOCOL, f"smtp: a reply of over {_MAX_LINES} lines")


async def smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    code, lines = await _smtp_reply(reader)
    if code != "220":
        kind = ErrorType.PROTOCOL if not code.isdigit() else ErrorType.ASSERTION
        raise ProbeFailure(kind, f"smtp: the greeting is {_shown(lines[-1])}, not 220")
    _send(writer, f"EHLO {_HELLO}")
    code, lines = await _smtp_reply(reader)
    if code != "250":
        raise ProbeFailure(ErrorType.ASSERTION, f"smtp: EHLO was answered {_shown(lines[-1])}")
    extensions = [line[4:].split()[0].upper() for line in lines[1:] if line[4:].split()]  # the first: hello
    if "STARTTLS" not in extensions:
        raise ProbeFailure(ErrorType.ASSERTION, "smtp: the server does not offer STARTTLS (its EHLO extensions: "
                                                f"{', '.join(extensions)[:120] or 'none'})")
    _send(writer, "STARTTLS")
    code, lines = await _smtp_reply(reader)
    if code != "220":
        raise ProbeFailure(ErrorType.ASSERTION, f"smtp: STARTTLS was answered {_shown(lines[-1])}")


def _imap_capabilities(line: str) -> set[str]:
    upper = line.upper()
    if upper.startswith("* CAPABILITY "):
        return set(upper.split()[2:])
    start = upper.find("[CAPABILITY ")
    if start < 0:
        return set()
    return set(upper[start + 1:upper.find("]", start)].split()[1:])


async def _imap_tagged(reader: asyncio.StreamReader, tag: str) -> tuple[str, list[str]]:
    """The lines up to the one that starts with ``tag``, and that line's status (OK, NO, BAD)."""
    lines: list[str] = []
    while len(lines) < _MAX_LINES:
        line = await _line(reader, "imap")
        lines.append(line)
        if line.startswith(f"{tag} "):
            return (line[len(tag) + 1:].split() or [""])[0].upper(), lines
    raise ProbeFailure(ErrorType.PROTOCOL, f"imap: no answer to {tag} in {_MAX_LINES} lines")


async def imap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    greeting = await _line(reader, "imap")
    if not greeting.upper().startswith("* OK"):
        kind = ErrorType.ASSERTION if greeting.startswith("* ") else ErrorType.PROTOCOL
        raise ProbeFailure(kind, f"imap: the greeting is {_shown(greeting)}, not * OK")
    capabilities = _imap_capabilities(greeting)
    if "STARTTLS" not in capabilities:
        _send(writer, "a1 CAPABILITY")
        status, lines = await _imap_tagged(reader, "a1")
        for line in lines:
            capabilities |= _imap_capabilities(line)
        if status != "OK" or "STARTTLS" not in capabilities:
            raise ProbeFailure(ErrorType.ASSERTION, "imap: the server does not offer STARTTLS (capabilities: "
                                                    f"{' '.join(sorted(capabilities))[:120]})")
    _send(writer, "a2 STARTTLS")
    status, lines = await _imap_tagged(reader, "a2")
    if status != "OK":
        raise ProbeFailure(ErrorType.ASSERTION, f"imap: STARTTLS was answered {_shown(lines[-1])}")


async def pop3(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    greeting = await _line(reader, "pop3")
    if not greeting.startswith("+OK"):
        kind = ErrorType.ASSERTION if greeting.startswith("-ERR") else ErrorType.PROTOCOL
        raise ProbeFailure(kind, f"pop3: the greeting is {_shown(greeting)}, not +OK")
    _send(writer, "CAPA")
    answer = await _line(reader, "pop3")
    if answer.startswith("+OK"):
        capabilities: list[str] = []
        while len(capabilities) < _MAX_LINES:
            line = await _line(reader, "pop3")
            if line == ".":
                break
            capabilities.append(line.split()[0].upper() if line.split() else "")
        if "STLS" not in capabilities:
            raise ProbeFailure(ErrorType.ASSERTION, "pop3: the server does not offer STLS (capabilities: "
                                                    f"{' '.join(capabilities)[:120]})")
    _send(writer, "STLS")
    answer = await _line(reader, "pop3")
    if not answer.startswith("+OK"):
        raise ProbeFailure(ErrorType.ASSERTION, f"pop3: STLS was answered {_shown(answer)}")


_STREAMS = "http://etherx.jabber.org/streams"
_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
_MAX_XML = 64 * 1024


class _XmppStream:
    """The server's side of the stream, parsed as it comes; ``element`` waits for the next
    complete element at the stream's top level (depth counted across waits)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.read = 0

    def _events(self) -> list[tuple[str, Any]]:
        try:  # a parse error is raised here, by the events after it (feed queues it)
            return list(cast("Iterator[tuple[str, Any]]", self.parser.read_events()))
        except ET.ParseError as exc:
            raise ProbeFailure(ErrorType.PROTOCOL, f"xmpp: not an XML stream ({exc})") from None

    async def element(self, wanted: set[str]) -> ET.Element:
        while True:
            for event, found in self._events():
                if not isinstance(found, ET.Element):
                    continue
                if event == "start":
                    self.depth += 1
                    continue
                self.depth -= 1
                if found.tag == f"{{{_STREAMS}}}error":
                    said = [child.tag.rsplit("}", 1)[-1] for child in found if not child.tag.endswith("}text")]
                    raise ProbeFailure(ErrorType.ASSERTION, f"xmpp: the server ended the stream "
                                                            f"({', '.join(said) or 'error'})")
                if found.tag in wanted and self.depth == 1:
                    return found
            chunk = await self.reader.read(4096)
            self.read += len(chunk)
            if not chunk:
                raise ProbeFailure(ErrorType.CONNECTION_RESET, "xmpp: the server closed the connection")
            if self.read > _MAX_XML:
                raise ProbeFailure(ErrorType.PROTOCOL, f"xmpp: over {_MAX_XML // 1024} KiB before the answer")
            try:
                self.parser.feed(chunk)
            except ET.ParseError as exc:  # raised by feed too, when its events were read
                raise ProbeFailure(ErrorType.PROTOCOL, f"xmpp: not an XML stream ({exc})") from None


async def xmpp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, domain: str) -> None:
    stream = _XmppStream(reader)
    writer.write(f"<?xml version='1.0'?><stream:stream to={quoteattr(domain)} version='1.0' xmlns='jabber:client' "
                 f"xmlns:stream='{_STREAMS}'>".encode())
    features = await stream.element({f"{{{_STREAMS}}}features"})
    offered = [child.tag.rsplit("}", 1)[-1] for child in features]
    if features.find(f"{{{_TLS}}}starttls") is None:
        raise ProbeFailure(ErrorType.ASSERTION, "xmpp: the server does not offer STARTTLS (its stream features: "
                                                f"{', '.join(offered)[:120] or 'none'})")
    writer.write(f"<starttls xmlns='{_TLS}'/>".encode())
    answer = await stream.element({f"{{{_TLS}}}proceed", f"{{{_TLS}}}failure"})
    if answer.tag.endswith("failure"):
        raise ProbeFailure(ErrorType.ASSERTION, "xmpp: STARTTLS was answered <failure/>")


def _plain(username: str, password: str) -> str:
    """SASL PLAIN's initial response (RFC 4616): no authorization identity, the user, the password."""
    return base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")


async def smtp_login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, username: str, password: str) -> None:
    """EHLO again over TLS (RFC 3207: what was said before is forgotten), then AUTH (RFC 4954):
    PLAIN, else LOGIN; 235 is a login."""
    _send(writer, f"EHLO {_HELLO}")
    code, lines = await _smtp_reply(reader)
    if code != "250":
        raise ProbeFailure(ErrorType.ASSERTION, f"smtp: EHLO over TLS was answered {_shown(lines[-1])}")
    offered = next((line[4:].upper().split()[1:] for line in lines[1:] if line[4:].upper().startswith("AUTH")), [])
    if "PLAIN" in offered:
        _send(writer, f"AUTH PLAIN {_plain(username, password)}")
    elif "LOGIN" in offered:
        _send(writer, "AUTH LOGIN")
        for value in (username, password):
            code, lines = await _smtp_reply(reader)
            if code != "334":
                break
            _send(writer, base64.b64encode(value.encode()).decode("ascii"))
    else:
        raise ProbeFailure(ErrorType.ASSERTION, "smtp: the server offers no AUTH PLAIN or LOGIN over TLS (AUTH: "
                                                f"{' '.join(offered)[:80] or 'none'})")
    code, lines = await _smtp_reply(reader)
    if code == "235":
        return
    kind = ErrorType.UNAVAILABLE if code.startswith("4") else ErrorType.AUTH
    raise ProbeFailure(kind, f"smtp: the login was answered {_shown(lines[-1])}")


async def imap_login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, username: str, password: str) -> None:
    """CAPABILITY again over TLS, then AUTHENTICATE PLAIN (RFC 9051), else LOGIN; a tagged OK
    is a login, NO [UNAVAILABLE] the server's trouble, NO a refusal."""
    _send(writer, "a3 CAPABILITY")
    status, lines = await _imap_tagged(reader, "a3")
    capabilities: set[str] = set()
    for line in lines:
        capabilities |= _imap_capabilities(line)
    if "AUTH=PLAIN" in capabilities:
        _send(writer, "a4 AUTHENTICATE PLAIN")
        go_on = await _line(reader, "imap")
        if not go_on.startswith("+"):
            raise ProbeFailure(ErrorType.ASSERTION, f"imap: AUTHENTICATE PLAIN was answered {_shown(go_on)}")
        _send(writer, _plain(username, password))
    elif "LOGINDISABLED" not in capabilities and f"{username}{password}".isascii() \
            and not any(c in f"{username}{password}" for c in '"\\\r\n'):
        _send(writer, f'a4 LOGIN "{username}" "{password}"')
    else:
        raise ProbeFailure(ErrorType.ASSERTION, "imap: the server offers no AUTH=PLAIN over TLS, and LOGIN is "
                                                "disabled or cannot carry these credentials (quotes, non-ASCII)")
    status, lines = await _imap_tagged(reader, "a4")
    if status == "OK":
        return
    kind = ErrorType.UNAVAILABLE if "[UNAVAILABLE]" in lines[-1].upper() else (
        ErrorType.AUTH if status == "NO" else ErrorType.PROTOCOL)
    raise ProbeFailure(kind, f"imap: the login was answered {_shown(lines[-1].split(' ', 1)[-1])}")


async def pop3_login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, username: str, password: str) -> None:
    """USER and PASS (RFC 1939); -ERR [SYS/TEMP] or [IN-USE] (RFC 3206) is the server's trouble."""
    if not f"{username}{password}".isascii():
        raise ProbeFailure(ErrorType.ASSERTION, "pop3: USER and PASS carry ASCII only; these credentials are not")
    for command in (f"USER {username}", f"PASS {password}"):
        _send(writer, command)
        answer = await _line(reader, "pop3")
        if not answer.startswith("+OK"):
            upper = answer.upper()
            kind = ErrorType.UNAVAILABLE if "[SYS/TEMP]" in upper or "[IN-USE]" in upper else ErrorType.AUTH
            raise ProbeFailure(kind, f"pop3: the login was answered {_shown(answer)}")


Preset = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str], Awaitable[None]]
Login = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str, str], Awaitable[None]]


def _lines_only(preset: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> Preset:
    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, domain: str) -> None:
        await preset(reader, writer)

    return run


# Each takes the connection and the server's name (the XMPP domain).
PRESETS: dict[str, Preset] = {"smtp": _lines_only(smtp), "imap": _lines_only(imap), "pop3": _lines_only(pop3),
                              "xmpp": xmpp}
# A login over the upgraded connection (username and password), by the protocol's own command.
LOGINS: dict[str, Login] = {"smtp": smtp_login, "imap": imap_login, "pop3": pop3_login}
