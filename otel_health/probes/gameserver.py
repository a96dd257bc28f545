"""Game server probe: the status a game's own server list asks for, in the game's protocol:
Minecraft (Java edition's server list ping, on mcstatus; Bedrock's unconnected ping) and
Valve's Source and GoldSrc engines (A2S_INFO with its challenge, on python-a2s); up when the
server answers, and its name matches ``expect``.

The players online and the most it takes, the map and the server's name go on the check's span;
the game's version is the check's version. A server whose slots are all taken answers as
usual: ``max_full`` makes a full server a failed check for a community that wants to know."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, Probe, classify_os_error, host_port, server_words
from ._match import Pattern, pattern_field

__all__ = ["GameServerOptions", "GameServerProbe"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]_]{1,253}$")
PORTS = {"minecraft": 25565, "bedrock": 19132, "source": 27015}
SHOWN = 80


@dataclass(frozen=True, slots=True)
class GameServerOptions:
    host: str
    protocol: str
    port: int
    expect: Pattern | None = None
    max_full: bool = False

    @classmethod
    def parse(cls, f: Fields) -> GameServerOptions | None:
        host = f.text("host", required=True, pattern=_HOST_RE, hint="use a host name or an IP address")
        protocol = f.text("protocol", required=True, choices=tuple(PORTS))
        port = f.whole("port", PORTS.get(protocol or "", 27015), minimum=1, maximum=65535)
        options = cls(host=host or "", protocol=protocol or "", port=port, expect=pattern_field(f, "expect"),
                      max_full=f.flag("max_full", False))
        return options if host and protocol else None

    def secrets(self) -> Iterator[Secret]:
        return iter(())

    def where(self) -> str:
        return f"{self.protocol} {host_port(self.host, self.port)}"

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "protocol": self.protocol, "port": self.port, "max_full": self.max_full,
                "expect": self.expect.pattern if self.expect is not None else None}


@dataclass(frozen=True, slots=True)
class _Status:
    name: str
    players: int
    most: int
    version: str
    map: str = ""


class GameServerProbe(Probe):
    kind = "gameserver"
    component_type = "component"
    check_name = "status"
    options_type = GameServerOptions

    def _load(self) -> None:
        import a2s  # noqa: F401 - imported once, off the loop, before the first check
        import mcstatus  # noqa: F401

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        return _classify_game(exc) or classify_os_error(exc)

    async def _check(self, target: Target, attempt: Attempt) -> None:
        o: GameServerOptions = target.options
        attributes: dict[str, str | int] = {"server.address": o.host, "server.port": o.port,
                                            "game.protocol": o.protocol}
        with self.step(attempt, "query", f"{o.protocol} status", attributes) as span:
            status = await _ask(o, target.timeout * 0.9)
            span.set_attribute("game.players", status.players)
            span.set_attribute("game.players.max", status.most)
            if status.map:
                span.set_attribute("game.map", status.map)
        attempt.version = server_words(status.version)
        if o.expect is not None and not o.expect.found(status.name):
            raise ProbeFailure(ErrorType.ASSERTION, f"the server's name {server_words(status.name)[:SHOWN]!r} does "
                                                    f"not match {o.expect.pattern!r}")
        if o.max_full and status.most and status.players >= status.most:
            raise ProbeFailure(ErrorType.UNAVAILABLE, f"the server is full ({status.players} of {status.most} "
                                                      "players)")


async def _ask(o: GameServerOptions, timeout: float) -> _Status:
    if o.protocol == "source":
        import a2s

        info = await a2s.ainfo((o.host, o.port), timeout=timeout)
        return _Status(name=str(info.server_name), players=int(info.player_count), most=int(info.max_players),
                       version=str(getattr(info, "version", "") or ""), map=str(info.map_name))
    if o.protocol == "bedrock":
        from mcstatus import BedrockServer

        bedrock = await BedrockServer(o.host, o.port, timeout=timeout).async_status()
        return _Status(name=_text(bedrock.motd), players=int(bedrock.players.online), most=int(bedrock.players.max),
                       version=str(bedrock.version.name), map=str(getattr(bedrock, "map_name", "") or ""))
    from mcstatus import JavaServer

    java = await JavaServer(o.host, o.port, timeout=timeout).async_status(tries=1)
    return _Status(name=_text(java.motd), players=int(java.players.online), most=int(java.players.max),
                   version=str(java.version.name))


def _text(motd: Any) -> str:
    plain = getattr(motd, "to_plain", None)
    return str(plain()) if callable(plain) else str(motd)


def _classify_game(exc: BaseException) -> tuple[ErrorType, str] | None:
    """The libraries' own failures: an answer that is not the protocol (python-a2s's broken
    message, mcstatus's IOError without an errno, a length or JSON that does not parse), and
    silence; a socket's error goes to the common classification."""
    import a2s

    if isinstance(exc, a2s.BrokenMessageError | a2s.BufferExhaustedError):
        return ErrorType.PROTOCOL, f"the answer is not the game's protocol ({type(exc).__name__})"
    if isinstance(exc, TimeoutError):
        return ErrorType.TIMEOUT, "the server did not answer within the timeout"
    if isinstance(exc, OSError) and exc.errno:
        return None
    if isinstance(exc, OSError | ValueError | KeyError | struct.error):
        return ErrorType.PROTOCOL, f"the answer is not the game's protocol ({server_words(str(exc))[:SHOWN]})"
    return None
