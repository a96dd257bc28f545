"""Datastore verdicts an operator would give, with the server's own words, against real servers:
least-privilege Redis users, replicas, cluster nodes and refusals; PostgreSQL queries that must
not outlive their check, logins refused for a reason, read-only databases; Neo4j's login rate
limit and TLS."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_health.config.loader import load_text
from otel_health.errors import ErrorType
from otel_health.probes import PROBES, ProbeSettings
from tests.harness import servers, targets
from tests.harness.checks import check_once
from tests.harness.procs import free_port

pytestmark = pytest.mark.integration


def _redis(name: str, port: int, *, user: str | None = None, extra: str = "", timeout: str = "1s") -> str:
    return targets.redis(name, port, extra, username=user, timeout=timeout)


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch, seeded_password: str) -> None:
    monkeypatch.setenv("DS_PASSWORD", seeded_password)


# -- Redis ----------------------------------------------------------------------------------
async def test_a_least_privilege_redis_user_is_enough_and_one_without_info_is_told_why(
    redis_server: servers.Redis, seeded_password: str,
) -> None:
    results = await check_once(_redis("least", redis_server.port, user="monitor")
                           + _redis("no-info", redis_server.port, user="pingonly"))
    least, no_info = results["least"], results["no-info"]
    assert least.up, least.detail
    assert least.info == {"role": "master", "redis_mode": "standalone"}
    assert (no_info.up, no_info.error_type) == (False, ErrorType.AUTH)
    assert "NOPERM" in no_info.detail and "'info'" in no_info.detail and "+ping +info" in no_info.detail
    assert seeded_password not in no_info.detail
    # What the check ran, as the server saw it: AUTH, PING and INFO, nothing else.
    assert servers.REDIS_USERS["monitor"] == "+ping +info"


@pytest.fixture(scope="module")
def redis_fleet(tmp_path_factory: pytest.TempPathFactory, redis_server: servers.Redis,
                seeded_password: str) -> Iterator[dict[str, servers.Redis]]:
    """Redis servers an operator meets: replicas (linked, cut off, refusing stale reads), a cluster
    node without slots, one that refuses HELLO, one at maxclients, one that cannot persist."""
    base = tmp_path_factory.mktemp("redis-fleet")
    closed = free_port()
    (base / "void").mkdir()  # removed by a test: a working directory it can no longer write to
    auth = f"masterauth {seeded_password}\n"
    configs = {
        "replica": f"replicaof 127.0.0.1 {redis_server.port}\n{auth}",
        "cut-off": f"replicaof 127.0.0.1 {closed}\n{auth}",
        "stale-refused": f"replicaof 127.0.0.1 {closed}\n{auth}replica-serve-stale-data no\n",
        # the bus port explicitly: by default it is the port + 10000, past 65535 for a high free port
        "cluster": f"cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-port {free_port()}\n",
        "resp2-only": 'rename-command HELLO ""\n',
        "full": "maxclients 1\n",
        # refusing writes (and PING) after a failed save needs save points configured
        "unpersisted": f"dir {base / 'void'}\nsave 3600 1\n",
    }
    fleet: dict[str, servers.Redis] = {}
    try:
        for name, extra in configs.items():
            fleet[name] = servers.start_redis(base / name, password=seeded_password, extra_conf=extra)
        yield fleet
    finally:
        for name, server in fleet.items():
            if name == "unpersisted":  # it cannot save, so it refuses SIGTERM: its data is thrown away
                server.process.stop(timeout=0.5)
            else:
                server.stop()


async def test_replica_state_is_reported_and_a_cut_off_replica_is_up_unless_asked(
    redis_fleet: dict[str, servers.Redis],
) -> None:
    deadline = time.monotonic() + 15
    while b"master_link_status:up" not in redis_fleet["replica"].command("INFO", "replication"):
        assert time.monotonic() < deadline, "the replica never linked to its master"
        await asyncio.sleep(0.2)
    strict = "    fail_if_master_link_down: true\n"
    results = await check_once(
        _redis("replica", redis_fleet["replica"].port)
        + _redis("cut-off", redis_fleet["cut-off"].port)
        + _redis("cut-off-strict", redis_fleet["cut-off"].port, extra=strict)
        + _redis("stale-refused", redis_fleet["stale-refused"].port))
    assert results["replica"].up
    assert results["replica"].info == {"role": "slave", "redis_mode": "standalone", "master_link_status": "up"}
    cut_off = results["cut-off"]
    assert cut_off.up and cut_off.info["master_link_status"] == "down"  # information, not a failure
    strict_result = results["cut-off-strict"]
    assert (strict_result.up, strict_result.error_type) == (False, ErrorType.UNAVAILABLE)
    assert "master is down" in strict_result.detail
    assert strict_result.info["master_link_status"] == "down"
    refused = results["stale-refused"]
    assert (refused.up, refused.error_type) == (False, ErrorType.UNAVAILABLE)
    assert refused.detail.startswith(f"127.0.0.1:{redis_fleet['stale-refused'].port}: Redis refused: MASTERDOWN "
                                     "Link with MASTER is down")


async def test_a_cluster_node_that_does_not_serve_is_down_until_its_slots_are_covered(
    redis_fleet: dict[str, servers.Redis],
) -> None:
    node = redis_fleet["cluster"]
    before = (await check_once(_redis("node", node.port)))["node"]
    assert (before.up, before.error_type) == (False, ErrorType.UNAVAILABLE)
    assert before.detail.startswith(f"127.0.0.1:{node.port}: cluster_state is fail") and "0 of 16384" in before.detail
    assert before.info == {"role": "master", "redis_mode": "cluster", "cluster_state": "fail"}
    assert b"+OK" in node.command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
    deadline = time.monotonic() + 10
    while True:
        after = (await check_once(_redis("node", node.port)))["node"]
        if after.up or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert after.up, after.detail
    assert after.info["cluster_state"] == "ok"


async def test_a_server_that_refuses_hello_is_still_checked(redis_fleet: dict[str, servers.Redis]) -> None:
    server = redis_fleet["resp2-only"]
    assert b"unknown command" in server.command("HELLO", "3")
    result = (await check_once(_redis("old", server.port)))["old"]
    assert result.up, result.detail


async def test_redis_at_maxclients_is_too_many_connections(redis_fleet: dict[str, servers.Redis]) -> None:
    server = redis_fleet["full"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):  # the one client slot
        await asyncio.sleep(0.1)
        result = (await check_once(_redis("full", server.port)))["full"]
    assert (result.up, result.error_type) == (False, ErrorType.TOO_MANY_CONNECTIONS)
    assert result.detail == f"127.0.0.1:{server.port}: Redis refused: ERR max number of clients reached"


async def test_a_redis_that_cannot_persist_is_unavailable_in_its_own_words(
    redis_fleet: dict[str, servers.Redis],
) -> None:
    server = redis_fleet["unpersisted"]
    void = Path(server.process.log_path).parents[1] / "void"
    void.rmdir()  # its working directory, gone: BGSAVE cannot write
    server.command("BGSAVE")
    deadline = time.monotonic() + 10
    while b"rdb_last_bgsave_status:err" not in server.command("INFO", "persistence"):
        assert time.monotonic() < deadline, "BGSAVE did not fail"
        await asyncio.sleep(0.1)
    result = (await check_once(_redis("misconf", server.port)))["misconf"]
    assert (result.up, result.error_type) == (False, ErrorType.UNAVAILABLE)
    assert result.detail.startswith(f"127.0.0.1:{server.port}: Redis refused: MISCONF")


# -- PostgreSQL -----------------------------------------------------------------------------
def _pg(name: str, p: servers.Postgres, *, user: str = "postgres", database: str = "postgres",
        query: str | None = None, timeout: str = "1s", sslmode: str = "disable") -> str:
    return targets.postgres(name, p.port, user=user, database=database, sslmode=sslmode, timeout=timeout,
                            query=query)


def _ours(pg: servers.Postgres) -> int:
    return int(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'otel-health'"))


async def test_timed_out_queries_leave_nothing_running_on_the_server(postgres_server: servers.Postgres) -> None:
    pg = postgres_server
    pg.psql("CREATE TABLE IF NOT EXISTS held (id int)")
    locker = subprocess.Popen(
        [str(pg.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-d", "postgres",
         "-c", "BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(20); COMMIT;"],
        env={"PGPASSWORD": pg.password, "PATH": "/usr/bin:/bin"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while pg.psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                      "WHERE c.relname = 'held' AND l.granted") == "0":
            assert time.monotonic() < deadline, "the lock was never taken"
            await asyncio.sleep(0.1)
        text = "".join(_pg(f"slow-{i}", pg, query="SELECT pg_sleep(30)") for i in range(3))
        text += "".join(_pg(f"locked-{i}", pg, query="SELECT count(*) FROM held") for i in range(3))
        for _ in range(2):
            results = await check_once(text)
            for name, result in results.items():
                assert (result.up, result.error_type) == (False, ErrorType.TIMEOUT), (name, result.detail)
                assert result.duration < 1.0 + 0.3, name  # the check costs its timeout only
            assert "statement_timeout" in results["slow-0"].detail
            assert "lock_timeout" in results["locked-0"].detail
        deadline = time.monotonic() + 3.0
        while _ours(pg) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert _ours(pg) == 0  # no backend of ours left: not sleeping, not waiting for the lock
    finally:
        locker.kill()
        locker.wait(timeout=10)


async def test_a_query_cut_short_is_cancelled_on_the_server_not_left_running(
    postgres_server: servers.Postgres,
) -> None:
    from otel_health.probes.postgres import PostgresProbe, _terminate

    pg = postgres_server
    target = load_text("targets:\n" + _pg("cut", pg, timeout="5s"), "c.yaml", PROBES).targets[0]
    probe = PostgresProbe(ProbeSettings())

    async def cut_short(let_go: Callable[[Any], Awaitable[None]]) -> None:
        conn = await probe._connect(target.options, 5.0)
        await conn.execute("SET statement_timeout = 0; SET lock_timeout = 0")  # only the client can end it
        query = asyncio.ensure_future(conn.fetchval("SELECT pg_sleep(30)"))
        await asyncio.sleep(0.3)
        query.cancel()  # what a check's timeout does to the query it waits on
        with contextlib.suppress(asyncio.CancelledError):
            await query
        await let_go(conn)

    async def settled() -> int:
        deadline = time.monotonic() + 3.0
        while _ours(pg) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return _ours(pg)

    # Closing at once drops the cancel request asyncpg was about to send: the query sleeps on.
    await cut_short(_terminate)
    await asyncio.sleep(0.5)
    assert _ours(pg) == 1
    pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'otel-health'")
    assert await settled() == 0
    # Letting go as a failed check does: the query is cancelled, the connection closed.
    try:
        await cut_short(probe._let_go)
    finally:
        await probe.close()
    assert await settled() == 0


async def test_logins_refused_say_why_and_read_only_is_reported(postgres_server: servers.Postgres,
                                                                  seeded_password: str) -> None:
    pg = postgres_server
    results = await check_once(
        _pg("primary", pg) + _pg("readonly", pg, database="readonly")
        + _pg("blocked", pg, user="blocked") + _pg("nologin", pg, user="nologin")
        + _pg("sslonly-plain", pg, user="sslonly") + _pg("sslonly-tls", pg, user="sslonly", sslmode="require"))
    assert results["primary"].info == {"role": "primary", "read_only": "false"}
    assert results["readonly"].up and results["readonly"].info == {"role": "primary", "read_only": "true"}
    for name in ("blocked", "nologin", "sslonly-plain"):
        assert (results[name].up, results[name].error_type) == (False, ErrorType.AUTH), name
        assert seeded_password not in results[name].detail
    assert "pg_hba.conf rejects connection" in results["blocked"].detail
    assert 'role "nologin" is not permitted to log in' in results["nologin"].detail
    assert "no encryption" in results["sslonly-plain"].detail
    assert results["sslonly-tls"].up, results["sslonly-tls"].detail


# -- Neo4j ----------------------------------------------------------------------------------
async def test_neo4j_login_rate_limit_is_auth_and_backs_off(neo4j_server: servers.Neo4j) -> None:
    from neo4j import GraphDatabase
    from neo4j import exceptions as nexc

    for _ in range(4):  # past dbms.security.auth_max_failed_attempts (3): the account is locked a while
        with GraphDatabase.driver(neo4j_server.uri, auth=("ratelimited", "wrong")) as driver:
            with pytest.raises(nexc.Neo4jError):
                driver.verify_connectivity()
    text = (f"  - name: limited\n    kind: neo4j\n    uri: {neo4j_server.uri}\n    user: ratelimited\n"
            "    password: '${DS_PASSWORD}'\n    timeout: 2s\n")
    config = load_text("targets:\n" + text, "c.yaml", PROBES)
    probe = PROBES["neo4j"](ProbeSettings())
    try:
        first = await probe.run(config.targets[0])
        second = await probe.run(config.targets[0])
    finally:
        await probe.close()
    assert (first.up, first.error_type) == (False, ErrorType.AUTH), first.detail
    assert "AuthenticationRateLimit" in first.detail
    assert (second.error_type, ": not tried" in second.detail) == (ErrorType.AUTH, True)


async def test_neo4j_tls_with_a_private_ca_and_a_refused_certificate(
    neo4j_server: servers.Neo4j, capfd: pytest.CaptureFixture[str],
) -> None:
    assert neo4j_server.ca_file is not None
    port = neo4j_server.port
    results = await check_once(
        f"  - name: private-ca\n    kind: neo4j\n    uri: bolt://localhost:{port}\n"
        f"    password: '${{DS_PASSWORD}}'\n    ca_file: {neo4j_server.ca_file}\n    timeout: 5s\n"
        f"  - name: untrusted\n    kind: neo4j\n    uri: neo4j+s://localhost:{port}\n"
        "    password: '${DS_PASSWORD}'\n    timeout: 5s\n")
    assert results["private-ca"].up, results["private-ca"].detail
    untrusted = results["untrusted"]
    assert (untrusted.up, untrusted.error_type) == (False, ErrorType.TLS), untrusted.detail
    assert "certificate" in untrusted.detail
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""  # nothing printed outside our logger
