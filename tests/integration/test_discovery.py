"""Targets from service discovery on a running collector: Prometheus file_sd files on disk and
an http_sd endpoint of the test HTTP server, with bad data that keeps the last good set."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from otel_health import collector as collector_module
from otel_health.config.loader import load
from otel_health.errors import ErrorType
from otel_health.logs import LogfmtFormatter
from otel_health.probes import PROBES
from tests.harness.running import Running, running_config
from tests.harness.servers import HttpTargets

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def quick_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    """Discovery's tick and batching shortened: a change applies within a second or so."""
    monkeypatch.setattr(collector_module, "DISCOVERY_TICK", 0.1)
    monkeypatch.setattr(collector_module, "DISCOVERY_GAP", 0.3)


def collector_at(path: Path) -> Any:
    return running_config(load(path, PROBES), source=lambda found: load(path, PROBES, found=found))


async def series(r: Running, name: str) -> dict[str, float]:
    """``name``'s samples on /metrics, by their ``source`` (or ``service``) label."""
    _, _, text = await r.get("/metrics")
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[sample.labels.get("source") or sample.labels.get("service", "")] = sample.value
    return out


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    return [dict(getattr(record, "fields", {})) for record in caplog.records if record.msg == name]


def groups(http_targets: HttpTargets, *services: tuple[str, int]) -> str:
    address = f"127.0.0.1:{http_targets.port}"
    return json.dumps([{"targets": [address], "labels": {"service": name, "code": str(code), "team": "shop",
                                                          "__meta_zone": "a"}} for name, code in services])


TEMPLATE = """\
    target_template:
      name: "$(labels.service)"
      kind: http
      url: "http://$(address)/status/$(labels.code)"
      interval: 0.3s
      timeout: 0.25s
      labels: {zone: "$(labels.__meta_zone)"}
"""


async def test_file_sd_targets_follow_the_files_and_bad_files_keep_the_last_good_set(
        tmp_path: Path, http_targets: HttpTargets, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "sd").mkdir()
    inventory = tmp_path / "sd" / "shop.json"
    inventory.write_text(groups(http_targets, ("web", 200), ("api", 503)))
    path = tmp_path / "otel-health.yaml"
    path.write_text("listen: 127.0.0.1:0\n"
                    f"targets:\n  - {{name: static, kind: http, url: '{http_targets.url('/ok')}', interval: 0.3s,"
                    " timeout: 0.25s}\n"
                    "discovery:\n  - name: inventory\n    file_sd: {files: [sd/*.json, sd/*.yml]}\n" + TEMPLATE)
    caplog.set_level(logging.INFO, logger="otel_health")
    async with collector_at(path) as r:
        web, api = await r.wait_result("web"), await r.wait_result("api")
        assert web.up and not api.up and api.error_type is ErrorType.HTTP_STATUS
        # the group's own labels (not __meta_*) and the template's
        # the group's own labels but the reserved 'service' (the name), not __meta_*; and the template's
        assert dict(r.state("web").target.labels) == {"code": "200", "team": "shop", "zone": "a"}
        assert (await series(r, "otel_health_discovery_targets")) == {"inventory": 2}
        assert (await series(r, "otel_health_discovery_last_read_successful")) == {"inventory": 1}

        # Not JSON: the last good set stays, the source says so, logged once however often it is read.
        inventory.write_text('[{"targets": ["127.0.0.1:1"')
        await r.wait_for(lambda: not r.collector.config.discovery.status["inventory"].ok, timeout=10,
                         what="the broken file noticed")
        assert {t.name for t in r.collector.config.targets} == {"static", "web", "api"}
        reloads = sum(m.startswith("reloaded") for m in caplog.messages)
        inventory.write_text('[{"targets": ["127.0.0.1:1"')  # the same problem again: a new stamp
        await r.wait_for(lambda: sum(m.startswith("reloaded") for m in caplog.messages) > reloads, timeout=10,
                         what="a second reload")
        failed = events(caplog, "discovery_failed")
        assert len(failed) == 1 and "not valid JSON" in failed[0]["problem"] and failed[0]["source"] == "inventory"
        assert (await series(r, "otel_health_discovery_last_read_successful")) == {"inventory": 0}
        assert (await series(r, "otel_health_discovery_read_failures_total"))["inventory"] >= 2
        assert (await series(r, "otel_health_discovery_targets")) == {"inventory": 2}

        # A target that does not validate is bad data too.
        inventory.write_text(json.dumps([{"targets": ["not a host"], "labels": {"service": "x"}}]))
        await r.wait_for(lambda: "not host:port" in str(r.collector.config.discovery.status["inventory"].problems),
                         timeout=10, what="the invalid address noticed")
        assert {t.name for t in r.collector.config.targets} == {"static", "web", "api"}

        # Good again: api goes with its series, shop comes; a second file adds, and its removal takes away.
        inventory.write_text(groups(http_targets, ("web", 200), ("shop", 200)))
        (tmp_path / "sd" / "more.yml").write_text(
            f"- targets: ['127.0.0.1:{http_targets.port}']\n  labels: {{service: extra, code: '204'}}\n")
        await r.wait_for(lambda: {t.name for t in r.collector.config.targets} == {"static", "web", "shop", "extra"},
                         timeout=10, what="the new set")
        assert (await r.wait_result("extra")).up
        assert events(caplog, "discovery_recovered") == [{"source": "inventory", "targets": 3}]
        assert "api" not in await series(r, "tta_service_up")
        assert "api" not in await series(r, "tta_service_checks_total")
        (tmp_path / "sd" / "more.yml").unlink()
        await r.wait_for(lambda: "extra" not in {t.name for t in r.collector.config.targets}, timeout=10,
                         what="the removed file's target gone")
        assert (await series(r, "otel_health_discovery_targets")) == {"inventory": 2}
        assert r.result("static") is not None and r.result("static").up  # type: ignore[union-attr]

        # A broken config file holds discovery's change back, tried once, not again every tick.
        good_config = path.read_text()
        path.write_text(good_config + "  oops: [\n")
        inventory.write_text(groups(http_targets, ("web", 200)))
        await r.wait_for(lambda: "reload_rejected" in caplog.messages, timeout=10, what="the rejected reload")
        await asyncio.sleep(1.0)  # ten ticks, three gaps
        assert caplog.messages.count("reload_rejected") == 1
        assert "shop" in {t.name for t in r.collector.config.targets}
        path.write_text(good_config)
        inventory.write_text(groups(http_targets, ("web", 200), ("late", 200)))
        await r.wait_for(lambda: {t.name for t in r.collector.config.targets} == {"static", "web", "late"},
                         timeout=10, what="the change applied once the config is good")


