"""The gameserver kind's options and its reading of the libraries' failures (pure logic: a
Minecraft server is asked in tests/integration/test_gameserver.py), and python-a2s's reading
of an A2S_INFO answer built here byte by byte as Valve's documentation lays it out."""

from __future__ import annotations

import io
import struct

import a2s
from a2s.byteio import ByteReader
from a2s.info import InfoProtocol

from otel_health.errors import ErrorType
from otel_health.probes import ProbeSettings
from otel_health.probes.gameserver import GameServerOptions, GameServerProbe
from tests.harness.checks import options_of


def test_each_protocol_has_its_games_port() -> None:
    assert options_of(GameServerOptions, "kind: gameserver, host: mc.example.com, protocol: minecraft").port == 25565
    assert options_of(GameServerOptions, "kind: gameserver, host: mc.example.com, protocol: bedrock").port == 19132
    source = options_of(GameServerOptions, "kind: gameserver, host: 10.0.0.5, protocol: source, port: 27016")
    assert (source.port, source.where()) == (27016, "source 10.0.0.5:27016")


def test_an_a2s_info_answer_is_read_as_the_server_said() -> None:
    """S2A_INFO_SRC (Valve Developer Community, "Server queries"): header 'I', protocol, name,
    map, folder, game, app id, players, max players, bots, type, environment, visibility, VAC,
    version."""
    def cstr(text: str) -> bytes:
        return text.encode() + b"\0"

    answer = (b"I" + bytes([17]) + cstr("otel-health arena") + cstr("de_dust2") + cstr("csgo")
              + cstr("Counter-Strike") + struct.pack("<h", 730) + bytes([12, 24, 0]) + b"d" + b"l"
              + bytes([0, 1]) + cstr("1.38.7.9"))
    reader = ByteReader(io.BytesIO(answer[1:]), endian="<", encoding="utf-8")
    info = InfoProtocol.deserialize_response(reader, answer[0], 0.01)
    assert (info.server_name, info.map_name, info.player_count, info.max_players, info.version) == (
        "otel-health arena", "de_dust2", 12, 24, "1.38.7.9")


def test_the_libraries_failures_are_named() -> None:
    probe = GameServerProbe(ProbeSettings())
    assert probe._classify(a2s.BrokenMessageError("Invalid response type"))[0] is ErrorType.PROTOCOL
    assert probe._classify(TimeoutError())[0] is ErrorType.TIMEOUT
    assert probe._classify(OSError("Received invalid status response packet."))[0] is ErrorType.PROTOCOL
    assert probe._classify(ConnectionRefusedError(111, "Connection refused"))[0] is ErrorType.CONNECTION_REFUSED
