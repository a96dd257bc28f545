"""Kafka probe: the cluster's metadata from a bootstrap broker (TLS, SASL), the brokers and the
controller; with ``topic``, every partition led by a live broker and kept in sync, and one
message produced to each partition with ``acks=all``; on aiokafka.

A topic whose partition has no leader, or whose in-sync replicas fell below its replicas, still
answers metadata, and a producer writing to another partition sees nothing wrong: the check reads
each partition's state and writes to every partition (one request a broker), so a partition no
producer can write to is named. Messages carry the key ``otel-health`` and a small JSON value, so
consumers of a health topic can tell them apart."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, PasswordOptions, Probe, classify_os_error, close_within, os_cause, server_words
from ._tls import client_context

__all__ = ["KafkaOptions", "KafkaProbe"]

_BROKER_RE = re.compile(r"^[A-Za-z0-9.\-_]{1,253}:\d{1,5}$|^\[[0-9A-Fa-f:.]+\]:\d{1,5}$")
_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
MAX_PARTITIONS = 256  # partitions written to in one check; a larger topic's are checked, not all written


@dataclass(frozen=True, slots=True)
class KafkaOptions(PasswordOptions):
    brokers: tuple[str, ...]
    tls: bool = False
    tls_verify: bool = True
    ca_file: Path | None = None
    sasl_mechanism: str | None = None
    username: str | None = None
    password: Secret | None = None
    topic: str | None = None
    produce: bool = True
    min_brokers: int = 1

    @classmethod
    def parse(cls, f: Fields) -> KafkaOptions | None:
        raw = f.sequence("brokers")
        brokers = tuple(str(b) for b in raw if isinstance(b, str) and _BROKER_RE.match(b))
        if not raw:
            f.problem("brokers", "is required: the bootstrap brokers, as a list of host:port ([kafka-1:9092])")
        elif len(brokers) != len(raw):
            bad = next(b for b in raw if not (isinstance(b, str) and _BROKER_RE.match(b)))
            f.problem("brokers", f"each broker is host:port, got {str(bad)[:80]!r}")
        mechanism = f.text("sasl_mechanism", choices=_MECHANISMS)
        topic = f.text("topic")
        options = cls(
            brokers=brokers, tls=f.flag("tls", False), tls_verify=f.flag("tls_verify", True),
            ca_file=f.path("ca_file"), sasl_mechanism=mechanism, username=f.text("username"),
            password=f.secret("password"), topic=topic, produce=f.flag("produce", True),
            min_brokers=f.whole("min_brokers", 1, minimum=1, maximum=10_000),
        )
        if mechanism is not None and (options.username is None or options.password is None):
            f.problem("sasl_mechanism", "needs a username and a password (by reference)")
        if mechanism is None and (options.username is not None or f.has("password")):
            f.problem("username" if options.username is not None else "password",
                      "is sent with SASL: add 'sasl_mechanism: PLAIN' (or SCRAM-SHA-256, SCRAM-SHA-512)")
        if topic is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic):
            f.problem("topic", "is not a Kafka topic name: 1 to 249 of letters, digits, '.', '_' and '-'")
        if not options.tls and (f.has("ca_file") or f.has("tls_verify")):
            f.problem("ca_file" if f.has("ca_file") else "tls_verify", "applies to TLS: add 'tls: true'")
        return options if brokers and len(brokers) == len(raw) else None

    def where(self) -> str:
        return f"kafka {self.brokers[0]}" + (f" topic {self.topic}" if self.topic else "")

    def public(self) -> dict[str, Any]:
        return {"brokers": list(self.brokers), "tls": self.tls, "sasl_mechanism": self.sasl_mechanism,
                "username": self.username, "password": self.password.source if self.password else None,
                "topic": self.topic, "produce": self.produce, "min_brokers": self.min_brokers}


class KafkaProbe(Probe):
    kind = "kafka"
    component_type = "component"
    check_name = "connectivity"
    info_labels = ("controller",)
    options_type = KafkaOptions

    def _load(self) -> None:
        import aiokafka  # noqa: F401 - imported once, off the loop, before the first check

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        return _classify_kafka(exc) or classify_os_error(exc)

    async def _check(self, target: Target, attempt: Attempt) -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaConnectionError

        o: KafkaOptions = target.options
        limit_ms = max(100, int(target.timeout * 900))
        security = ("SASL_SSL" if o.sasl_mechanism else "SSL") if o.tls else \
            ("SASL_PLAINTEXT" if o.sasl_mechanism else "PLAINTEXT")
        connection: dict[str, Any] = {
            "client_id": "otel-health", "request_timeout_ms": limit_ms, "security_protocol": security,
            "ssl_context": client_context(verify=o.tls_verify, ca_file=o.ca_file) if o.tls else None,
            "sasl_mechanism": o.sasl_mechanism or "PLAIN", "sasl_plain_username": o.username,
            "sasl_plain_password": o.password.reveal() if o.password else None}
        producer = AIOKafkaProducer(bootstrap_servers=list(o.brokers), acks="all", retry_backoff_ms=50, linger_ms=0,
                                    enable_idempotence=False, **connection)
        attributes: dict[str, str | int] = {"messaging.system": "kafka", "server.address": o.brokers[0]}
        try:
            with self.step(attempt, "connect", "metadata", attributes) as span:
                try:
                    await producer.start()
                except KafkaConnectionError:
                    await _why(o.brokers[0], connection)  # aiokafka logs each broker's reason and raises none
                    raise
                cluster = producer.client.cluster
                brokers = cluster.brokers()
                span.set_attribute("messaging.kafka.brokers", len(brokers))
            controller = getattr(cluster, "controller", None)
            attempt.info["controller"] = str(controller.nodeId) if controller is not None else ""
            if len(brokers) < o.min_brokers:
                raise ProbeFailure(ErrorType.UNAVAILABLE, f"{len(brokers)} broker{'s' if len(brokers) != 1 else ''} "
                                                          f"in the cluster, fewer than min_brokers {o.min_brokers}")
            if o.topic is not None:
                await self._topic(o, producer, attempt, {**attributes, "messaging.destination.name": o.topic})
        finally:
            await close_within(producer.stop(), seconds=2.0)

    async def _topic(self, o: KafkaOptions, producer: Any, attempt: Attempt, attributes: dict[str, str | int]) -> None:
        assert o.topic is not None
        with self.step(attempt, "topic", f"topic {o.topic}", attributes):
            partitions = await producer.partitions_for(o.topic)  # metadata for it, asked if not known
            _judge(o.topic, producer.client.cluster, sorted(partitions))
        if o.produce:
            chosen = sorted(partitions)[:MAX_PARTITIONS]
            with self.step(attempt, "produce", f"send {o.topic}", attributes) as span:
                value = json.dumps({"source": "otel-health", "check": "kafka"}).encode()
                sent = [await producer.send(o.topic, value=value, key=b"otel-health", partition=p) for p in chosen]
                for p, waiting in zip(chosen, sent, strict=True):
                    try:
                        await waiting
                    except Exception as exc:
                        exc.add_note(f"partition {p}")
                        raise
                span.set_attribute("messaging.batch.message_count", len(chosen))


async def _why(broker: str, connection: dict[str, Any]) -> None:
    """Raise what the first broker answers a connection of the check's own (refused, a login
    refused, TLS): aiokafka's bootstrap tells only that no broker could be used."""
    from aiokafka.conn import create_conn

    host, _, port = broker.rpartition(":")
    made = await create_conn(host.strip("[]"), int(port), **connection)
    made.close()


