"""The mysql kind against a real MariaDB (Debian's): a login with TLS as each ssl_mode asks, the
version, flavor and read-only state read, and each way a check fails named by the server's own
error code: a wrong password, a login allowed only over TLS, a database the login may not use,
a login at its connection limit, a query the server ends at its statement limit, a port nothing
listens on, a peer that never greets (a web server) and one that greets in another protocol (a
hand-made SSH banner: no maintained server speaks first in something other than MySQL here)."""

from __future__ import annotations

import asyncio

import pytest

from otel_health.errors import ErrorType
from tests.harness import servers, targets
from tests.harness.checks import assert_failed, check_once
from tests.harness.procs import free_port, wait_until

pytestmark = pytest.mark.integration


def _db(name: str, port: int, *, user: str = "checker", timeout: str = "2s", **fields: object) -> str:
    return targets.entry(name, "mysql", host="127.0.0.1", port=port, user=user, password="${MYSQL_PASSWORD}",
                         timeout=timeout, **fields)


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch, seeded_password: str) -> None:
    monkeypatch.setenv("MYSQL_PASSWORD", seeded_password)


async def test_a_login_a_query_and_what_the_server_says_of_itself(mariadb_server: servers.Mariadb) -> None:
    db = mariadb_server
    version = db.sql("SELECT VERSION()").split("-", 1)[0]
    results = await check_once(
        _db("plain", db.port, ssl_mode="disabled", database="shop")
        + _db("count", db.port, query="SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'shop'",
              expect="1")
        + _db("tls", db.port, ssl_mode="required", user="tlsonly")
        + _db("verified", db.port, ssl_mode="verify_identity", ca_file=str(db.ca_file)))
    for name, result in results.items():
        assert result.up, (name, result.detail)
        assert result.version == version, (name, result.version)
        assert result.info == {"flavor": "mariadb", "read_only": "false"}, (name, result.info)
        assert set(result.phases) == {"connect", "query"}, (name, result.phases)
    db.sql("SET GLOBAL read_only = 1")
    try:
        [result] = (await check_once(_db("replica", db.port))).values()
    finally:
        db.sql("SET GLOBAL read_only = 0")
    assert result.up and result.info["read_only"] == "true"


async def test_each_way_a_mysql_check_fails_is_named(mariadb_server: servers.Mariadb, http_targets: servers.HttpTargets,
                                                     seeded_password: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncmy

    db = mariadb_server
    monkeypatch.setenv("WRONG_PASSWORD", "not-it")
    holder = await asyncmy.connect(host="127.0.0.1", port=db.port, user="single", password=seeded_password)
    closed = free_port()

    async def ssh_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
        await writer.drain()
        await reader.read()  # until the check lets go
        writer.close()
        await writer.wait_closed()

    other = await asyncio.start_server(ssh_banner, "127.0.0.1", 0)
    try:
        results = await check_once(
            targets.entry("wrong-password", "mysql", host="127.0.0.1", port=db.port, user="checker",
                          password="${WRONG_PASSWORD}", timeout="2s")
            + _db("tls-only", db.port, user="tlsonly", ssl_mode="disabled")
            + _db("no-database", db.port, database="payroll")
            + _db("at-its-limit", db.port, user="single")
            + _db("slow", db.port, query="SELECT SLEEP(5)", timeout="1s")
            + _db("mismatch", db.port, query="SELECT 2", expect="1")
            + _db("closed", closed)
            + _db("never-greets", http_targets.port, timeout="1s")
            + _db("not-mysql", other.sockets[0].getsockname()[1]))
    finally:
        await holder.ensure_closed()
        other.close()
        await other.wait_closed()
    assert_failed(results, {
        "wrong-password": (ErrorType.AUTH, "access denied (1045: Access denied for user 'checker'"),
        "tls-only": (ErrorType.AUTH, "access denied (1045"),
        "no-database": (ErrorType.AUTH, "access to the database denied (1044"),
        "at-its-limit": (ErrorType.TOO_MANY_CONNECTIONS, "(1226: User 'single' has exceeded"),
        "slow": (ErrorType.TIMEOUT, "the server ended the query at its max_statement_time"),
        "mismatch": (ErrorType.ASSERTION, "query returned '2', expected '1'"),
        "closed": (ErrorType.CONNECTION_REFUSED, f"127.0.0.1:{closed}: "),
        "never-greets": (ErrorType.TIMEOUT, "no answer within the 1s timeout"),
        "not-mysql": (ErrorType.PROTOCOL, "does not speak the MySQL protocol"),
    })
    for result in results.values():
        assert "Zq7-SEEDED" not in result.detail and "not-it" not in result.detail
    assert results["slow"].duration < 1.0  # the server ended it, before the check's own timeout
    # and no session of the checker's outlives its check (each said goodbye; the server may take a
    # moment to end the thread)
    wait_until(lambda: db.sql("SELECT COUNT(*) FROM information_schema.processlist "
                              "WHERE user IN ('checker', 'tlsonly')") == "0",
               timeout=5, what="the checker's sessions ended", interval=0.1)
