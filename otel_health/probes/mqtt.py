"""MQTT probe: a session with the broker (TLS, a login), and optionally a topic: subscribed to,
a message published on it and received back (the broker routes messages), or a message awaited
there (a retained status, a device's heartbeat) and matched; on aiomqtt (paho-mqtt's client).

Each check is a session of its own: a clean session, a client id made for it
(``otel-health-`` and random hex), QoS 1 for its subscription and its message, and a clean
DISCONNECT at the end. A refused CONNECT, SUBSCRIBE or PUBLISH is named by the broker's reason
code (bad user name or password, not authorised, server unavailable…)."""

from __future__ import annotations

import asyncio
import re
import secrets
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, PasswordOptions, Probe, answer_by, classify_os_error, host_port, os_cause, server_words
from ._match import Pattern, pattern_field
from ._tls import client_context

__all__ = ["MqttOptions", "MqttProbe"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]_]{1,253}$")
_PROTOCOLS = ("3.1.1", "5")
SHOWN = 80  # characters of a message a failure's detail shows


@dataclass(frozen=True, slots=True)
class MqttOptions(PasswordOptions):
    host: str
    port: int = 1883
    tls: bool = False
    tls_verify: bool = True
    ca_file: Path | None = None
    username: str | None = None
    password: Secret | None = None
    protocol: str = "3.1.1"
    topic: str | None = None
    publish: str | None = None
    expect: Pattern | None = None

    @classmethod
    def parse(cls, f: Fields) -> MqttOptions | None:
        host = f.text("host", required=True, pattern=_HOST_RE, hint="use a host name or an IP address")
        tls = f.flag("tls", False)
        topic = f.text("topic")
        expect = pattern_field(f, "expect")
        options = cls(
            host=host or "", port=f.whole("port", 8883 if tls else 1883, minimum=1, maximum=65535), tls=tls,
            tls_verify=f.flag("tls_verify", True), ca_file=f.path("ca_file"),
            username=f.text("username"), password=f.secret("password"),
            protocol=f.text("protocol", "3.1.1", choices=_PROTOCOLS) or "3.1.1",
            topic=topic, publish=f.text("publish"), expect=expect,
        )
        if topic is not None and (not topic or "\0" in topic or len(topic.encode()) > 65535):
            f.problem("topic", "is not an MQTT topic: 1 to 65,535 bytes, no NUL")
        if topic is None and (options.publish is not None or f.has("expect")):
            f.problem("publish" if options.publish is not None else "expect",
                      "needs a topic: add 'topic: health/otel-health' (one the login may use)")
        if options.publish is not None and topic is not None and ("+" in topic or "#" in topic):
            f.problem("topic", "has a wildcard (+ or #), which a message cannot be published to; name one topic")
        if (f.has("password") or options.password is not None) and options.username is None:
            f.problem("password", "needs a username: add 'username'")
        return options if host else None

    def where(self) -> str:
        return f"mqtt{'s' if self.tls else ''}://{host_port(self.host, self.port)}" + \
            (f" topic {self.topic}" if self.topic else "")

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "tls": self.tls, "username": self.username,
                "password": self.password.source if self.password else None, "protocol": self.protocol,
                "topic": self.topic, "publish": self.publish is not None,
                "expect": self.expect.pattern if self.expect is not None else None}


class MqttProbe(Probe):
    kind = "mqtt"
    component_type = "component"
    check_name = "connectivity"
    options_type = MqttOptions

    def _load(self) -> None:
        import aiomqtt  # noqa: F401 - imported once, off the loop, before the first check

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        return _classify_mqtt(exc) or classify_os_error(exc)

    async def _check(self, target: Target, attempt: Attempt) -> None:
        import aiomqtt

        o: MqttOptions = target.options
        deadline = answer_by(target.timeout)  # what did not come by then is named
        attributes: dict[str, str | int] = {"messaging.system": "mqtt", "server.address": o.host,
                                            "server.port": o.port}
        context = _tracked(client_context(verify=o.tls_verify, ca_file=o.ca_file)) if o.tls else None
        client = aiomqtt.Client(
            o.host, o.port, username=o.username, password=o.password.reveal() if o.password else None,
            identifier=f"otel-health-{secrets.token_hex(6)}",
            protocol=aiomqtt.ProtocolVersion.V5 if o.protocol == "5" else aiomqtt.ProtocolVersion.V311,
            clean_session=True if o.protocol != "5" else None, timeout=target.timeout,
            tls_context=context, tls_insecure=not o.tls_verify if o.tls else None)
        with self.step(attempt, "connect", "connect", attributes):
            try:
                await client.__aenter__()
            except BaseException:
                for sock in getattr(context, "otel_health_sockets", ()):
                    sock.close()  # paho leaves a socket whose TLS handshake failed to the collector
                raise
        try:
            if o.topic is not None:
                await self._exchange(o, client, attempt, {**attributes, "messaging.destination.name": o.topic},
                                     deadline)
        finally:
            await _leave(client)

    async def _exchange(self, o: MqttOptions, client: Any, attempt: Attempt, attributes: dict[str, str | int],
                        deadline: float) -> None:
        assert o.topic is not None
        with self.step(attempt, "subscribe", f"subscribe {o.topic}", attributes):
            granted = await client.subscribe(o.topic, qos=1)
            refused = [code for code in _codes(granted) if code >= 0x80]
            if refused:
                raise ProbeFailure(ErrorType.AUTH, f"the broker refused the subscription (reason 0x{refused[0]:02x}: "
                                                   f"{_reason(refused[0])})")
        token = f"{o.publish} {secrets.token_hex(4)}" if o.publish is not None else None
        if token is not None:
            with self.step(attempt, "publish", f"publish {o.topic}", attributes):
                await client.publish(o.topic, token, qos=1)
        with self.step(attempt, "receive", f"receive {o.topic}", attributes):
            await _receive(o, client, token, deadline)


