"""The amqp kind's options and its reading of a broker's refusals (pure logic: the wire is in
tests/integration/test_amqp.py, against RabbitMQ)."""

from __future__ import annotations

import asyncio

import pytest
from aiormq import exceptions as amqp

from otel_health.errors import ErrorType
from otel_health.probes import ProbeSettings
from otel_health.probes.amqp import MAX_FRAME, AmqpOptions, AmqpProbe, _transport_type, _url
from tests.harness.checks import options_of, raised_from


def test_the_password_is_by_reference_and_quoted_into_the_url_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW", "p@ss/w:rd-7781")
    options = options_of(AmqpOptions, "kind: amqp, host: mq.internal, username: monitor, password: '${PW}', "
                                      "vhost: orders/eu")
    assert (options.port, options.publish, options.vhost) == (5672, True, "orders/eu")
    assert options.public()["password"] == "env:PW" and "7781" not in repr(options.public())
    url = _url(options)
    assert (url.user, url.password, url.host, url.port) == ("monitor", "p@ss/w:rd-7781", "mq.internal", 5672)
    assert url.raw_path == "/orders%252Feu" or url.path == "/orders%2Feu", url  # aiormq reads %2F as a slash
    assert "7781" not in options.where()
    assert options_of(AmqpOptions, "kind: amqp, host: mq.internal, username: monitor, tls: true").port == 5671


def test_refusals_are_named_by_what_the_broker_said() -> None:
    probe = AmqpProbe(ProbeSettings())
    cases = (
        (amqp.ProbableAuthenticationError("ACCESS_REFUSED - Login was refused"), ErrorType.AUTH,
         "the broker refused the login (ACCESS_REFUSED - Login was refused)"),
        (amqp.ConnectionNotAllowed("NOT_ALLOWED - vhost x not found"), ErrorType.ASSERTION,
         "the virtual host does not exist"),
        (amqp.ConnectionNotAllowed("NOT_ALLOWED - access to vhost 'x' refused for user 'u'"), ErrorType.AUTH,
         "the login may not use the virtual host"),
        (amqp.ChannelNotFoundEntity("NOT_FOUND - no queue 'q' in vhost '/'"), ErrorType.ASSERTION,
         "the queue does not exist"),
        (amqp.ChannelAccessRefused("ACCESS_REFUSED - access to exchange"), ErrorType.AUTH, "may not do this"),
        (amqp.ChannelLockedResource("RESOURCE_LOCKED - cannot obtain exclusive access"), ErrorType.ASSERTION,
         "exclusive to another connection"),
        (amqp.ConnectionResourceError("RESOURCE_ERROR - connection limit"), ErrorType.TOO_MANY_CONNECTIONS,
         "at a limit"),
        (amqp.ConnectionClosed(320, "CONNECTION_FORCED - broker forced connection closure"), ErrorType.UNAVAILABLE,
         "shutting down, or an operator"),
        (amqp.IncompatibleProtocolError(), ErrorType.PROTOCOL, "does not speak AMQP 0-9-1"),
        (amqp.InvalidFrameError("a frame of 9 bytes"), ErrorType.PROTOCOL, "does not speak AMQP 0-9-1"),
    )
    for exc, error_type, words in cases:
        said = probe._classify(exc)
        assert said[0] is error_type and words in said[1], (exc, said)
    refused = raised_from(amqp.AMQPConnectionError(111, "Connect call failed"), ConnectionRefusedError(111, "x"))
    assert probe._classify(refused)[0] is ErrorType.CONNECTION_REFUSED
    mid_frame = amqp.AMQPConnectionError("Server connection unexpectedly closed. Read 3 bytes but 9 bytes expected")
    assert probe._classify(mid_frame)[0] is ErrorType.CONNECTION_RESET


async def test_a_frame_larger_than_a_check_reads_is_refused_before_it_is_buffered() -> None:
    """A peer announcing a 1.3 GB frame (what an HTTP answer's first bytes read as) is not read."""
    served = asyncio.Event()

    async def web_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n" + b"x" * 4096)
        await writer.drain()
        await reader.read()
        writer.close()
        served.set()

    server = await asyncio.start_server(web_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    from yarl import URL

    transport = _transport_type()(None)
    reader, writer = await transport.create(URL(f"amqp://127.0.0.1:{port}/"))
    try:
        assert await reader.readexactly(7) == b"HTTP/1."
        with pytest.raises(amqp.InvalidFrameError, match="a frame of"):
            await reader.readexactly(MAX_FRAME + 1)
    finally:
        transport.abort()
        writer.close()
        await asyncio.wait_for(served.wait(), 10)
        server.close()
        await server.wait_closed()
