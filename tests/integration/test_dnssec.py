"""dnssec: validate against signed zones served by NSD (signed by ldns-signzone), held to
unbound's verdict on the same names with the same anchor at the same instant: a parent zone
whose key is the anchor, a child signed well, one whose signatures expired, one altered after
signing, one not signed. The probe's clock is set inside the signatures' validity window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from otel_health.errors import ErrorType
from otel_health.probes import ProbeSettings
from tests.harness import servers, targets
from tests.harness.checks import check_once, what
from tests.harness.clock import SetClock

pytestmark = pytest.mark.integration

NAMES = {"parent": "www.test", "child": "www.chain.test", "expired": "www.expired.test",
         "tampered": "www.tampered.test", "unsigned": "www.plain.test"}


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.SignedNsd]:
    server = servers.start_signed_nsd(tmp_path_factory.mktemp("signed"))
    yield server
    server.stop()


def _dns(name: str, server: servers.SignedNsd, query_name: str, **fields: object) -> str:
    return targets.entry(name, "dns", server=server.server, query_name=query_name, timeout="3s",
                         dnssec="validate", trust_anchor=[server.anchor], **fields)


async def test_our_verdicts_are_unbounds_on_the_same_zones(signed: servers.SignedNsd) -> None:
    settings = ProbeSettings(clock=SetClock(servers.SIGNED_AT))
    results = await check_once("".join(_dns(key, signed, name) for key, name in NAMES.items()), settings)
    ours = {key: "secure" if r.up else "insecure" if "insecure" in r.detail else "bogus"
            for key, r in results.items()}
    theirs = {key: signed.unbound_verdict(name) for key, name in NAMES.items()}
    assert ours == theirs == {"parent": "secure", "child": "secure", "expired": "bogus", "tampered": "bogus",
                              "unsigned": "insecure"}, {k: r.detail for k, r in results.items()}
    for key in ("parent", "child"):
        result = results[key]
        assert {"query", "dnssec"} <= set(result.phases), result.phases
        # the first signature of the chain to expire: every good one was made to end on 2030-03-01
        assert result.dnssec_expiry == datetime.fromisoformat("2030-03-01T00:00:00+00:00").timestamp()
    for key in ("expired", "tampered", "unsigned"):
        assert results[key].error_type == ErrorType.DNSSEC, (key, results[key].detail)
    assert what(results["expired"].detail) == "the RRSIG over www.expired.test A expired at 2029-12-01T00:00:00Z"
    assert what(results["tampered"].detail).startswith("the RRSIG over www.tampered.test A does not verify with "
                                                       "the DNSKEYs of tampered.test")
    assert what(results["unsigned"].detail) == ("plain.test has no DS at its parent: the delegation is not signed, "
                                                "so nothing under it can be validated (insecure)")


async def test_a_validation_is_judged_at_the_probes_clock_and_against_its_anchor(
        signed: servers.SignedNsd) -> None:
    late = ProbeSettings(clock=SetClock("2030-04-01T00:00:00+00:00"))
    early = ProbeSettings(clock=SetClock("2029-06-01T00:00:00+00:00"))
    after = await check_once(_dns("late", signed, "www.chain.test"), late)
    before = await check_once(_dns("early", signed, "www.chain.test"), early)
    assert what(after["late"].detail).startswith("the RRSIG over ")
    assert "expired at 2030-03-01T00:00:00Z" in after["late"].detail
    assert "is not valid before 2030-01-01T00:00:00Z" in before["early"].detail
    wrong = signed.anchor.replace(signed.anchor.split()[-1], "00" * 32)
    other = await check_once(targets.entry("other", "dns", server=signed.server, query_name="www.chain.test",
                                           timeout="3s", dnssec="validate", trust_anchor=[wrong]),
                             ProbeSettings(clock=SetClock(servers.SIGNED_AT)))
    assert what(other["other"].detail) == ("no DNSKEY of test matches its trust anchor (a key rollover the anchor "
                                           "missed?)")
    by_key = await check_once(targets.entry("by-key", "dns", server=signed.server, query_name="www.chain.test",
                                            timeout="3s", dnssec="validate", trust_anchor=[signed.anchor_key]),
                              ProbeSettings(clock=SetClock(servers.SIGNED_AT)))
    assert by_key["by-key"].up, by_key["by-key"].detail  # a DNSKEY anchors as well as its DS
    unanchored = await check_once(targets.entry("root", "dns", server=signed.server, query_name="www.chain.test",
                                                timeout="3s", dnssec="validate"),
                                  ProbeSettings(clock=SetClock(servers.SIGNED_AT)))
    assert unanchored["root"].error_type == ErrorType.DNSSEC  # the root's anchors: test. is not under them here