def _judge(topic: str, cluster: Any, partitions: list[int]) -> None:
    """Every partition led by a live broker, its in-sync replicas all its replicas."""
    leaderless = [p for p in partitions if (cluster.leader_for_partition(_tp(topic, p)) or -1) < 0]
    if leaderless:
        raise ProbeFailure(ErrorType.UNAVAILABLE, f"{_some(leaderless)} of topic {topic} {_have(leaderless)} no "
                                                  "leader: no producer can write there")
    metadata = getattr(cluster, "_partitions", {}).get(topic, {})  # aiokafka keeps replicas and ISR only here
    behind = [p for p in partitions if p in metadata and len(metadata[p].isr) < len(metadata[p].replicas)]
    if behind:
        worst = min(behind, key=lambda p: len(metadata[p].isr))
        raise ProbeFailure(ErrorType.UNAVAILABLE, f"{_some(behind)} of topic {topic} under-replicated (partition "
                                                  f"{worst}: {len(metadata[worst].isr)} of "
                                                  f"{len(metadata[worst].replicas)} replicas in sync)")


def _tp(topic: str, partition: int) -> Any:
    from aiokafka.structs import TopicPartition

    return TopicPartition(topic, partition)


def _some(partitions: list[int]) -> str:
    shown = ", ".join(str(p) for p in partitions[:5]) + (", …" if len(partitions) > 5 else "")
    return f"partition{'s' if len(partitions) != 1 else ''} {shown}"


