"""The mqtt kind's reading of a broker's refusals, MQTT 3.1.1's return codes and MQTT 5's reason
codes alike (pure logic: the wire is in tests/integration/test_mqtt.py, against Mosquitto)."""

from __future__ import annotations

from aiomqtt import MqttError
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from otel_health.errors import ErrorType
from otel_health.probes import ProbeSettings
from otel_health.probes.mqtt import MqttProbe


def test_a_refused_connect_is_named_by_its_code_in_either_version() -> None:
    probe = MqttProbe(ProbeSettings())
    for rc, expected, said in ((4, ErrorType.AUTH, "bad user name or password (the broker's CONNACK: 4)"),
                               (3, ErrorType.UNAVAILABLE, "the broker is unavailable"),
                               (1, ErrorType.PROTOCOL, "does not speak this protocol version"),
                               (ReasonCode(PacketTypes.CONNACK, identifier=0x86), ErrorType.AUTH,
                                "bad user name or password (the broker's CONNACK: 134)"),
                               (ReasonCode(PacketTypes.CONNACK, identifier=0x8A), ErrorType.AUTH, "banned"),
                               (ReasonCode(PacketTypes.CONNACK, identifier=0x88), ErrorType.UNAVAILABLE,
                                "unavailable")):
        error_type, detail = probe._classify(MqttConnectError(rc))
        assert (error_type, said in detail) == (expected, True), (rc, detail)


def test_a_session_that_failed_without_a_code_says_why() -> None:
    probe = MqttProbe(ProbeSettings())
    assert probe._classify(MqttError("Operation timed out"))[0] is ErrorType.TIMEOUT
    error_type, detail = probe._classify(MqttError("Unexpected packet from broker"))
    assert error_type is ErrorType.PROTOCOL and "Unexpected packet" in detail
    refused = MqttError("[Errno 111] Connection refused")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert probe._classify(refused)[0] is ErrorType.CONNECTION_REFUSED