async def _receive(o: MqttOptions, client: Any, token: str | None, deadline: float) -> None:
    """Messages on the topic until the one published comes back (or, without one, until one
    matches ``expect``, or any does)."""
    came, last = 0, ""
    try:
        async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes | bytearray) \
                    else str(message.payload).encode()
                came, last = came + 1, bytes(payload).decode("utf-8", "replace")
                if token is not None:
                    if last == token and (o.expect is None or o.expect.found(last)):
                        return
                    continue
                if o.expect is None or o.expect.found(last):
                    return
    except TimeoutError:
        pass
    if token is not None:
        raise ProbeFailure(ErrorType.TIMEOUT, f"the message published did not come back within the timeout "
                                              f"({came} other message{'s' if came != 1 else ''} came)")
    if came:
        raise ProbeFailure(ErrorType.ASSERTION, f"no message matched {o.expect.pattern if o.expect else ''!r} "
                                                f"within the timeout ({came} came; the last: "
                                                f"{server_words(last)[:SHOWN]!r})")
    raise ProbeFailure(ErrorType.TIMEOUT, "no message on the topic within the timeout (nothing retained, nothing "
                                          "published meanwhile)")


class _Kept(ssl.SSLSocket):
    """A TLS socket its context remembers (``otel_health_sockets``), so that one paho made and
    dropped on a failed handshake is closed by the check, not left to the garbage collector."""

    @classmethod
    def _create(cls, *args: Any, **kwargs: Any) -> Any:
        made = super()._create(*args, **kwargs)  # type: ignore[misc]
        kept = getattr(kwargs.get("context"), "otel_health_sockets", None)
        if kept is not None:
            kept.append(made)
        return made


def _tracked(context: ssl.SSLContext) -> ssl.SSLContext:
    context.sslsocket_class = _Kept
    context.otel_health_sockets = []  # type: ignore[attr-defined]
    return context


async def _leave(client: Any) -> None:
    """DISCONNECT, bounded: a broker that stopped answering costs no more than a second."""
    try:
        async with asyncio.timeout(1.0):
            await client.__aexit__(None, None, None)
    except Exception:  # noqa: BLE001, S110 - the check is over; the connection goes either way
        pass


def _codes(granted: Any) -> list[int]:
    """The SUBACK's return codes, from MQTT 3.1.1's integers or MQTT 5's reason codes."""
    return [int(getattr(code, "value", code)) for code in (granted or ())]


_REASONS = {0x80: "unspecified error", 0x83: "implementation specific error", 0x86: "bad user name or password",
            0x87: "not authorised", 0x88: "server unavailable", 0x8F: "topic filter invalid",
            0x97: "quota exceeded"}


def _reason(code: int) -> str:
    return _REASONS.get(code, "refused")


_CONNECT_V3 = {1: (ErrorType.PROTOCOL, "the broker does not speak this protocol version"),
               2: (ErrorType.PROTOCOL, "the broker refused the client id"),
               3: (ErrorType.UNAVAILABLE, "the broker is unavailable"),
               4: (ErrorType.AUTH, "bad user name or password"),
               5: (ErrorType.AUTH, "not authorised")}
_CONNECT_V5 = {0x84: _CONNECT_V3[1], 0x85: _CONNECT_V3[2], 0x88: _CONNECT_V3[3], 0x89: _CONNECT_V3[3],
               0x86: _CONNECT_V3[4], 0x87: _CONNECT_V3[5], 0x8A: (ErrorType.AUTH, "the login is banned"),
               0x9F: (ErrorType.UNAVAILABLE, "the broker is over its connection rate")}


def _classify_mqtt(exc: BaseException) -> tuple[ErrorType, str] | None:
    from aiomqtt import MqttCodeError, MqttError
    from paho.mqtt.reasoncodes import ReasonCode

    if isinstance(exc, MqttCodeError) and exc.rc is not None:
        v5 = isinstance(exc.rc, ReasonCode)
        code = int(exc.rc.value) if isinstance(exc.rc, ReasonCode) else int(exc.rc)
        table = _CONNECT_V5 if v5 else _CONNECT_V3
        found = table.get(code)
        if found is not None:
            return found[0], f"{found[1]} (the broker's CONNACK: {code})"
    if isinstance(exc, MqttError):
        cause = os_cause(exc)
        if cause is not None:
            return classify_os_error(cause)
        said = str(exc)
        if "timed out" in said.lower():
            return ErrorType.TIMEOUT, f"the broker did not answer ({server_words(said)})"
        return ErrorType.PROTOCOL, f"the MQTT session failed: {server_words(said)}"
    return None
