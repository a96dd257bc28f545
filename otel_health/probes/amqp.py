"""AMQP 0-9-1 probe (RabbitMQ and the brokers that speak it): a connection (TLS, a login, a
virtual host), a message the broker confirms, and optionally a queue's backlog and consumers;
on aiormq.

A broker under a resource alarm (memory or disk) still accepts connections but blocks every
connection that publishes: a check that only connected would call it up while no producer can
send. So by default the check publishes, with publisher confirms, one empty message to the
default exchange under a routing key no queue is bound to; the broker confirms it and drops
it (nothing is stored, nothing is created), or, blocked, never confirms it, and the check names
the alarm. ``queue`` reads a queue passively (it must exist; nothing is declared) and compares
its ready messages with ``max_messages`` and its consumers with ``min_consumers``: a backlog
that grows, or workers that are gone, while the broker itself is fine."""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import (
    Attempt,
    PasswordOptions,
    Probe,
    answer_by,
    classify_os_error,
    close_within,
    host_port,
    os_cause,
    server_words,
)
from ._tls import client_context

__all__ = ["AmqpOptions", "AmqpProbe"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]_]{1,253}$")
ROUTING_KEY = "otel-health.check"  # bound to no queue: the broker confirms the message and drops it
MAX_FRAME = 1 << 20  # the largest frame a check reads: its frames are a few hundred bytes


@dataclass(frozen=True, slots=True)
class AmqpOptions(PasswordOptions):
    host: str
    username: str
    port: int = 5672
    tls: bool = False
    tls_verify: bool = True
    ca_file: Path | None = None
    password: Secret | None = None
    vhost: str = "/"
    publish: bool = True
    queue: str | None = None
    max_messages: int | None = None
    min_consumers: int | None = None

    @classmethod
    def parse(cls, f: Fields) -> AmqpOptions | None:
        host = f.text("host", required=True, pattern=_HOST_RE, hint="use a host name or an IP address")
        username = f.text("username", required=True)
        tls = f.flag("tls", False)
        queue = f.text("queue")
        options = cls(
            host=host or "", username=username or "",
            port=f.whole("port", 5671 if tls else 5672, minimum=1, maximum=65535), tls=tls,
            tls_verify=f.flag("tls_verify", True), ca_file=f.path("ca_file"),
            password=f.secret("password"), vhost=f.text("vhost", "/") or "/", publish=f.flag("publish", True),
            queue=queue,
            max_messages=f.whole("max_messages", -1, minimum=0, maximum=2**31) if f.has("max_messages") else None,
            min_consumers=f.whole("min_consumers", -1, minimum=0, maximum=65535) if f.has("min_consumers") else None,
        )
        if queue is not None and not 0 < len(queue.encode()) <= 255:
            f.problem("queue", "is not a queue name: 1 to 255 bytes")
        if queue is None:
            for name in ("max_messages", "min_consumers"):
                if f.has(name):
                    f.problem(name, "reads a queue: add 'queue: <the queue's name>' (one that exists; it is only read)")
        if len(options.vhost.encode()) > 255:
            f.problem("vhost", "is not a virtual host's name: at most 255 bytes")
        if not tls and (f.has("ca_file") or f.has("tls_verify")):
            f.problem("ca_file" if f.has("ca_file") else "tls_verify", "applies to TLS: add 'tls: true'")
        return options if host and username else None

    def where(self) -> str:
        address = f"amqp{'s' if self.tls else ''}://{host_port(self.host, self.port)}/" + \
            ("" if self.vhost == "/" else self.vhost)
        return address + (f" queue {self.queue}" if self.queue else "")

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "tls": self.tls, "username": self.username,
                "password": self.password.source if self.password else None, "vhost": self.vhost,
                "publish": self.publish, "queue": self.queue, "max_messages": self.max_messages,
                "min_consumers": self.min_consumers}


