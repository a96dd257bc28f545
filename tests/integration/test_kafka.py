"""The kafka kind against a real broker (Apache Kafka from Maven Central, one KRaft node with a
plain and a SASL/PLAIN listener): the cluster's metadata, a topic whose every partition is
written to, a login; and each way a check fails named: a topic that does not exist, fewer brokers
than asked, a login refused, a port nothing listens on. A partition without a leader or behind in
sync needs a cluster of several brokers (the unit tests hold those verdicts); Kafka 4 accepts
acks=all on one broker even under a min.insync.replicas above the replication factor."""

from __future__ import annotations

import pytest

from otel_health.errors import ErrorType
from tests.harness import servers, targets
from tests.harness.checks import assert_failed, check_once
from tests.harness.procs import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch, seeded_password: str) -> None:
    monkeypatch.setenv("KAFKA_PASSWORD", seeded_password)
    monkeypatch.setenv("WRONG_PASSWORD", "not-it")


@pytest.fixture(scope="module")
def topics(kafka_server: servers.Kafka) -> None:
    """``health``, of 3 partitions."""
    kafka_server.create_topic("health", partitions=3)


def _kafka(name: str, port: int, *, timeout: str = "5s", **fields: object) -> str:
    return targets.entry(name, "kafka", brokers=[f"127.0.0.1:{port}"], timeout=timeout, **fields)


async def test_metadata_a_topic_written_to_and_a_login(kafka_server: servers.Kafka, topics: None) -> None:
    k = kafka_server
    results = await check_once(
        _kafka("cluster", k.port)
        + _kafka("topic", k.port, topic="health")
        + _kafka("read-only", k.port, topic="health", produce=False)
        + _kafka("login", k.sasl_port, topic="health", sasl_mechanism="PLAIN", username="checker",
                 password="${KAFKA_PASSWORD}"))
    for name, result in results.items():
        assert result.up, (name, result.detail)
    assert set(results["cluster"].phases) == {"connect"}
    assert set(results["topic"].phases) == {"connect", "topic", "produce"}
    assert set(results["read-only"].phases) == {"connect", "topic"}
    assert results["topic"].info["controller"] == "1", results["topic"].info  # the one node's id


async def test_each_way_a_kafka_check_fails_is_named(kafka_server: servers.Kafka, topics: None) -> None:
    k = kafka_server
    closed = free_port()
    results = await check_once(
        _kafka("no-topic", k.port, topic="nothing-here", timeout="3s")
        + _kafka("too-few", k.port, min_brokers=3)
        + _kafka("wrong-password", k.sasl_port, sasl_mechanism="PLAIN", username="checker",
                 password="${WRONG_PASSWORD}")
        + _kafka("closed", closed, timeout="2s"))
    assert_failed(results, {
        "no-topic": (ErrorType.ASSERTION, "topic nothing-here: the topic does not exist"),
        "too-few": (ErrorType.UNAVAILABLE, "1 broker in the cluster, fewer than min_brokers 3"),
        "wrong-password": (ErrorType.AUTH, "the broker refused the login"),
        "closed": (ErrorType.CONNECTION_REFUSED, f"kafka 127.0.0.1:{closed}: connection refused"),
    })
    for name, result in results.items():
        assert k.password not in result.detail and "not-it" not in result.detail, name
