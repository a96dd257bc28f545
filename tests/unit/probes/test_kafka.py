"""The kafka kind's options, its reading of a topic's partitions and of a broker's refusals (pure
logic: the wire is in tests/integration/test_kafka.py, against Apache Kafka)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiokafka import errors

from otel_health.errors import ErrorType, ProbeFailure
from otel_health.probes import ProbeSettings
from otel_health.probes.kafka import KafkaOptions, KafkaProbe, _judge
from tests.harness.checks import options_of, raised_from


def test_the_password_is_by_reference_and_sasl_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW", "pw-unit-7781")
    options = options_of(KafkaOptions, "kind: kafka, brokers: ['kafka-1:9093', '[2001:db8::1]:9093'], tls: true, "
                                       "sasl_mechanism: SCRAM-SHA-512, username: monitor, password: '${PW}', "
                                       "topic: health.checks")
    assert options.brokers == ("kafka-1:9093", "[2001:db8::1]:9093") and options.produce
    assert [s.reveal() for s in options.secrets()] == ["pw-unit-7781"]
    assert options.public()["password"] == "env:PW" and "7781" not in repr(options.public())
    assert options.where() == "kafka kafka-1:9093 topic health.checks"


class _Cluster:
    def __init__(self, leaders: dict[int, int], isr: dict[int, int], replicas: int = 3) -> None:
        self.leaders = leaders
        self._partitions = {"t": {p: SimpleNamespace(isr=[0] * n, replicas=[0] * replicas) for p, n in isr.items()}}

    def leader_for_partition(self, tp: object) -> int:
        return self.leaders[tp.partition]  # type: ignore[attr-defined]


def test_a_partition_without_a_leader_or_behind_in_sync_is_named() -> None:
    _judge("t", _Cluster({0: 1, 1: 2}, {0: 3, 1: 3}), [0, 1])
    with pytest.raises(ProbeFailure, match=r"partition 1 of topic t has no leader: no producer can write there"):
        _judge("t", _Cluster({0: 1, 1: -1}, {0: 3, 1: 3}), [0, 1])
    with pytest.raises(ProbeFailure, match=r"partitions 0, 2 of topic t under-replicated \(partition 2: 1 of 3 "):
        _judge("t", _Cluster({0: 1, 1: 2, 2: 3}, {0: 2, 1: 3, 2: 1}), [0, 1, 2])


def test_refusals_are_named() -> None:
    probe = KafkaProbe(ProbeSettings())
    cases = ((errors.SaslAuthenticationFailed(), ErrorType.AUTH, "refused the login"),
             (errors.TopicAuthorizationFailedError(), ErrorType.AUTH, "may not use the topic"),
             (errors.UnknownTopicOrPartitionError(), ErrorType.ASSERTION, "the topic does not exist"),
             (errors.NotEnoughReplicasError(), ErrorType.UNAVAILABLE, "min.insync.replicas"),
             (errors.KafkaTimeoutError(), ErrorType.TIMEOUT, "did not answer"))
    for exc, error_type, words in cases:
        got = probe._classify(exc)
        assert got[0] is error_type and words in got[1], (exc, got)
    refused = raised_from(errors.KafkaConnectionError("Unable to bootstrap"), ConnectionRefusedError(111, "x"))
    assert probe._classify(refused)[0] is ErrorType.CONNECTION_REFUSED
    noted = errors.NotEnoughReplicasError()
    noted.add_note("partition 4")
    assert probe._classify(noted)[1].endswith("(partition 4)")