class AmqpProbe(Probe):
    kind = "amqp"
    component_type = "component"
    check_name = "connectivity"
    info_labels = ("product", "cluster_name")
    options_type = AmqpOptions

    def _load(self) -> None:
        import aiormq  # noqa: F401 - imported once, off the loop, before the first check

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        return _classify_amqp(exc) or classify_os_error(exc)

    async def _check(self, target: Target, attempt: Attempt) -> None:
        o: AmqpOptions = target.options
        deadline = answer_by(target.timeout)
        attributes: dict[str, str | int] = {"messaging.system": "rabbitmq", "server.address": o.host,
                                            "server.port": o.port}
        transport = _transport_type()(client_context(verify=o.tls_verify, ca_file=o.ca_file) if o.tls else None)
        connection = _connection_type()(_url(o), transport_factory=transport,
                                        client_properties={"connection_name": "otel-health"})
        with self.step(attempt, "connect", "connect", attributes):
            await connection.connect()
        try:
            said = connection.server_properties
            attempt.version = _text(said.get("version"))
            attempt.info["product"] = _text(said.get("product"))
            attempt.info["cluster_name"] = _text(said.get("cluster_name"))
            channel = await connection.channel(publisher_confirms=o.publish)
            if o.publish:
                with self.step(attempt, "publish", "publish", {**attributes, "messaging.destination.name": "",
                                                               "messaging.rabbitmq.destination.routing_key":
                                                               ROUTING_KEY}):
                    try:
                        await _confirmed(connection, channel, deadline)
                    except ProbeFailure:
                        transport.abort()  # the broker stopped reading: a goodbye would wait for nothing
                        raise
            if o.queue is not None:
                with self.step(attempt, "queue", f"queue {o.queue}",
                               {**attributes, "messaging.destination.name": o.queue}) as span:
                    declared = await channel.queue_declare(o.queue, passive=True)
                    span.set_attribute("messaging.rabbitmq.queue.messages", int(declared.message_count or 0))
                    span.set_attribute("messaging.rabbitmq.queue.consumers", int(declared.consumer_count or 0))
                _judge(o, int(declared.message_count or 0), int(declared.consumer_count or 0))
        finally:
            await close_within(connection.close())


async def _confirmed(connection: Any, channel: Any, deadline: float) -> None:
    """One empty message to the default exchange, confirmed by the broker by ``deadline``; a
    connection the broker blocked (a resource alarm) is named as such."""
    from pamqp.commands import Basic

    try:
        async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
            confirm = await channel.basic_publish(b"", exchange="", routing_key=ROUTING_KEY,
                                                  properties=_properties())
            # A broker with an alarm set may take the one message and only then block the
            # connection (it stops reading it): a request after it is answered only when not blocked
            await channel.basic_qos(prefetch_count=0)
    except TimeoutError:
        if await _blocked(connection):
            raise ProbeFailure(ErrorType.UNAVAILABLE, "the broker blocks publishing: a resource alarm (memory or "
                                                      "disk) is set; no producer can send") from None
        raise ProbeFailure(ErrorType.TIMEOUT, "the broker did not confirm the message within the timeout") from None
    if isinstance(confirm, Basic.Nack):
        raise ProbeFailure(ErrorType.UNAVAILABLE, "the broker refused the message (basic.nack): it could not "
                                                  "take it")


async def _blocked(connection: Any) -> bool:
    """Whether the broker said ``connection.blocked`` (``ready()`` waits for it to be lifted)."""
    waiting = asyncio.ensure_future(connection.ready())
    await asyncio.sleep(0)
    blocked = not waiting.done()
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    return blocked


def _judge(o: AmqpOptions, messages: int, consumers: int) -> None:
    if o.max_messages is not None and messages > o.max_messages:
        raise ProbeFailure(ErrorType.ASSERTION, f"queue {o.queue} holds {messages} ready messages, more than "
                                                f"max_messages {o.max_messages} ({consumers} consumers)")
    if o.min_consumers is not None and consumers < o.min_consumers:
        raise ProbeFailure(ErrorType.ASSERTION, f"queue {o.queue} has {consumers} consumers, fewer than "
                                                f"min_consumers {o.min_consumers} ({messages} ready messages)")


def _properties() -> Any:
    from pamqp.commands import Basic

    return Basic.Properties(delivery_mode=1, app_id="otel-health")


def _url(o: AmqpOptions) -> Any:
    from yarl import URL

    # heartbeat 0: a check's connection lives for one check; timeout is aiormq's own, bounded again by ours
    return URL.build(scheme="amqps" if o.tls else "amqp", host=o.host, port=o.port, user=o.username,
                     password=o.password.reveal() if o.password else "", path="/" + o.vhost.replace("/", "%2F"),
                     query={"heartbeat": "0"}, encoded=False)


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    return server_words(str(value)) if value is not None else ""


_connection_class: Any = None


def _connection_type() -> Any:
    """aiormq's connection, told to keep the broker's words when it refuses to open the virtual
    host (aiormq itself reports an unexpected frame there, and the reason is lost)."""
    global _connection_class
    if _connection_class is None:
        import pamqp.frame
        from aiormq import Connection
        from aiormq.connection import exception_by_code
        from aiormq.exceptions import InvalidFrameError, ProbableAuthenticationError
        from pamqp.commands import Connection as Methods

        class _Connection(Connection):
            @staticmethod
            async def _rpc(request: Any, writer: Any, frame_receiver: Any, wait_response: bool = True) -> Any:
                writer.write(pamqp.frame.marshal(request, 0))
                await writer.drain()
                if not wait_response:
                    return None
                _, _, frame = await frame_receiver.get_frame()
                if isinstance(frame, Methods.Close):
                    raise ProbableAuthenticationError(frame.reply_text) if frame.reply_code == 403 \
                        else exception_by_code(frame)
                if request.synchronous and frame.name not in request.valid_responses:
                    raise InvalidFrameError(f"expected one of {request.valid_responses!r}, got {frame.name}")
                return frame

        _connection_class = _Connection
    return _connection_class


