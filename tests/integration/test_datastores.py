"""Redis, PostgreSQL and Neo4j probes against the real servers."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import time
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind

from otel_health.config.loader import load_text
from otel_health.probes import PROBES, ProbeSettings
from tests.harness import servers, targets
from tests.harness.running import running

pytestmark = pytest.mark.integration


def _redis(name: str, r: servers.Redis, *, tls: bool = False, password: str = "${DS_PASSWORD}",
           interval: str = "0.3s", port: int | None = None) -> str:
    port = port or (r.tls_port if tls else r.port)
    return targets.redis(name, port, {"tls": True, "ca_file": str(r.ca_file)} if tls else {}, password=password,
                         interval=interval, timeout="0.3s")


def _pg(name: str, p: servers.Postgres, *, sslmode: str = "disable", password: str = "${DS_PASSWORD}",
        database: str = "postgres", interval: str = "0.3s", port: int | None = None, timeout: str = "0.3s") -> str:
    ca = {"ca_file": str(p.ca_file)} if sslmode.startswith("verify") else {}
    return targets.postgres(name, port or p.port, ca, password=password, database=database, sslmode=sslmode,
                            interval=interval, timeout=timeout)


def _neo(name: str, n: servers.Neo4j, *, user: str = "neo4j", password: str = "${DS_PASSWORD}",
         interval: str = "1s", port: int | None = None, timeout: str = "1s") -> str:
    return targets.neo4j(name, port or n.port, user=user, password=password, interval=interval, timeout=timeout)


async def test_healthy_datastores_report_version_phases_and_db_spans(
    redis_server: servers.Redis, postgres_server: servers.Postgres, neo4j_server: servers.Neo4j,
    monkeypatch: pytest.MonkeyPatch, seeded_password: str,
) -> None:
    monkeypatch.setenv("DS_PASSWORD", seeded_password)
    pg_version = postgres_server.psql("SHOW server_version").split(" ")[0]
    text = "targets:\n" + "".join([
        _redis("redis", redis_server), _redis("redis-tls", redis_server, tls=True),
        _pg("pg", postgres_server), _pg("pg-tls", postgres_server, sslmode="verify-ca"),
        _neo("neo4j", neo4j_server),
    ])
    async with running(text) as r:
        results = {n: await r.wait_result(n, timeout=30) for n in ("redis", "redis-tls", "pg", "pg-tls", "neo4j")}
        _, _, metrics = await r.get("/metrics")
        spans = r.spans.get_finished_spans()
    for name, result in results.items():
        assert result.up, f"{name}: {result.error_type} {result.detail}"
    assert results["redis"].version and results["redis"].version[0].isdigit()
    assert results["redis"].info == {"role": "master", "redis_mode": "standalone"}
    assert {"connect", "ping", "info"} <= set(results["redis"].phases)
    assert results["pg"].version == pg_version
    assert results["pg"].info == {"role": "primary", "read_only": "false"}
    assert {"connect", "query"} <= set(results["pg"].phases)
    assert results["neo4j"].version == "5.26.12" and results["neo4j"].info == {"edition": "community"}
    assert {"connect", "query"} <= set(results["neo4j"].phases)
    assert f'tta_service_info{{service="pg",environment="default",kind="postgres",version="{pg_version}",' \
           'role="primary",read_only="false"} 1' in metrics
    assert 'version="5.26.12",edition="community"} 1' in metrics

    def children(root_name: str) -> list:
        root = next(s for s in spans if s.name == root_name)
        return [s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]

    systems = {"health_check redis": "redis", "health_check pg": "postgresql", "health_check neo4j": "neo4j"}
    for root_name, system in systems.items():
        kids = children(root_name)
        assert kids and all(k.kind is SpanKind.CLIENT for k in kids)
        for kid in kids:
            assert kid.attributes["db.system.name"] == system
            assert kid.attributes["server.address"] == "127.0.0.1"
            assert isinstance(kid.attributes["server.port"], int)
        assert any("db.operation.name" in k.attributes for k in kids)
    assert {k.name for k in children("health_check redis")} == {"connect", "PING", "INFO"}
    assert {k.attributes.get("db.operation.name") for k in children("health_check pg")} >= {"SELECT"}
    exported = " ".join(s.to_json() for s in spans)
    assert seeded_password not in exported


async def test_wrong_password_is_auth_and_never_leaks(
    redis_server: servers.Redis, postgres_server: servers.Postgres, neo4j_server: servers.Neo4j,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, seeded_password: str,
) -> None:
    wrong = f"{seeded_password}-but-wrong"
    monkeypatch.setenv("DS_WRONG", wrong)
    caplog.set_level(logging.DEBUG)
    text = "targets:\n" + "".join([
        _redis("redis", redis_server, password="${DS_WRONG}"),
        _pg("pg", postgres_server, password="${DS_WRONG}"),
        _neo("neo4j", neo4j_server, user="wrongpw", password="${DS_WRONG}", interval="0.2s", timeout="0.2s"),
    ])
    async with running(text) as r:
        results = {n: await r.wait_result(n, timeout=30) for n in ("redis", "pg", "neo4j")}
        await r.wait_for(lambda: r.checks("neo4j") >= 6, timeout=15, what="several neo4j checks")
        _, _, metrics = await r.get("/metrics")
        _, _, health = await r.get("/health")
        _, _, targets = await r.get("/api/v1/targets")
        spans = " ".join(s.to_json() for s in r.spans.get_finished_spans())
        neo_state = r.collector.store.get(("neo4j", "default"))
        neo_history = list(neo_state.history)
    for name, result in results.items():
        assert (result.up, result.error_type) == (False, "auth"), f"{name}: {result.detail}"
    # After the first failure the probe backs off instead of logging in again...
    assert all(res.error_type == "auth" for res in neo_history)
    assert sum(1 for res in neo_history if "not tried" not in res.detail) == 1
    # ...so the account is not locked: the right password still works at once.
    from neo4j import GraphDatabase

    with GraphDatabase.driver(neo4j_server.uri, auth=("wrongpw", seeded_password)) as driver:
        driver.verify_connectivity()
    for what, text_seen in (("metrics", metrics), ("health", health), ("targets", targets), ("spans", spans),
                            ("logs", caplog.text)):
        for secret in (wrong, seeded_password, base64.b64encode(wrong.encode()).decode()):
            assert secret not in text_seen, f"a password in {what}"
    assert json.loads(targets)["targets"][0]["settings"]["password"] == "env:DS_WRONG"


async def test_missing_database_and_wrong_protocol_are_told_apart(
    redis_server: servers.Redis, postgres_server: servers.Postgres, neo4j_server: servers.Neo4j,
    http_targets: servers.HttpTargets, monkeypatch: pytest.MonkeyPatch, seeded_password: str,
) -> None:
    monkeypatch.setenv("DS_PASSWORD", seeded_password)
    text = "targets:\n" + "".join([
        _pg("pg-nodb", postgres_server, database="no_such_db"),
        _redis("redis-on-http", redis_server, port=http_targets.port),
        _redis("redis-on-pg", redis_server, port=postgres_server.port),
        _pg("pg-on-redis", postgres_server, port=redis_server.port, timeout="0.5s", interval="1s"),
        _pg("pg-on-http", postgres_server, port=http_targets.port, timeout="0.5s", interval="1s"),
        _neo("neo4j-on-http", neo4j_server, port=http_targets.port),
        _neo("neo4j-on-redis", neo4j_server, port=redis_server.port),
    ])
    async with running(text) as r:
        names = ("pg-nodb", "redis-on-http", "redis-on-pg", "pg-on-redis", "pg-on-http", "neo4j-on-http",
                 "neo4j-on-redis")
        results = {n: await r.wait_result(n, timeout=30) for n in names}
    assert results["pg-nodb"].error_type == "database_missing"
    for name in names[1:]:
        result = results[name]
        assert not result.up
        assert result.error_type in ("protocol", "timeout", "connection_reset"), f"{name}: {result}"
        timeout = 0.5 if name.startswith("pg-on") else (1.0 if name.startswith("neo4j") else 0.3)
        assert result.duration < timeout + 0.3, name
        assert "Traceback" not in result.detail


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_datastore_checks_leave_no_reference_cycles_behind(
    redis_server: servers.Redis, postgres_server: servers.Postgres, neo4j_server: servers.Neo4j,
    monkeypatch: pytest.MonkeyPatch, seeded_password: str,
) -> None:
    """As for HTTP (test_http_probe.py): what a check makes, passing or failing, is freed by
    reference counting when it ends, not left for the cyclic collector."""
    monkeypatch.setenv("DS_PASSWORD", seeded_password)
    monkeypatch.setenv("WRONG_PASSWORD", "not-the-password")
    text = "otlp:\n  keep_percent: 50\ntargets:\n" + "".join([
        _redis("redis", redis_server), _redis("redis-tls", redis_server, tls=True),
        _redis("redis-wrong", redis_server, password="${WRONG_PASSWORD}"),
        _pg("pg", postgres_server), _pg("pg-tls", postgres_server, sslmode="verify-ca"),
        _pg("pg-wrong", postgres_server, password="${WRONG_PASSWORD}"),
        _neo("neo4j", neo4j_server, interval="0.5s", timeout="0.5s"),
    ])
    async with running(text) as r:
        left = await r.cycles_left_by_checks(("redis", "redis-tls", "redis-wrong", "pg", "pg-tls", "pg-wrong",
                                              "neo4j"), timeout=30)
    assert left == []


async def test_no_connection_or_fd_leaks_after_500_checks_each(
    redis_server: servers.Redis, postgres_server: servers.Postgres, neo4j_server: servers.Neo4j,
    monkeypatch: pytest.MonkeyPatch, seeded_password: str,
) -> None:
    monkeypatch.setenv("DS_PASSWORD", seeded_password)
    config = load_text("targets:\n" + _redis("redis", redis_server) + _pg("pg", postgres_server)
                       + _neo("neo4j", neo4j_server), "leak.yaml", PROBES)
    probes = {kind: cls(ProbeSettings()) for kind, cls in PROBES.items()}

    def redis_clients() -> int:
        return redis_server.command("CLIENT", "LIST").count(b"id=")

    def pg_backends() -> int:
        return int(postgres_server.psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                                        "'client backend' AND application_name = 'otel-health'"))

    from neo4j import GraphDatabase

    admin = GraphDatabase.driver(neo4j_server.uri, auth=("neo4j", neo4j_server.password))

    def neo4j_ours() -> int:
        records, _, _ = admin.execute_query("CALL dbms.listConnections() YIELD userAgent RETURN userAgent")
        return sum(1 for r in records if str(r["userAgent"]).startswith("otel-health/"))

    base_redis, base_pg, base_neo = redis_clients(), pg_backends(), neo4j_ours()
    await asyncio.sleep(0.2)
    base_fds = _open_fds()
    for target in config.targets:
        probe = probes[target.kind]
        sem = asyncio.Semaphore(8)

        async def one(target=target, probe=probe, sem=sem) -> bool:
            async with sem:
                return (await probe.run(target)).up

        outcomes = await asyncio.gather(*(one() for _ in range(500)))
        assert all(outcomes), target.name
    for probe in probes.values():
        await probe.close()
    await asyncio.sleep(0.5)
    assert redis_clients() == base_redis
    deadline = time.monotonic() + 5
    while pg_backends() != base_pg and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert pg_backends() == base_pg
    assert await asyncio.to_thread(neo4j_ours) == base_neo
    admin.close()
    assert _open_fds() <= base_fds


async def test_servers_stopped_mid_run_are_down_within_an_interval_and_recover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seeded_password: str,
) -> None:
    monkeypatch.setenv("DS_PASSWORD", seeded_password)
    # Started side by side (Neo4j's JVM takes the longest): each on its own port and data directory.
    redis, pg, neo = await asyncio.gather(
        asyncio.to_thread(servers.start_redis, tmp_path / "redis", password=seeded_password),
        asyncio.to_thread(servers.start_postgres, tmp_path / "pg", password=seeded_password),
        asyncio.to_thread(servers.start_neo4j, tmp_path / "neo4j", password=seeded_password))
    try:
        text = ("targets:\n" + _redis("redis", redis, interval="0.5s") + _pg("pg", pg, interval="0.5s")
                + _neo("neo4j", neo, interval="0.5s", timeout="0.5s"))
        async with running(text) as r:
            for name in ("redis", "pg", "neo4j"):
                await r.wait_for(lambda n=name: (r.result(n) is not None and r.result(n).up), timeout=15,
                                 what=f"{name} up")
            # A paused server (SIGSTOP) is down too, by timeout; SIGCONT brings it back.
            for name, server in (("redis", redis), ("pg", pg), ("neo4j", neo)):
                server.process.signal(signal.SIGSTOP)
                try:
                    await r.wait_for(lambda n=name: not r.result(n).up, timeout=2.0, what=f"paused {name} down")
                    assert r.result(name).error_type == "timeout", r.result(name)
                finally:
                    server.process.signal(signal.SIGCONT)
                await r.wait_for(lambda n=name: r.result(n).up, timeout=15, what=f"resumed {name} up")
            stopped_at = time.monotonic()
            await asyncio.to_thread(redis.stop)
            await asyncio.to_thread(pg.stop)
            await asyncio.to_thread(neo.stop)
            names = ("redis", "pg", "neo4j")
            await r.wait_for(lambda: not any(r.result(n).up for n in names), timeout=1.5, what="all down")
            assert time.monotonic() - stopped_at < 1.5 + 3  # neo4j takes up to 3 s to stop
            # Restarted side by side: each on its own port and data directory.
            redis, pg, neo = await asyncio.gather(
                asyncio.to_thread(_restart_redis, redis, tmp_path, seeded_password),
                asyncio.to_thread(_restart_postgres, pg, tmp_path),
                asyncio.to_thread(_restart_neo4j, neo, tmp_path))
            await r.wait_for(lambda: all(r.result(n).up for n in names), timeout=20,
                             what=f"all up again ({[(n, r.result(n).error_type, r.result(n).detail) for n in names]})")
    finally:
        redis.stop()
        pg.stop()
        neo.stop()


def _restart_redis(old: servers.Redis, tmp_path: Path, password: str) -> servers.Redis:
    from tests.harness.procs import Process

    conf = tmp_path / "redis" / "redis.conf"
    process = Process("Redis", ["redis-server", str(conf)], log_path=tmp_path / "redis" / "redis2.log")
    again = servers.Redis(old.port, old.tls_port, password, old.ca_file, process)
    process.wait_ready(lambda: b"+PONG" in again.command("PING"), timeout=30)
    return again


def _restart_postgres(old: servers.Postgres, tmp_path: Path) -> servers.Postgres:
    from tests.harness.procs import Process

    argv = list(old.process.popen.args)
    process = Process("PostgreSQL", argv, log_path=tmp_path / "pg" / "postgres2.log", user=old.run_as)
    again = servers.Postgres(old.port, old.password, old.socket_dir, old.ca_file, process, old.bin_dir, old.run_as)
    process.wait_ready(lambda: again.psql("SELECT 1") == "1", timeout=60)
    return again


def _restart_neo4j(old: servers.Neo4j, tmp_path: Path) -> servers.Neo4j:
    from tests.harness.procs import Process

    process = Process("Neo4j", list(old.process.popen.args), log_path=tmp_path / "neo4j" / "neo4j2.log",
                      env={"NEO4J_PASSWORD": old.password, "NEO4J_EXTRA_USERS": ""})
    process.wait_ready(lambda: "NEO4J READY" in process.log_path.read_text(errors="replace"), timeout=180)
    return servers.Neo4j(old.port, old.password, old.users, process)


def test_probe_command_checks_datastore_urls_and_redacts(
    redis_server: servers.Redis, postgres_server: servers.Postgres, neo4j_server: servers.Neo4j,
    capsys: pytest.CaptureFixture[str], seeded_password: str,
) -> None:
    from otel_health.cli import main

    pw = seeded_password
    assert main(["probe", f"redis://:{pw}@127.0.0.1:{redis_server.port}/0"]) == 0
    assert main(["probe", f"postgresql://postgres:{pw}@127.0.0.1:{postgres_server.port}/postgres"]) == 0
    assert main(["probe", f"neo4j://neo4j:{pw}@127.0.0.1:{neo4j_server.port}"]) == 0
    assert main(["probe", f"redis://:wrong-{pw}@127.0.0.1:{redis_server.port}/0"]) == 1
    out = capsys.readouterr().out
    assert pw not in out
    assert out.count(" up in ") == 3 and "DOWN auth" in out
    assert "role=master redis_mode=standalone" in out and "edition=community" in out
    assert main(["probe", f"postgresql://postgres:{pw}@127.0.0.1:{postgres_server.port}/postgres", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["info"] == {"role": "primary", "read_only": "false"} and pw not in json.dumps(row)



async def test_reuse_connection_keeps_one_connection_and_closes_it_when_the_target_goes(
    redis_server: servers.Redis, postgres_server: servers.Postgres, neo4j_server: servers.Neo4j,
    monkeypatch: pytest.MonkeyPatch, seeded_password: str,
) -> None:
    from tests.harness.running import config_from

    monkeypatch.setenv("DS_PASSWORD", seeded_password)
    reuse = "    reuse_connection: true\n"
    text = ("targets:\n" + _redis("redis-kept", redis_server, interval="0.3s") + reuse + "    username: monitor\n"
            + _pg("pg-kept", postgres_server, interval="0.2s", timeout="0.2s") + reuse
            + _neo("neo4j-kept", neo4j_server, interval="0.3s", timeout="0.3s") + reuse)

    def redis_ours() -> int:  # the check sets no client name: it runs as its least-privilege user
        return redis_server.command("CLIENT", "LIST").count(b" user=monitor ")

    def pg_ours() -> int:
        return int(postgres_server.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'otel-health'"))

    from neo4j import GraphDatabase

    admin = GraphDatabase.driver(neo4j_server.uri, auth=("neo4j", neo4j_server.password))

    def neo4j_ours() -> int:
        records, _, _ = admin.execute_query("CALL dbms.listConnections() YIELD userAgent RETURN userAgent")
        return sum(1 for r in records if str(r["userAgent"]).startswith("otel-health/"))

    def ours() -> tuple[int, int, int]:
        return redis_ours(), pg_ours(), neo4j_ours()

    try:
        base = ours()
        async with running(text) as r:
            await r.wait_for(lambda: all(r.checks(n) >= 6 for n in ("redis-kept", "pg-kept", "neo4j-kept")),
                             timeout=20, what="six checks of each")
            assert all(r.result(n).up for n in ("redis-kept", "pg-kept", "neo4j-kept"))
            kept = await asyncio.to_thread(ours)
            assert [k - b for k, b in zip(kept, base, strict=True)] == [1, 1, 1], (kept, base)
            r.collector.apply(config_from("listen: 127.0.0.1:0\ntargets: []\n"))
            # a server drops a closed session in its own time (PostgreSQL's backend exits after
            # the client's Terminate): each count is back within a bound, not at once
            deadline = time.monotonic() + 10
            while (now := await asyncio.to_thread(ours)) != base:
                assert time.monotonic() < deadline, f"connections (redis, pg, neo4j) {now}, not {base}, 10s on"
                await asyncio.sleep(0.1)
    finally:
        admin.close()
