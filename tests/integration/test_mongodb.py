"""The mongodb kind against a real server speaking MongoDB's wire protocol (FerretDB, built from
Go modules, on SQLite, a plain and a TLS listener): a ping, a command whose answer is matched, the
member's role read, over TLS; and each way a check fails named: a role the member does not have,
a command the server does not have, an answer that does not match, a port nothing listens on, a
certificate not trusted, and a peer that does not speak MongoDB (a hand-made web server's
answer). Logins are not held here: FerretDB's embedded server has none (the unit tests hold the
refusal codes)."""

from __future__ import annotations

import asyncio

import pytest

from otel_health.errors import ErrorType
from tests.harness import servers, targets
from tests.harness.checks import assert_failed, check_once
from tests.harness.procs import free_port

pytestmark = pytest.mark.integration


def _mongo(name: str, port: int, *, timeout: str = "2s", **fields: object) -> str:
    return targets.entry(name, "mongodb", host="127.0.0.1", port=port, timeout=timeout, **fields)


async def test_a_ping_a_command_matched_the_role_and_tls(mongodb_server: servers.Ferretdb) -> None:
    from pymongo import AsyncMongoClient

    m = mongodb_server
    client: AsyncMongoClient = AsyncMongoClient("127.0.0.1", m.port, directConnection=True)
    try:
        await client.shop.orders.delete_many({})
        await client.shop.orders.insert_many([{"n": 1}, {"n": 2}, {"n": 3}])
    finally:
        await client.close()
    results = await check_once(
        _mongo("ping", m.port)
        + _mongo("count", m.port, database="shop", command={"count": "orders"}, expect='"n": 3\\b')
        + _mongo("standalone", m.port, role="any")
        + _mongo("tls", m.tls_port, tls=True, ca_file=str(m.ca_file)))
    for name, result in results.items():
        assert result.up, (name, result.detail)
    assert set(results["ping"].phases) == {"connect", "command"}
    said = results["ping"]
    assert said.version and said.version[0].isdigit(), said.version
    assert said.info["role"] == "standalone" and said.info["set_name"] == "", said.info


async def test_each_way_a_mongodb_check_fails_is_named(mongodb_server: servers.Ferretdb) -> None:
    m = mongodb_server
    closed = free_port()

    async def web_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(16)  # a MongoDB message's header, answered as a web server answers it
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    other = await asyncio.start_server(web_server, "127.0.0.1", 0)
    web_port = other.sockets[0].getsockname()[1]
    try:
        results = await check_once(
            _mongo("not-primary", m.port, role="primary")
            + _mongo("no-command", m.port, command="noSuchCommand")
            + _mongo("no-match", m.port, command="ping", expect="never")
            + _mongo("closed", closed)
            + _mongo("untrusted", m.tls_port, tls=True)
            + _mongo("not-mongodb", web_port))
    finally:
        other.close()
        await other.wait_closed()
    assert_failed(results, {
        "not-primary": (ErrorType.ASSERTION, "the member is standalone, not primary"),
        "no-command": (ErrorType.ASSERTION, "the server has no such command (59: "),
        "no-match": (ErrorType.ASSERTION, "ping answered '{}', which does not match 'never'"),
        "closed": (ErrorType.CONNECTION_REFUSED, f"mongodb://127.0.0.1:{closed}/admin: connection refused"),
        "untrusted": (ErrorType.TLS, f"mongodb://127.0.0.1:{m.tls_port}/admin: TLS failed ("),
        "not-mongodb": (ErrorType.PROTOCOL, "the peer does not speak MongoDB's protocol (Message length (1347703880) "
                                            "is larger than server max message size"),
    })