_transport_class: Any = None


def _transport_type() -> Any:
    """aiormq's transport, with a reader that refuses a frame larger than :data:`MAX_FRAME`
    (aiormq reads a frame whole, as long as its header says: a peer that is not a broker, or a
    hostile one, would otherwise have the check buffer gigabytes)."""
    global _transport_class
    if _transport_class is None:
        from aiormq.connection import TransportFactory
        from aiormq.exceptions import AMQPConnectionError, InvalidFrameError

        class _Reader(asyncio.StreamReader):
            async def readexactly(self, n: int) -> bytes:
                if n > MAX_FRAME:
                    raise InvalidFrameError(f"a frame of {n} bytes announced, more than any broker sends a check")
                return await super().readexactly(n)

        class _Transport(TransportFactory):
            def __init__(self, context: ssl.SSLContext | None) -> None:
                self.context = context
                self.transport: asyncio.Transport | None = None

            def abort(self) -> None:
                if self.transport is not None:
                    self.transport.abort()

            async def create(self, url: Any, **options: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
                loop = asyncio.get_running_loop()
                reader = _Reader(limit=1 << 16, loop=loop)
                protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
                try:
                    self.transport, _ = await loop.create_connection(lambda: protocol, url.host, url.port,
                                                                     ssl=self.context)
                except OSError as exc:
                    raise AMQPConnectionError(*exc.args) from exc
                return reader, asyncio.StreamWriter(self.transport, protocol, reader, loop)

        _transport_class = _Transport
    return _transport_class


def _classify_amqp(exc: BaseException) -> tuple[ErrorType, str] | None:
    from aiormq import exceptions as amqp

    said = server_words(_said(exc))
    if isinstance(exc, amqp.ProbableAuthenticationError):
        return ErrorType.AUTH, f"the broker refused the login ({said})"
    if isinstance(exc, amqp.AuthenticationError):
        return ErrorType.AUTH, "the broker offers no login mechanism this client has (PLAIN, AMQPLAIN)"
    if isinstance(exc, amqp.ConnectionNotAllowed):
        if "not found" in said:
            return ErrorType.ASSERTION, f"the virtual host does not exist ({said})"
        return ErrorType.AUTH, f"the login may not use the virtual host ({said})"
    if isinstance(exc, amqp.ChannelNotFoundEntity):
        return ErrorType.ASSERTION, f"the queue does not exist ({said})"
    if isinstance(exc, amqp.ChannelAccessRefused):
        return ErrorType.AUTH, f"the login may not do this ({said})"
    if isinstance(exc, amqp.ChannelLockedResource):
        return ErrorType.ASSERTION, f"the queue is exclusive to another connection ({said})"
    if isinstance(exc, amqp.ConnectionResourceError):
        return ErrorType.TOO_MANY_CONNECTIONS, f"the broker is at a limit ({said})"
    if isinstance(exc, amqp.ConnectionInternalError):
        return ErrorType.UNAVAILABLE, f"the broker had an internal error ({said})"
    if isinstance(exc, amqp.ConnectionClosed) and _code(exc) == 320:
        return ErrorType.UNAVAILABLE, f"the broker closed the connection: shutting down, or an operator ({said})"
    if isinstance(exc, amqp.IncompatibleProtocolError):
        return ErrorType.PROTOCOL, "the peer closed the connection at AMQP's greeting: it does not speak AMQP 0-9-1"
    if isinstance(exc, amqp.ProtocolSyntaxError):
        return ErrorType.PROTOCOL, f"the peer does not speak AMQP 0-9-1 ({said})"
    if isinstance(exc, amqp.AMQPError):
        cause = os_cause(exc)
        if cause is not None:
            return classify_os_error(cause)
        return ErrorType.CONNECTION_RESET, f"the connection failed ({type(exc).__name__}: {said})"
    return None


def _code(exc: BaseException) -> int:
    first = exc.args[0] if exc.args else None
    return first if isinstance(first, int) else 0


def _said(exc: BaseException) -> str:
    """The broker's reply text of an aiormq exception (its arguments are the code and the text,
    or the text alone)."""
    texts = [arg for arg in exc.args if isinstance(arg, str)]
    return texts[-1] if texts else type(exc).__name__
