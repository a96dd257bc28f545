"""domain_expiry against a served registry: the bootstrap file and the RDAP answers come from the
test HTTP server (tests/harness/httpd.py), as a registry's service would serve them. Each name
is looked up once while its target is checked many times."""

from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import servers, targets
from tests.harness.running import running


def _expiries(text: str) -> dict[str, tuple[str, float]]:
    name = "tta_service_domain_expiry_timestamp_seconds"
    return {s.labels["service"]: (s.labels["registered_domain"], s.value)
            for family in text_string_to_metric_families(text) if family.name == name
            for s in family.samples if s.name == name}


async def test_a_domains_registration_expiry_comes_from_its_registry_once_not_per_check(
        http_targets: servers.HttpTargets, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="otel_health")
    h = http_targets
    before = servers.get_json(h.url("/rdap/calls"))
    ok = h.url("/ok")
    text = (f"rdap_bootstrap_url: {h.url('/rdap/bootstrap.json')}\ntargets:\n"
            + targets.entry("api", "http", url=ok, interval="0.2s", timeout="0.2s", domain_expiry="api.eu.example.test")
            + targets.entry("shop", "http", url=ok, interval="0.2s", timeout="0.2s",
                            headers={"Host": "www.shop.co.test:8080"}, domain_expiry=True)
            + targets.entry("also-api", "http", url=ok, interval="0.2s", timeout="0.2s", domain_expiry="example.test")
            + targets.entry("no-date", "http", url=ok, interval="1s", timeout="1s", domain_expiry="noexpiry.test")
            + targets.entry("broken", "http", url=ok, interval="1s", timeout="1s", domain_expiry="broken.test")
            + targets.entry("no-registry", "http", url=ok, interval="1s", timeout="1s", domain_expiry="example.invalid")
            + targets.entry("plain", "http", url=ok, interval="1s", timeout="1s"))
    async with running(text) as r:
        await r.wait_for(lambda: r.state("api").domain_expiry is not None and r.state("shop").domain_expiry is not None,
                         timeout=10, what="the registrations looked up")
        await r.wait_for(lambda: r.checks("api") >= 10, timeout=10, what="ten checks of api")
        _, _, metrics = await r.get("/metrics")
        _, _, document = await r.get("/api/v1/targets")
    expiries = _expiries(metrics)
    assert expiries == {"api": ("example.test", 1803859200.0), "also-api": ("example.test", 1803859200.0),
                        "shop": ("shop.co.test", 1798761599.0)}  # the answers' dates; no series without one
    assert '"domain_expiry": "2027-03-01T00:00:00.000Z"' in document
    calls = servers.get_json(h.url("/rdap/calls"))
    asked = {name: calls.get(name, 0) - before.get(name, 0) for name in calls}
    # each name once (api's walk up to the registered domain included), however often its target was checked
    assert {name: n for name, n in asked.items() if n} == {
        "api.eu.example.test": 1, "eu.example.test": 1, "example.test": 1, "www.shop.co.test": 1, "shop.co.test": 1,
        "noexpiry.test": 1, "broken.test": 1}
    failed = {r.fields["domain"]: r.fields["reason"] for r in caplog.records  # type: ignore[attr-defined]
              if r.getMessage() == "domain_lookup_failed"}
    assert failed == {
        "noexpiry.test": "the registry of .test gives no expiration date for noexpiry.test",
        "broken.test": f"the RDAP service for .test ({h.url('/rdap/test/')}) answered 500 for broken.test",
        "example.invalid": "no RDAP service for example.invalid in the bootstrap (its TLD has none)",
    }


async def test_a_lookup_is_due_a_day_later_and_a_failed_one_keeps_the_last_date(
        http_targets: servers.HttpTargets) -> None:
    import aiohttp

    from otel_health.domains import REFRESH, RETRY, Domains

    now = [1000.0]
    domains = Domains(http_targets.url("/rdap/bootstrap.json"), monotonic=lambda: now[0])
    async with aiohttp.ClientSession() as session:
        first = await domains.refresh({"www.example.test"}, session)
        assert [(d.name, d.domain, d.expires, d.error) for d in first] == [
            ("www.example.test", "EXAMPLE.TEST", 1803859200.0, None)]
        now[0] += REFRESH - 1
        assert await domains.refresh({"www.example.test"}, session) == []  # not due yet: nothing asked
        now[0] += 1
        domains.point_to(http_targets.url("/status/503"))  # the bootstrap now fails
        failed = await domains.refresh({"www.example.test"}, session)
        assert failed[0].expires == 1803859200.0  # the last known date stays
        assert failed[0].error == f"the RDAP bootstrap {http_targets.url('/status/503')} answered 503"
        now[0] += RETRY
        assert len(await domains.refresh({"www.example.test"}, session)) == 1  # retried after an hour
        assert await domains.refresh(set(), session) == [] and not domains.watching  # a name no target watches goes
