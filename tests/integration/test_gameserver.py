"""The gameserver kind against a real Minecraft server (Minestom, from Maven Central): the status
a client's server list shows, its name matched; and each way a check fails named: a name that
does not match, a port nothing listens on, a TCP peer that is not a game server (a hand-made web
server's answer), a Source query to a UDP port that never answers and to one that answers
garbage (the DNS harness's misbehaving ports). No Source engine server is open source: A2S's
answers are held by python-a2s's parsing and our unit tests."""

from __future__ import annotations

import asyncio

import pytest

from otel_health.errors import ErrorType
from tests.harness import servers, targets
from tests.harness.checks import assert_failed, check_once
from tests.harness.procs import free_port

pytestmark = pytest.mark.integration


def _game(name: str, protocol: str, port: int, *, timeout: str = "3s", **fields: object) -> str:
    return targets.entry(name, "gameserver", host="127.0.0.1", protocol=protocol, port=port, timeout=timeout,
                         **fields)


async def test_a_minecraft_servers_status(minecraft_server: servers.Minecraft) -> None:
    results = await check_once(
        _game("status", "minecraft", minecraft_server.port)
        + _game("named", "minecraft", minecraft_server.port, expect="^otel-health test server$"))
    for name, result in results.items():
        assert result.up, (name, result.detail)
    assert set(results["status"].phases) == {"query"}
    assert results["status"].version, results["status"]


async def test_each_way_a_game_server_check_fails_is_named(minecraft_server: servers.Minecraft,
                                                           dns_server: servers.Nsd) -> None:
    closed = free_port()

    async def web_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(64)  # the handshake and the status request, answered as a web server answers
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    other = await asyncio.start_server(web_server, "127.0.0.1", 0)
    try:
        results = await check_once(
            _game("other-name", "minecraft", minecraft_server.port, expect="^survival")
            + _game("closed", "minecraft", closed)
            + _game("not-a-game", "minecraft", other.sockets[0].getsockname()[1])
            + _game("silent", "source", dns_server.silent_port, timeout="1s")
            + _game("garbage", "source", dns_server.garbage_port))
    finally:
        other.close()
        await other.wait_closed()
    assert_failed(results, {
        "other-name": (ErrorType.ASSERTION, f"the server's name {servers.MINECRAFT_MOTD!r} does not match '^survival'"),
        "closed": (ErrorType.CONNECTION_REFUSED, f"minecraft 127.0.0.1:{closed}: connection refused"),
        "not-a-game": (ErrorType.PROTOCOL, "the answer is not the game's protocol"),
        "silent": (ErrorType.TIMEOUT, "the server did not answer within the timeout"),
        "garbage": (ErrorType.PROTOCOL, "the answer is not the game's protocol"),
    })
    assert results["silent"].duration < 1.5, results["silent"].duration
