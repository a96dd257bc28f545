"""The mqtt kind against a real broker (Mosquitto, Debian's, an instance of its own with logins,
an ACL, a TLS listener and a retained status): a session alone, a retained message matched, a
message published and received back, over MQTT 3.1.1 and 5 and TLS; and each way a check fails
named: a login refused, a topic nothing is published on, a message the login may not publish
(the broker drops it), no match, a port nothing listens on, a certificate not trusted."""

from __future__ import annotations

import pytest

from otel_health.errors import ErrorType
from tests.harness import servers, targets
from tests.harness.checks import assert_failed, check_once
from tests.harness.procs import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch, seeded_password: str) -> None:
    monkeypatch.setenv("MQTT_PASSWORD", seeded_password)
    monkeypatch.setenv("WRONG_PASSWORD", "not-it")


def _mqtt(name: str, port: int, *, user: str | None = "checker", timeout: str = "2s", **fields: object) -> str:
    login = {"username": user, "password": "${MQTT_PASSWORD}"} if user else {}
    return targets.entry(name, "mqtt", host="127.0.0.1", port=port, timeout=timeout, **login, **fields)


async def test_a_session_a_retained_status_and_a_round_trip(mqtt_broker: servers.Mosquitto) -> None:
    b = mqtt_broker
    results = await check_once(
        _mqtt("session", b.port)
        + _mqtt("status", b.port, topic="status/api", expect="^ok build=\\d+$")
        + _mqtt("status-v5", b.port, topic="status/api", expect="^ok", protocol="5")
        + _mqtt("round-trip", b.port, topic="health/otel-health", publish="ping")
        + _mqtt("round-trip-v5", b.port, topic="health/otel-health", publish="ping", protocol="5")
        + _mqtt("tls", b.tls_port, tls=True, ca_file=str(b.ca_file), topic="status/api"))
    for name, result in results.items():
        assert result.up, (name, result.detail)
    assert set(results["session"].phases) == {"connect"}
    assert set(results["round-trip"].phases) == {"connect", "subscribe", "publish", "receive"}
    assert set(results["status"].phases) == {"connect", "subscribe", "receive"}


async def test_each_way_an_mqtt_check_fails_is_named(mqtt_broker: servers.Mosquitto) -> None:
    b = mqtt_broker
    closed = free_port()
    results = await check_once(
        targets.entry("wrong-password", "mqtt", host="127.0.0.1", port=b.port, username="checker",
                      password="${WRONG_PASSWORD}", timeout="2s")
        + _mqtt("anonymous", b.port, user=None, protocol="5")
        + _mqtt("quiet-topic", b.port, topic="health/nothing-here", timeout="1s")
        + _mqtt("not-allowed", b.port, user="reader", topic="status/api", publish="x", timeout="1s")
        + _mqtt("no-match", b.port, topic="status/api", expect="^down", timeout="1s")
        + _mqtt("closed", closed)
        + _mqtt("untrusted", b.tls_port, tls=True))
    assert_failed(results, {
        "wrong-password": (ErrorType.AUTH, "not authorised (the broker's CONNACK: 135)"),
        "anonymous": (ErrorType.AUTH, "not authorised"),
        "quiet-topic": (ErrorType.TIMEOUT, "topic health/nothing-here: no message on the topic within the timeout"),
        "not-allowed": (ErrorType.TIMEOUT, "the message published did not come back within the timeout"),
        "no-match": (ErrorType.ASSERTION, "no message matched '^down' within the timeout (1 came; the last: "
                                          "'ok build=42')"),
        "closed": (ErrorType.CONNECTION_REFUSED, f"mqtt://127.0.0.1:{closed}: connection refused"),
        "untrusted": (ErrorType.TLS, f"mqtts://127.0.0.1:{b.tls_port}: certificate not accepted"),
    })
    for name, result in results.items():
        assert "Zq7-SEEDED" not in result.detail and "not-it" not in result.detail, name
        assert result.duration < 1.5 or name == "wrong-password", (name, result.duration)