def _have(partitions: list[int]) -> str:
    return "have" if len(partitions) != 1 else "has"


_NAMED: tuple[tuple[str, ErrorType, str], ...] = (
    ("SaslAuthenticationFailed", ErrorType.AUTH, "the broker refused the login"),
    ("AuthenticationFailedError", ErrorType.AUTH, "the broker refused the login"),
    ("UnsupportedSaslMechanismError", ErrorType.AUTH, "the broker does not offer this SASL mechanism"),
    ("TopicAuthorizationFailedError", ErrorType.AUTH, "the login may not use the topic"),
    ("ClusterAuthorizationFailedError", ErrorType.AUTH, "the login may not do this on the cluster"),
    ("UnknownTopicOrPartitionError", ErrorType.ASSERTION, "the topic does not exist"),
    ("NotEnoughReplicasError", ErrorType.UNAVAILABLE, "fewer in-sync replicas than the topic's "
                                                      "min.insync.replicas: the broker refuses writes"),
    ("NotEnoughReplicasAfterAppendError", ErrorType.UNAVAILABLE, "the write was not replicated to "
                                                                 "min.insync.replicas"),
    ("LeaderNotAvailableError", ErrorType.UNAVAILABLE, "a partition has no leader"),
    ("NotLeaderForPartitionError", ErrorType.UNAVAILABLE, "a partition's leader moved"),
    ("RequestTimedOutError", ErrorType.TIMEOUT, "the broker did not answer within the timeout"),
    ("KafkaTimeoutError", ErrorType.TIMEOUT, "the broker did not answer within the timeout"),
)


def _classify_kafka(exc: BaseException) -> tuple[ErrorType, str] | None:
    from aiokafka import errors

    if not isinstance(exc, errors.KafkaError):
        return None
    notes = "; ".join(getattr(exc, "__notes__", ()))
    where = f" ({notes})" if notes else ""
    names = {cls.__name__ for cls in type(exc).__mro__}
    for name, error_type, words in _NAMED:
        if name in names:
            return error_type, f"{words}{where}"
    if isinstance(exc, errors.KafkaConnectionError):
        cause = os_cause(exc)
        if cause is not None:
            return classify_os_error(cause)
        said = server_words(str(exc))
        if "refused" in said.lower():
            return ErrorType.CONNECTION_REFUSED, "connection refused"
        return ErrorType.CONNECTION_RESET, f"no broker could be reached ({said})"
    return ErrorType.PROTOCOL, f"the broker answered with an error ({type(exc).__name__}: {server_words(str(exc))})" \
        f"{where}"

