"""History that survives: a collector with state_dir shows uptime over 24 hours, 7, 30 and 90
days on its page and in /api/v1/targets, from the history store, and a restart keeps them.
The store is filled first with 30 days of a target's minutes, as a collector running then would
have written them, on a clock the test sets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from otel_health.config.loader import load_text
from otel_health.days import Day
from otel_health.history import Archive
from otel_health.probes import PROBES
from otel_health.state import StateStore
from tests.harness import servers, targets
from tests.harness.clock import SetClock, at
from tests.harness.running import running

pytestmark = pytest.mark.integration

NOW = at("2031-03-31T12:00:10Z")
MIDNIGHT = at("2031-03-31T00:00:00Z")


async def _seed(folder: Path, text: str) -> None:
    """30 days before today: each day an hour with a check every minute, 57 minutes up, 3 down."""
    store = StateStore()
    store.set_targets(load_text(text, "seed.yaml", PROBES).targets)
    clock = SetClock(MIDNIGHT - 30 * 86400)
    archive = Archive(folder, clock=clock)
    await archive.load(store.snapshot())
    for day in range(30, 0, -1):
        start = MIDNIGHT - day * 86400 + 3600
        clock.set(start + 3600)
        for state in store.snapshot():
            for minute in range(60):
                state.day.mark(start + minute * 60, Day.DOWN if minute < 3 else Day.UP)
        await archive.write(store.snapshot)
    await archive.close(store.snapshot)


def _uptimes(document: str) -> dict[str, dict[str, float | None]]:
    return {t["name"]: t["uptime"] for t in json.loads(document)["targets"]}


async def test_a_restart_keeps_the_uptime_of_the_days_before(tmp_path: Path,
                                                              http_targets: servers.HttpTargets) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    entries = (targets.http("api", http_targets.url("/ok"), interval="0.2s", timeout="0.2s")
               + targets.http("fresh", http_targets.url("/ok"), interval="0.2s", timeout="0.2s"))
    await _seed(folder, "targets:\n" + targets.http("api", "http://127.0.0.1:1/"))
    text = f"state_dir: {folder}\ntargets:\n" + entries
    async with running(text, clock=SetClock(NOW)) as r:
        await r.wait_for(lambda: r.checks("api") >= 3 and r.checks("fresh") >= 3, timeout=10, what="checks")
        _, _, page = await r.get("/")
        _, _, document = await r.get("/api/v1/targets")
    first = _uptimes(document)
    # 57 up minutes in 60 a day for the 30 days before, and today's minute up: each window takes
    # today and the days before it (7 d: 6 of them, 30 d: 29, 90 d: all 30)
    assert first["api"]["7d"] == pytest.approx((6 * 57 + 1) / (6 * 60 + 1))
    assert first["api"]["30d"] == pytest.approx((29 * 57 + 1) / (29 * 60 + 1))
    assert first["api"]["90d"] == pytest.approx((30 * 57 + 1) / (30 * 60 + 1))
    assert first["api"]["24h"] == 1.0  # the seeded hours are more than a day ago
    assert first["fresh"] == {"24h": 1.0, "7d": 1.0, "30d": 1.0, "90d": 1.0}
    row = re.search(r'<tr class="target[^"]*" data-service="api".*?</tr>', page, re.S)
    assert row is not None
    for window in ("7d", "30d", "90d"):
        assert f"{window[:-1]} d: {first['api'][window] * 100:.2f} %" in row.group(0), window
    # stopped (its last write), then a new process on the same folder
    async with running(text, clock=SetClock(NOW + 5)) as r:
        await r.wait_for(lambda: r.checks("api") >= 1, timeout=10, what="a check")
        _, _, document = await r.get("/api/v1/targets")
    again = _uptimes(document)
    assert again["api"] == first["api"]
    assert again["fresh"]["30d"] == 1.0
