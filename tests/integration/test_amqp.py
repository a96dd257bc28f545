"""The amqp kind against a real broker (RabbitMQ, Debian's, an instance of its own with logins,
virtual hosts, a queue and a TLS listener): a connection, the confirmed message, a queue's
backlog and consumers, over TLS; each way a check fails named (a login refused, a virtual host
refused or missing, a login that may not publish, a queue missing, a port nothing listens on, a
certificate not trusted, a peer that does not speak AMQP); and a broker whose disk alarm blocks
publishing, down while it lasts and up once it is lifted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from otel_health.errors import ErrorType
from tests.harness import servers, targets
from tests.harness.checks import assert_failed, check_once
from tests.harness.procs import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch, seeded_password: str) -> None:
    monkeypatch.setenv("AMQP_PASSWORD", seeded_password)
    monkeypatch.setenv("WRONG_PASSWORD", "not-it")


def _amqp(name: str, port: int, *, user: str = "checker", timeout: str = "2s", **fields: object) -> str:
    return targets.entry(name, "amqp", host="127.0.0.1", port=port, timeout=timeout, username=user,
                         password=fields.pop("password", "${AMQP_PASSWORD}"), **fields)


async def _connection(b: servers.Rabbitmq) -> object:
    import aiormq

    return await aiormq.connect(f"amqp://checker:{b.password}@127.0.0.1:{b.port}/?heartbeat=0")


@pytest.fixture
async def jobs(rabbitmq_server: servers.Rabbitmq) -> AsyncIterator[object]:
    """A channel on the ``jobs`` queue, which is purged after the test."""
    connection = await _connection(rabbitmq_server)
    channel = await connection.channel()  # type: ignore[attr-defined]
    try:
        yield channel
    finally:
        await channel.queue_purge("jobs")
        await connection.close()  # type: ignore[attr-defined]


async def test_a_connection_a_confirmed_message_a_queue_and_tls(rabbitmq_server: servers.Rabbitmq) -> None:
    b = rabbitmq_server
    results = await check_once(
        _amqp("default", b.port)
        + _amqp("connect-only", b.port, publish=False)
        + _amqp("queue", b.port, queue="jobs", max_messages=0, min_consumers=0)
        + _amqp("tls", b.tls_port, tls=True, ca_file=str(b.ca_file)))
    for name, result in results.items():
        assert result.up, (name, result.detail)
    assert set(results["default"].phases) == {"connect", "publish"}
    assert set(results["connect-only"].phases) == {"connect"}
    assert set(results["queue"].phases) == {"connect", "publish", "queue"}
    said = results["default"]
    assert said.version and said.version[0].isdigit(), said.version
    assert said.info["product"] == "RabbitMQ" and said.info["cluster_name"].startswith("rabbit-"), said.info


async def test_a_backlog_and_missing_consumers_are_named(rabbitmq_server: servers.Rabbitmq, jobs: object) -> None:
    b = rabbitmq_server
    for n in range(3):
        await jobs.basic_publish(f"job {n}".encode(), routing_key="jobs")  # type: ignore[attr-defined]
    await jobs.queue_declare("jobs", passive=True)  # type: ignore[attr-defined] # the three are in
    results = await check_once(
        _amqp("backlog", b.port, queue="jobs", max_messages=2)
        + _amqp("room", b.port, queue="jobs", max_messages=3)
        + _amqp("no-workers", b.port, queue="jobs", min_consumers=1))
    assert results["room"].up, results["room"].detail
    assert_failed(results, {
        "backlog": (ErrorType.ASSERTION, "queue jobs holds 3 ready messages, more than max_messages 2 (0 consumers)"),
        "no-workers": (ErrorType.ASSERTION, "queue jobs has 0 consumers, fewer than min_consumers 1"),
    })
    worker = await _connection(b)
    try:
        channel = await worker.channel()  # type: ignore[attr-defined]
        await channel.basic_qos(prefetch_count=1)
        await channel.basic_consume("jobs", lambda message: None)
        results = await check_once(_amqp("a-worker", b.port, queue="jobs", min_consumers=1))
        assert results["a-worker"].up, results["a-worker"].detail
    finally:
        await worker.close()  # type: ignore[attr-defined]


async def test_each_way_an_amqp_check_fails_is_named(rabbitmq_server: servers.Rabbitmq) -> None:
    b = rabbitmq_server
    closed = free_port()

    async def web_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(8)  # AMQP's protocol header, answered as a web server answers it
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    other = await asyncio.start_server(web_server, "127.0.0.1", 0)
    web_port = other.sockets[0].getsockname()[1]
    results = await check_once(
        _amqp("wrong-password", b.port, password="${WRONG_PASSWORD}")
        + _amqp("vhost-refused", b.port, user="outsider", vhost="orders")
        + _amqp("vhost-missing", b.port, vhost="nowhere")
        + _amqp("may-not-publish", b.port, user="outsider")
        + _amqp("queue-missing", b.port, queue="nothing-here", publish=False)
        + _amqp("closed", closed)
        + _amqp("untrusted", b.tls_port, tls=True)
        + _amqp("not-amqp", web_port))
    other.close()
    await other.wait_closed()
    assert_failed(results, {
        "wrong-password": (ErrorType.AUTH, "the broker refused the login (ACCESS_REFUSED - Login was refused"),
        "vhost-refused": (ErrorType.AUTH, "/orders: the login may not use the virtual host (NOT_ALLOWED - access "
                                          "to vhost 'orders' refused for user 'outsider')"),
        "vhost-missing": (ErrorType.ASSERTION, "the virtual host does not exist (NOT_ALLOWED - vhost nowhere not "
                                               "found)"),
        "may-not-publish": (ErrorType.AUTH, "the login may not do this (ACCESS_REFUSED - access to exchange "
                                            "'amq.default' in vhost '/' refused for user 'outsider')"),
        "queue-missing": (ErrorType.ASSERTION, "queue nothing-here: the queue does not exist (NOT_FOUND - no queue "
                                               "'nothing-here' in vhost '/')"),
        "closed": (ErrorType.CONNECTION_REFUSED, f"amqp://127.0.0.1:{closed}/: connection refused"),
        "untrusted": (ErrorType.TLS, f"amqps://127.0.0.1:{b.tls_port}/: certificate not accepted"),
        "not-amqp": (ErrorType.PROTOCOL, "does not speak AMQP 0-9-1"),
    })
    for name, result in results.items():
        assert b.password not in result.detail and "not-it" not in result.detail, name


async def test_a_disk_alarm_blocks_publishing_and_the_check_says_so(rabbitmq_server: servers.Rabbitmq) -> None:
    b = rabbitmq_server
    entry = _amqp("alarm", b.port, timeout="1s") + _amqp("connect-only", b.port, timeout="1s", publish=False)
    await asyncio.to_thread(b.ctl, "set_disk_free_limit", "100000GB")
    try:
        for _ in range(30):  # the alarm is set at the broker's next disk reading, within a second or so
            results = await check_once(entry)
            if not results["alarm"].up:
                break
        assert_failed(results, {"alarm": (ErrorType.UNAVAILABLE, "the broker blocks publishing: a resource alarm "
                                                                 "(memory or disk) is set")})
        assert results["connect-only"].up, "a connection alone does not see the alarm: the reason publish is on"
    finally:
        await asyncio.to_thread(b.ctl, "set_disk_free_limit", "1MB")
    for _ in range(30):
        results = await check_once(entry)
        if results["alarm"].up:
            break
    assert results["alarm"].up, results["alarm"].detail
