"""The whole presented chain and revocation, against a real CA's certificates: nginx serves
each chain with and without a stapled response (made by ``openssl ocsp``) and the CA's CRL
(``openssl ca -gencrl``), and ``openssl ocsp`` answers as the responder the certificates name
(tests/harness/servers/ocsp.py). The
intermediate expires a day before the leaves, so the chain's earliest expiry is not the leaf's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from otel_health.config.loader import load_text
from otel_health.errors import ErrorType
from otel_health.probes import PROBES, ProbeSettings
from tests.harness import servers, targets
from tests.harness.checks import check_once, what
from tests.harness.clock import SetClock
from tests.harness.running import running
from tests.harness.tls import not_after

pytestmark = pytest.mark.integration

INTERMEDIATE = "CN=otel-health Test Intermediate"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.OcspStack]:
    stack = servers.start_ocsp_stack(tmp_path_factory.mktemp("ocsp"))
    yield stack
    stack.stop()


def _https(name: str, pki: servers.OcspStack, server: str, **fields: object) -> str:
    return targets.entry(name, "http", url=pki.url(server), ca_file=str(pki.root), **{"timeout": "3s", **fields})


def _asked(pki: servers.OcspStack) -> int:
    """Requests the responder has answered so far (its log says each)."""
    return (pki.processes[0].log_path.read_text(errors="replace")).count("Received request")


async def test_the_earliest_expiry_of_the_chain_is_reported_with_its_certificate(pki: servers.OcspStack) -> None:
    results = await check_once(_https("plain", pki, "good") + targets.entry(
        "tcp", "tcp", host="127.0.0.1", port=pki.ports["good"], tls=True, ca_file=str(pki.root), timeout="3s"))
    for name, result in results.items():
        assert result.up, (name, result.detail)
        # the intermediate's end, a day before the leaf's: the series warns of it, not of the leaf
        assert result.tls_expiry == not_after(pki.intermediate) < not_after(pki.leaves["good"]), name
        assert result.info["tls_expires_first"] == INTERMEDIATE, name
        assert result.info["tls_issuer"] == INTERMEDIATE
        assert result.info["tls_serial"] == "1000"  # openssl ca's first serial, in hex
        assert "tls_revocation" not in result.info  # not asked
    # days left are counted to the first certificate to expire, and name it
    half_a_day_before = ProbeSettings(clock=SetClock(not_after(pki.intermediate) - 43200))
    short = await check_once(_https("short", pki, "good", tls_min_days_left=1), half_a_day_before)
    assert short["short"].error_type == ErrorType.TLS
    assert what(short["short"].detail) == f"certificate {INTERMEDIATE} expires in 0.5 days, fewer than the 1 required"


async def test_revocation_by_staple_and_by_responder_matches_the_ca(pki: servers.OcspStack) -> None:
    cases = {  # (server, mode): (up, tls_revocation)
        ("good_stapled", "stapled"): (True, "good"), ("good_stapled", "ocsp"): (True, "good"),
        ("revoked_stapled", "stapled"): (False, "revoked"), ("revoked_stapled", "ocsp"): (False, "revoked"),
        ("good", "stapled"): (True, "unknown"), ("good", "ocsp"): (True, "good"),
        ("revoked", "stapled"): (True, "unknown"), ("revoked", "ocsp"): (False, "revoked"),
        ("foreign_stapled", "stapled"): (True, "unknown"), ("foreign_stapled", "ocsp"): (True, "good"),
        ("dead", "ocsp"): (True, "unknown"),
        ("good", "crl"): (True, "good"), ("revoked", "crl"): (False, "revoked"),
        ("revoked", "auto"): (False, "revoked"), ("good_stapled", "auto"): (True, "good"),
        ("dead", "auto"): (True, "good"),  # the responder is down: the CRL says
    }
    text = "".join(_https(f"{server}-{mode}", pki, server, check_revocation=mode) for server, mode in cases)
    before = _asked(pki)
    results = await check_once(text)
    seen = {key: (results[f"{key[0]}-{key[1]}"].up, results[f"{key[0]}-{key[1]}"].info.get("tls_revocation"))
            for key in cases}
    assert seen == cases, {k: r.detail for k, r in results.items()}
    # the responder is asked only where nothing usable was stapled: good, revoked and foreign_stapled
    # under ocsp, revoked under auto
    assert _asked(pki) - before == 4
    stapled = results["revoked_stapled-stapled"]
    assert stapled.error_type == ErrorType.REVOKED
    assert what(stapled.detail).startswith("certificate CN=revoked.otel-health.test (serial 1001) was revoked at ")
    assert stapled.detail.endswith("(keyCompromise), per the stapled OCSP response")
    asked = results["revoked-ocsp"]
    assert asked.detail.endswith(f"(keyCompromise), per the OCSP responder http://127.0.0.1:{pki.responder_port}/")
    assert {"connect", "tls", "request", "revocation"} <= set(asked.phases)
    listed = results["revoked-crl"]
    assert listed.error_type == ErrorType.REVOKED
    assert listed.detail.endswith(f"(keyCompromise), per the CRL {pki.crl_url}")
    assert results["dead-auto"].up


async def test_a_crl_is_fetched_once_for_every_certificate_that_names_it(pki: servers.OcspStack) -> None:
    fetched = pki.crl_log.read_text().count("GET /intermediate.crl") if pki.crl_log.exists() else 0
    entries = (_https(f"t{i}", pki, "good" if i % 2 else "revoked", check_revocation="crl") for i in range(8))
    config = load_text("targets:\n" + "".join(entries), "t.yaml", PROBES)
    probe = PROBES["http"](ProbeSettings())
    try:
        results = await asyncio.gather(*(probe.run(t) for t in config.targets))
        results += await asyncio.gather(*(probe.run(t) for t in config.targets))
    finally:
        await probe.close()
    assert [r.info["tls_revocation"] for r in results] == ["revoked", "good"] * 8
    assert pki.crl_log.read_text().count("GET /intermediate.crl") - fetched == 1


async def test_an_unknown_status_warns_by_default_and_fails_when_asked(pki: servers.OcspStack) -> None:
    results = await check_once(
        _https("soft", pki, "dead", check_revocation="ocsp")
        + _https("hard", pki, "dead", check_revocation="ocsp", revocation_unknown="down")
        + _https("foreign", pki, "foreign_stapled", check_revocation="stapled", revocation_unknown="down"))
    assert results["soft"].up and results["soft"].info["tls_revocation"] == "unknown"
    hard, foreign = results["hard"], results["foreign"]
    assert (hard.up, hard.error_type, foreign.up, foreign.error_type) == (False, ErrorType.TLS, False, ErrorType.TLS)
    assert what(hard.detail) == (
        "revocation status unknown: the server staples no OCSP response; the OCSP responder "
        f"http://127.0.0.1:{pki.dead_port}/: connection refused")
    assert what(foreign.detail) == ("revocation status unknown: the stapled OCSP response does not speak of this "
                                    "certificate (serial 1000)")


async def test_a_responder_that_never_answers_costs_a_share_of_the_timeout_only(pki: servers.OcspStack) -> None:
    results = await check_once(
        _https("soft", pki, "silent", check_revocation="ocsp", timeout="1s")
        + _https("hard", pki, "silent", check_revocation="ocsp", revocation_unknown="down", timeout="1s"))
    soft, hard = results["soft"], results["hard"]
    assert soft.up and soft.info["tls_revocation"] == "unknown", soft.detail
    assert (hard.up, hard.error_type) == (False, ErrorType.TLS)
    assert what(hard.detail).startswith("revocation status unknown: the server staples no OCSP response; the OCSP "
                                        f"responder http://127.0.0.1:{pki.silent.getsockname()[1]}/: no answer within ")
    for result in (soft, hard):  # the rest of the check kept its share: the timeout was never reached
        assert result.duration < 1.0 and result.phases["revocation"] < 0.9, result.phases


async def test_a_status_is_kept_until_due_and_judged_on_the_probes_clock(pki: servers.OcspStack) -> None:
    # Every response (the responder's, the staples) is good for a day from its signing (-ndays 1),
    # made minutes at most after the intermediate's start: twelve hours on is inside each.
    start = not_after(pki.intermediate) - 86400
    clock = SetClock(start + 12 * 3600)
    config = load_text("targets:\n" + _https("asked", pki, "good", check_revocation="ocsp")
                       + _https("stapled", pki, "good_stapled", check_revocation="stapled",
                                revocation_unknown="down"), "t.yaml", PROBES)
    probe = PROBES["http"](ProbeSettings(clock=clock))
    asked, stapled = config.targets
    try:
        before = _asked(pki)
        for _ in range(3):
            assert (await probe.run(asked)).info["tls_revocation"] == "good"
        assert _asked(pki) - before == 1  # learned once, kept
        clock.advance(3601)  # an hour on: asked again
        assert (await probe.run(asked)).info["tls_revocation"] == "good"
        assert _asked(pki) - before == 2
        assert (await probe.run(stapled)).up
        clock.set(start + 2 * 86400)  # a day past the staple's next update: stale, so unknown
        late = await probe.run(stapled)
        assert late.info["tls_revocation"] == "unknown"
        assert "the stapled OCSP response is stale: its next update was due " in late.detail
        clock.set(start - 86400)  # set back to a day before it was made: learned again, not yet valid
        early = await probe.run(stapled)
        assert "the stapled OCSP response is not valid before " in early.detail, early.detail
    finally:
        await probe.close()


async def test_the_chain_and_revocation_reach_the_series(pki: servers.OcspStack) -> None:
    every_second = {"check_revocation": "stapled", "interval": "1s", "timeout": "1s"}
    text = "targets:\n" + (_https("revoked", pki, "revoked_stapled", **every_second)
                            + _https("good", pki, "good_stapled", **every_second))
    async with running(text) as r:
        await r.wait_for(lambda: r.checks("revoked") >= 2 and r.checks("good") >= 2, timeout=10, what="two checks each")
        _, _, metrics = await r.get("/metrics")
        _, _, document = await r.get("/api/v1/targets")
        _, _, page = await r.get("/")
    # the page names the certificate that expires first, and the revocation status
    assert f"days left ({INTERMEDIATE}); revocation: revoked</span>" in page
    assert f"days left ({INTERMEDIATE}); revocation: good</span>" in page
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    expiry = {s.labels["service"]: s.value for s in families["tta_service_tls_cert_expiry_timestamp_seconds"].samples}
    assert expiry == {"revoked": not_after(pki.intermediate), "good": not_after(pki.intermediate)}
    info = {s.labels["service"]: s.labels for s in families["tta_service_info"].samples}
    assert (info["revoked"]["tls_revocation"], info["good"]["tls_revocation"]) == ("revoked", "good")
    assert info["revoked"]["tls_serial"] == "1001" and info["revoked"]["tls_expires_first"] == INTERMEDIATE
    up = {s.labels["service"]: s.value for s in families["tta_service_up"].samples}
    assert up == {"revoked": 0.0, "good": 1.0}
    assert '"error_type": "revoked"' in document
