"""The snmp kind's options and how an exchange's indication becomes an error type (pure logic:
the wire is in tests/integration/test_snmp.py, against Net-SNMP's agent)."""

from __future__ import annotations

import pytest

from otel_health.errors import ErrorType
from otel_health.probes.snmp import SnmpOptions, _indicated, _login
from tests.harness.checks import options_of


def _options(fields: str) -> SnmpOptions:
    return options_of(SnmpOptions, f"kind: snmp, host: 192.0.2.1, {fields}")


def test_credentials_are_by_reference_and_each_login_is_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A", "key-one-1234")
    monkeypatch.setenv("B", "key-two-5678")
    v2c = _options("community: '${A}', oid: .1.3.6.1.2.1.1.5.0")
    assert v2c.oid == "1.3.6.1.2.1.1.5.0" and v2c.public()["community"] == "env:A"
    one = _options('version: "3", username: monitor, auth_password: "${A}", privacy_password: "${B}"')
    two = _options('version: "3", username: monitor, auth_password: "${B}", privacy_password: "${B}"')
    assert [s.reveal() for s in one.secrets()] == ["key-one-1234", "key-two-5678"]
    assert _login(one) != _login(two) and _login(one) == _login(one)  # one engine a login
    assert "key-one" not in repr(one.public())


def test_an_indication_is_named_for_what_it_means() -> None:
    class RequestTimedOut:
        def __str__(self) -> str:
            return "No SNMP response received before timeout"

    class UnknownUserName:
        def __str__(self) -> str:
            return "Unknown USM user"

    v2c = SnmpOptions(host="192.0.2.1")
    silent = _indicated(v2c, RequestTimedOut())
    assert silent.error_type is ErrorType.TIMEOUT and "wrong community stays silent" in silent.detail
    refused = _indicated(SnmpOptions(host="192.0.2.1", version="3", username="u"), UnknownUserName())
    assert refused.error_type is ErrorType.AUTH and refused.detail == "the agent refused the user: Unknown USM user"
