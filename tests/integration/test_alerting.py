"""Dependencies and maintenance windows end to end: otel-health, the shipped alert rules in a
real Prometheus, the generated configuration in a real Alertmanager, and a webhook receiver.

One run, in phases on the same servers (the rules' ``for:`` durations scaled down twentyfold):
PostgreSQL stops, and only its alerts are notified, not those of the API that needs it; a
window opened through the API holds a stopped Redis's alerts back until it is ended; then, with
the rules' suppression clause taken out, the generated inhibit rules alone hold the API's
alert back and the generated time interval mutes a target in a recurring window.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from otel_health.clock import WALL
from tests.harness import servers
from tests.harness.alerting import SCALE, Alertmanager, Webhook, scaled_rules, start_alertmanager
from tests.harness.procs import free_port
from tests.harness.running import Running, running

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SUPPRESSIBLE = {"TTAServiceDown", "TTAServiceDownFromLocations", "TTAServiceCheckFailing", "TTAServiceSlow",
                "TTAServiceFlapping"}


def config_text(pg: servers.Postgres, redis: servers.Redis, closed_port: int) -> str:
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(minutes=5)
    end = now + dt.timedelta(minutes=30)
    # Today's weekday (Sunday first): near midnight the range crosses it and is split in two.
    today = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")[(start.weekday() + 1) % 7]
    return (
        "environment: e2e\n"
        "defaults:\n  interval: 0.5s\n  timeout: 0.4s\n"
        "targets:\n"
        f"  - name: postgres\n    kind: postgres\n    host: 127.0.0.1\n    port: {pg.port}\n    user: postgres\n"
        "    password: ${E2E_PASSWORD}\n    database: postgres\n    sslmode: disable\n"
        # A service that needs PostgreSQL: down exactly when it is.
        f"  - name: player-api\n    kind: tcp\n    host: 127.0.0.1\n    port: {pg.port}\n    depends_on: [postgres]\n"
        f"  - name: cache\n    kind: redis\n    host: 127.0.0.1\n    port: {redis.port}\n"
        "    password: ${E2E_PASSWORD}\n"
        # Unrelated and always down: its alerts are never held back.
        f"  - name: legacy\n    kind: tcp\n    host: 127.0.0.1\n    port: {closed_port}\n"
        # Always down, in a recurring window open now.
        f"  - name: batch\n    kind: tcp\n    host: 127.0.0.1\n    port: {closed_port}\n"
        "    maintenance:\n"
        f"      - name: batch-nightly\n        weekdays: [{today}]\n        times:\n"
        f"          - {{start_time: '{start:%H:%M}', end_time: '{end:%H:%M}'}}\n"
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, seeded_password: str) -> Iterator[dict[str, object]]:
    workdir = tmp_path_factory.mktemp("alerting")
    pg = servers.start_postgres(workdir / "postgres", password=seeded_password)
    redis = servers.start_redis(workdir / "redis", password=seeded_password)
    hook = Webhook().start()
    try:
        yield {"workdir": workdir, "pg": pg, "redis": redis, "hook": hook}
    finally:
        hook.stop()
        redis.stop()
        pg.stop()


def alertmanager_config(workdir: Path, config: Path, hook: Webhook, password: str) -> Path:
    """The generated part merged into a base configuration that notifies the webhook; checked by amtool."""
    base = workdir / "base.yml"
    base.write_text(yaml.safe_dump({
        "route": {"receiver": "webhook", "group_by": ["alertname", "service", "environment"],
                  "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "webhook", "webhook_configs": [{"url": hook.url, "send_resolved": False}]}],
    }))
    out = workdir / "alertmanager.yml"
    result = subprocess.run(
        [sys.executable, "-m", "otel_health", "alertmanager", "--config", str(config), "--base", str(base),
         "--output", str(out)], capture_output=True, text=True, timeout=60, cwd=REPO,
        env={**os.environ, "E2E_PASSWORD": password})
    assert result.returncode == 0, result.stderr
    assert password not in out.read_text()
    check = subprocess.run(["amtool", "check-config", str(out)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    return out


async def until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Wait for ``check`` without holding up the collector running on this loop."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not true after {timeout:g}s")
        await asyncio.sleep(0.2)


def firing(prometheus: servers.Prometheus, service: str) -> set[str]:
    return {s["metric"]["alertname"] for s in prometheus.query(f'ALERTS{{alertstate="firing", service="{service}"}}')}


async def request(r: Running, method: str, path: str, body: object = None) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.request(
            method, f"{r.url}{path}", json=body, timeout=aiohttp.ClientTimeout(total=10)) as resp:
        return resp.status, json.loads(await resp.text() or "{}")


async def test_only_the_dependency_pages_maintenance_holds_back_and_alertmanager_inhibits_and_mutes(
    stack: dict[str, object], seeded_password: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    began = time.monotonic()
    workdir, hook = stack["workdir"], stack["hook"]
    pg, redis = stack["pg"], stack["redis"]
    assert isinstance(workdir, Path) and isinstance(hook, Webhook)
    assert isinstance(pg, servers.Postgres) and isinstance(redis, servers.Redis)
    monkeypatch.setenv("E2E_PASSWORD", seeded_password)
    text = config_text(pg, redis, free_port())
    config = workdir / "otel-health.yaml"
    config.write_text(text)
    am_config = alertmanager_config(workdir, config, hook, seeded_password)
    manager: Alertmanager = start_alertmanager(workdir / "alertmanager", am_config)
    rules = workdir / "rules.yml"
    rules.write_text(scaled_rules(suppression=True))
    prometheus: servers.Prometheus | None = None
    try:
        # Alertmanager mutes by the real clock, so the collector reads it too; the window is
        # written around the real now and holds at any instant (split in two across midnight).
        async with running(text, clock=WALL) as r:
            prometheus = await asyncio.to_thread(servers.start_prometheus, workdir / "prometheus", yaml.safe_dump({
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{manager.port}"]}]}]},
                "scrape_configs": [{"job_name": "otel-health",
                                    "static_configs": [{"targets": [f"127.0.0.1:{r.collector.port}"]}]}],
            }), extra_args=("--rules.alert.resend-delay=1s",))
            for name in ("postgres", "player-api", "cache", "legacy", "batch"):
                await r.wait_result(name, timeout=20)
            assert r.result("postgres").up and r.result("player-api").up and r.result("cache").up
            await until(lambda: "legacy" in hook.services(), timeout=30, what="legacy's alert at the webhook")

            # 1. PostgreSQL stops: its alerts are notified, the API's (down with it) are not.
            # 2. At the same time, a window opened through the API holds a stopped Redis's alerts
            # back until it ends (both wait out the same scaled for: durations).
            status, body = await request(r, "POST", "/api/v1/maintenance",
                                         {"targets": ["cache"], "duration": "10m", "comment": "deploy 42"})
            assert status == 201, body
            window = body["window"]
            assert isinstance(window, dict)
            await asyncio.gather(asyncio.to_thread(pg.stop), asyncio.to_thread(redis.stop))
            stopped = quiet_from = time.monotonic()
            await r.wait_for(lambda: r.state("player-api").suppressed is not None, timeout=10,
                             what="player-api suppressed by its dependency")
            assert r.state("player-api").suppressed.dependency == ("postgres",)
            # the truth is kept: still checked, and down once its own check after the stop has run
            await r.wait_for(lambda: not r.result("player-api").up, timeout=10, what="player-api checked down")
            await until(lambda: "postgres" in hook.services(stopped), timeout=30, what="postgres's alert")
            # past the time the API's alerts would have fired (its CheckFailing: 6 minutes, scaled)
            await until(lambda: {"TTAServiceDown", "TTAServiceCheckFailing"} <= {
                n.labels["alertname"] for n in hook.since(stopped) if n.labels.get("service") == "postgres"},
                timeout=40, what="both of postgres's alerts")
            await asyncio.sleep(max(0.0, 360 / SCALE + 3 - (time.monotonic() - stopped)))
            assert hook.services(stopped) - {"legacy"} == {"postgres"}
            assert firing(prometheus, "player-api") == set()
            up = prometheus.query('tta_service_up{service="player-api"}')
            suppressed = prometheus.query('tta_service_suppressed{service="player-api", reason="dependency"}')
            assert up[0]["value"][1] == "0" and suppressed[0]["value"][1] == "1"

            # 2. Redis, stopped with PostgreSQL inside its window: down, warn in /health, and
            # nothing notified past both its alerts' for: durations (waited out above).
            await r.wait_for(lambda: r.result("cache") is not None and not r.result("cache").up, timeout=10,
                             what="cache down")
            status, health = await request(r, "GET", "/health")
            assert status == 503  # postgres, down and not suppressed, still fails /health
            checks = health["checks"]
            assert isinstance(checks, dict)
            assert checks["cache:connectivity"][0]["status"] == "warn"
            assert checks["player-api:connectivity"][0]["status"] == "warn"
            assert time.monotonic() - quiet_from >= 360 / SCALE + 3  # past both alerts' for:, scaled
            assert "cache" not in hook.services(quiet_from)
            status, _ = await request(r, "DELETE", f"/api/v1/maintenance/{window['id']}")
            assert status == 200
            ended = time.monotonic()
            await until(lambda: "cache" in hook.services(ended), timeout=30, what="cache's alert after the window")

            # 3. Without the rules' clause, Alertmanager alone: the API's alert fires in Prometheus and
            # is inhibited by PostgreSQL's; batch's fires and is muted by the generated time interval.
            assert "batch" not in hook.services() and firing(prometheus, "batch") == set()
            rules.write_text(scaled_rules(suppression=False))
            await asyncio.to_thread(prometheus.reload)
            unguarded = time.monotonic()
            await until(lambda: "TTAServiceDown" in firing(prometheus, "player-api"), timeout=30,
                       what="player-api's alert firing in Prometheus without the clause")
            await until(lambda: "TTAServiceDown" in firing(prometheus, "batch"), timeout=30,
                       what="batch's alert firing in Prometheus without the clause")

            def held(service: str) -> list[dict[str, object]]:
                return [a for a in manager.alerts() if a["labels"].get("service") == service]

            await until(lambda: bool(held("player-api")) and all(a["status"]["inhibitedBy"]
                                                                 for a in held("player-api")),
                       timeout=20, what="player-api's alerts inhibited in Alertmanager")
            await asyncio.sleep(5)  # several group intervals
            assert "player-api" not in hook.services(unguarded)
            assert "batch" not in hook.services()
            assert all(not a["status"]["inhibitedBy"] for a in held("batch"))  # muted, not inhibited
    finally:
        if prometheus is not None:
            prometheus.stop()
        manager.stop()
    assert time.monotonic() - began < 180