async def sd_put(http_targets: HttpTargets, key: str, body: str, **query: str) -> None:
    async with aiohttp.ClientSession() as session, session.put(
            http_targets.url(f"/sd/{key}"), data=io.BytesIO(body.encode()), params=query,
            timeout=aiohttp.ClientTimeout(total=10)) as response:
        assert response.status == 204


async def sd_log(http_targets: HttpTargets, key: str) -> dict[str, int]:
    async with aiohttp.ClientSession() as session, session.get(
            http_targets.url(f"/sd/{key}/log"), timeout=aiohttp.ClientTimeout(total=10)) as response:
        return await response.json()  # type: ignore[no-any-return]


async def test_http_sd_is_polled_conditionally_with_its_token_and_a_failing_endpoint_keeps_the_set(
        tmp_path: Path, http_targets: HttpTargets, seeded_password: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SD_TOKEN", seeded_password)
    key = f"sd-{tmp_path.name}"
    await sd_put(http_targets, key, groups(http_targets, ("web", 200)))
    path = tmp_path / "otel-health.yaml"
    path.write_text("listen: 127.0.0.1:0\n"
                    "discovery:\n  - name: registry\n    http_sd:\n"
                    f"      url: {http_targets.url(f'/sd/{key}')}\n"
                    "      refresh_interval: 1s\n      bearer_token: ${SD_TOKEN}\n      max_bytes: 2000000\n"
                    + TEMPLATE)
    caplog.set_level(logging.INFO, logger="otel_health")
    async with collector_at(path) as r:
        await r.wait_for(lambda: [t.name for t in r.collector.config.targets] == ["web"], timeout=10,
                         what="the endpoint's target")
        assert (await r.wait_result("web")).up
        # a few polls later: each one conditional, answered 304, never without the token
        for _ in range(100):
            log = await sd_log(http_targets, key)
            if log["not_modified"] >= 2:
                break
            await asyncio.sleep(0.1)
        assert log["not_modified"] >= 2 and log["unauthorized"] == 0

        # Down: the set stays; every failed poll counted, the problem logged once.
        await sd_put(http_targets, key, "", status="503")
        await r.wait_for(lambda: not r.collector.config.discovery.status["registry"].ok, timeout=10,
                         what="the failing endpoint noticed")
        assert [t.name for t in r.collector.config.targets] == ["web"]
        assert "answered HTTP 503" in str(r.collector.config.discovery.status["registry"].problems)
        # Not JSON by its Content-Type: refused as Prometheus refuses it.
        await sd_put(http_targets, key, groups(http_targets, ("other", 200)), content_type="text/html")
        await r.wait_for(lambda: "text/html" in str(r.collector.config.discovery.status["registry"].problems),
                         timeout=10, what="the wrong content type noticed")
        assert [t.name for t in r.collector.config.targets] == ["web"]
        assert (await series(r, "otel_health_discovery_read_failures_total"))["registry"] >= 2

        # A new set arrives whole.
        await sd_put(http_targets, key, groups(http_targets, ("api", 200), ("shop", 204)))
        await r.wait_for(lambda: sorted(t.name for t in r.collector.config.targets) == ["api", "shop"], timeout=10,
                         what="the new set")
        assert (await r.wait_result("shop")).up
        assert (await series(r, "otel_health_discovery_last_read_successful")) == {"registry": 1}

        # An answer of a megabyte arrives whole (many reads); one past max_bytes is refused.
        def sized(name: str, size: int) -> str:  # the bulk in white space: a label is at most 1,024 characters
            groups = json.dumps([{"targets": [f"127.0.0.1:{http_targets.port}"],
                                  "labels": {"service": name, "code": "200"}}])
            return groups[:-1] + " " * size + "]"

        await sd_put(http_targets, key, sized("big", 1_000_000))
        await r.wait_for(lambda: [t.name for t in r.collector.config.targets] == ["big"], timeout=10,
                         what="the megabyte answer read whole")
        await sd_put(http_targets, key, sized("huge", 3_000_000))
        await r.wait_for(lambda: "max_bytes" in str(r.collector.config.discovery.status["registry"].problems),
                         timeout=10, what="the answer past max_bytes refused")
        assert [t.name for t in r.collector.config.targets] == ["big"]
        _, _, metrics = await r.get("/metrics")
        _, _, targets = await r.get("/api/v1/targets")
    failed = events(caplog, "discovery_failed")
    assert [f["problem"][:18] for f in failed] == ["answered HTTP 503", "answered text/html",
                                                   "answer larger than"]  # each once
    logged = "\n".join(LogfmtFormatter().format(record) for record in caplog.records)
    for text in (metrics, targets, logged):
        assert seeded_password not in text
