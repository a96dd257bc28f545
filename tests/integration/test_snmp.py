"""The snmp kind against a real agent (Net-SNMP's snmpd, Debian's, an instance of its own):
SNMPv2c with its community and SNMPv3 with a user (SHA-256, AES), an object read and matched;
and each way a check fails named: a wrong community (the agent stays silent), a wrong key and an
unknown user (SNMPv3's reports), an object the agent does not have, a value that does not match,
a port nothing listens on."""

from __future__ import annotations

import pytest

from otel_health.errors import ErrorType
from tests.harness import servers, targets
from tests.harness.checks import assert_failed, check_once
from tests.harness.procs import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch, snmp_agent: servers.Snmpd) -> None:
    monkeypatch.setenv("SNMP_COMMUNITY", snmp_agent.community)
    monkeypatch.setenv("SNMP_AUTH", snmp_agent.auth_password)
    monkeypatch.setenv("SNMP_PRIVACY", snmp_agent.privacy_password)
    monkeypatch.setenv("WRONG", "not-the-key-at-all")


def _v2c(name: str, port: int, *, community: str = "${SNMP_COMMUNITY}", timeout: str = "2s", **fields: object) -> str:
    return targets.entry(name, "snmp", host="127.0.0.1", port=port, community=community, timeout=timeout, **fields)


def _v3(name: str, port: int, *, user: str = "checker", auth: str = "${SNMP_AUTH}", **fields: object) -> str:
    return targets.entry(name, "snmp", host="127.0.0.1", port=port, version="3", username=user, auth_password=auth,
                         privacy_password="${SNMP_PRIVACY}", timeout="3s", **fields)


async def test_an_object_read_over_snmpv2c_and_snmpv3(snmp_agent: servers.Snmpd) -> None:
    port = snmp_agent.port
    results = await check_once(
        _v2c("uptime", port)
        + _v2c("descr", port, oid="1.3.6.1.2.1.1.1.0", expect=f"^{servers.SYS_DESCR}$")
        + _v3("v3", port)
        + _v3("v3-descr", port, oid=".1.3.6.1.2.1.1.1.0", expect="test agent"))
    for name, result in results.items():
        assert result.up, (name, result.detail)
        assert set(result.phases) == {"get"}, (name, result.phases)


async def test_each_way_an_snmp_check_fails_is_named(snmp_agent: servers.Snmpd) -> None:
    port, closed = snmp_agent.port, free_port()
    results = await check_once(
        _v2c("wrong-community", port, community="${WRONG}", timeout="1s")
        + _v3("wrong-key", port, auth="${WRONG}")
        + _v3("unknown-user", port, user="nobody")
        + _v2c("no-object", port, oid="1.3.6.1.2.1.1.99.0")
        + _v2c("no-match", port, oid="1.3.6.1.2.1.1.1.0", expect="^Cisco IOS")
        + _v2c("closed", closed, timeout="1s"))
    assert_failed(results, {
        "wrong-community": (ErrorType.TIMEOUT, "no answer within 90% of the timeout (an agent given a wrong community "
                                               "stays silent too)"),
        "wrong-key": (ErrorType.AUTH, "the agent refused the user: Wrong SNMP PDU digest"),
        "unknown-user": (ErrorType.AUTH, "the agent refused the user: Unknown USM user"),
        "no-object": (ErrorType.ASSERTION, "the agent has no 1.3.6.1.2.1.1.99.0 (NoSuchObject)"),
        "no-match": (ErrorType.ASSERTION, f"the value '{servers.SYS_DESCR}' did not match '^Cisco IOS'"),
        "closed": (ErrorType.TIMEOUT, f"snmp 127.0.0.1:{closed} 1.3.6.1.2.1.1.3.0: no answer"),
    })
    for name, result in results.items():
        assert snmp_agent.community not in result.detail and "not-the-key" not in result.detail, name
        assert snmp_agent.auth_password not in result.detail, name
