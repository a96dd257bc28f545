"""The radius kind's options and its dictionary (pure logic: the wire is in
tests/integration/test_radius.py, against FreeRADIUS)."""

from __future__ import annotations

import pytest
from pyrad.dictionary import Dictionary
from pyrad.packet import AuthPacket

from otel_health.probes.radius import DICTIONARY, RadiusOptions
from tests.harness.checks import options_of


def test_credentials_are_by_reference_and_shown_by_their_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW", "pw-unit-7781")
    monkeypatch.setenv("SECRET", "secret-unit-7781")
    options = options_of(RadiusOptions, "kind: radius, host: 192.0.2.1, username: monitor, password: '${PW}', "
                                        "secret: '${SECRET}'")
    assert options.port == 1812
    assert sorted(s.reveal() for s in options.secrets()) == ["pw-unit-7781", "secret-unit-7781"]
    assert options.public()["secret"] == "env:SECRET" and "7781" not in repr(options.public())


def test_the_shipped_dictionary_encodes_a_request_a_server_can_read() -> None:
    packet = AuthPacket(secret=b"s3cret", dict=Dictionary(str(DICTIONARY)), User_Name="monitor",
                        NAS_Identifier="otel-health")
    packet["User-Password"] = packet.PwCrypt("pw")
    raw = packet.RequestPacket()
    assert raw[0] == 1 and b"monitor" in raw and b"otel-health" in raw  # code 1: Access-Request
    again = AuthPacket(secret=b"s3cret", dict=Dictionary(str(DICTIONARY)), packet=raw)
    assert again.PwDecrypt(again["User-Password"][0]) == "pw"
