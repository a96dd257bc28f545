"""Sharded instances as processes on loopback: every target checked by exactly one of them, a
fourth instance takes about a quarter of the targets, all from the three, and a stopped one
shows up in a real Prometheus with the shipped rules as targets checked by nobody."""

from __future__ import annotations

import html
import json
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from otel_health.sharding import owner
from tests.harness import servers
from tests.harness.alerting import scaled_rules
from tests.harness.procs import Process, free_port, wait_until

pytestmark = pytest.mark.integration

TARGETS = 200


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def _checked(port: int) -> set[str]:
    """The services this instance has checked (its tta_service_up series)."""
    return set(re.findall(r'^tta_service_up\{service="([^"]+)"', _metrics(port), re.M))


def _value(port: int, series: str) -> float:
    line = next(line for line in _metrics(port).splitlines() if line.startswith(series))
    return float(line.rsplit(" ", 1)[1])


def _config(tmp_path: Path, targets: int, port: int, *, interval: str) -> Path:
    """A configuration of ``targets`` TCP targets (svc-0, svc-1, …) on ``port``."""
    config = tmp_path / "otel-health.yaml"
    config.write_text(f"defaults: {{interval: {interval}, timeout: 1s}}\ntargets:\n" + "".join(
        f"  - {{name: svc-{i}, kind: tcp, host: 127.0.0.1, port: {port}}}\n" for i in range(targets)))
    return config


def _start(tmp_path: Path, config: Path, shards: int, *extra: str) -> list[tuple[Process, int]]:
    started = []
    for index in range(shards):
        port = free_port()
        process = Process(f"otel-health shard {index}/{shards}",
                          [sys.executable, "-m", "otel_health", "run", "--config", str(config), "--listen",
                           f"127.0.0.1:{port}", "--shard", f"{index}/{shards}", *extra],
                          log_path=tmp_path / f"shard-{index}-of-{shards}{'-'.join(extra)}.log")
        started.append((process, port))
    return started


def _everyone_checked(started: list[tuple[Process, int]]) -> dict[int, set[str]]:
    for process, port in started:
        process.wait_ready(lambda port=port: _value(port, "otel_health_shard_targets") == len(_checked(port)),
                           timeout=60)
    return {index: _checked(port) for index, (_, port) in enumerate(started)}


def test_every_target_is_checked_once_and_a_fourth_shard_takes_a_quarter(
    tmp_path: Path, http_targets: servers.HttpTargets,
) -> None:
    config = _config(tmp_path, TARGETS, http_targets.port, interval="2s")
    every = {f"svc-{i}" for i in range(TARGETS)}

    three = _start(tmp_path, config, 3)
    try:
        by_shard = _everyone_checked(three)
        shard_lines = [next(line for line in _metrics(port).splitlines()
                            if line.startswith("otel_health_shard_targets")) for _, port in three]
        configured = [_value(port, "otel_health_targets ") for _, port in three]
    finally:
        for process, _ in three:
            process.stop()
    assert set().union(*by_shard.values()) == every
    assert sum(len(s) for s in by_shard.values()) == TARGETS  # no target on two shards
    assert all(len(s) > TARGETS / 6 for s in by_shard.values()), {i: len(s) for i, s in by_shard.items()}
    assert configured == [TARGETS] * 3
    for index, line in enumerate(shard_lines):
        assert f'shard_index="{index}"' in line and 'shard_count="3"' in line, line

    four = _start(tmp_path, config, 4)
    try:
        by_four = _everyone_checked(four)
    finally:
        for process, _ in four:
            process.stop()
    assert set().union(*by_four.values()) == every and sum(len(s) for s in by_four.values()) == TARGETS
    for index in range(3):
        assert by_four[index] <= by_shard[index]  # the three only gave targets away
    assert 0.15 < len(by_four[3]) / TARGETS < 0.35, len(by_four[3])


def test_a_stopped_shard_shows_up_in_prometheus_as_targets_checked_by_nobody(
    tmp_path: Path, http_targets: servers.HttpTargets,
) -> None:
    config = _config(tmp_path, 60, http_targets.port, interval="1s")
    three = _start(tmp_path, config, 3)
    prometheus = None
    try:
        by_shard = _everyone_checked(three)
        rules = tmp_path / "rules.yml"
        rules.write_text(scaled_rules(scale=60))  # whether it fires, not when: 5m is 5s
        prometheus = servers.start_prometheus(tmp_path / "prometheus", yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": "otel-health", "static_configs": [
                {"targets": [f"127.0.0.1:{port}" for _, port in three]}]}],
        }))
        wait_until(lambda: len(prometheus.query("otel_health_shard_targets")) == 3, timeout=30,
                   what="Prometheus scraping the three shards")
        assert _firing(prometheus) == set()
        gone, _ = three[2]
        gone.stop()
        wait_until(lambda: "OtelHealthTargetsUnchecked" in _firing(prometheus), timeout=60,
                   what="OtelHealthTargetsUnchecked firing")
        unchecked = prometheus.query('ALERTS{alertname="OtelHealthTargetsUnchecked", alertstate="firing"}')
        value = prometheus.query('max by (job) (otel_health_targets) - sum by (job) '
                                 '(max by (job, shard_index, shard_count) (otel_health_shard_targets))')
    finally:
        if prometheus is not None:
            prometheus.stop()
        for process, _ in three:
            process.stop()
    assert unchecked[0]["metric"]["job"] == "otel-health"
    assert float(value[0]["value"][1]) == len(by_shard[2])  # exactly the stopped shard's targets


def test_with_two_replicas_every_target_is_checked_by_exactly_two_instances(
    tmp_path: Path, http_targets: servers.HttpTargets,
) -> None:
    config = _config(tmp_path, 90, http_targets.port, interval="2s")
    three = _start(tmp_path, config, 3, "--replicas", "2")
    try:
        by_shard = _everyone_checked(three)
        replicas = [_value(port, "otel_health_shard_replicas") for _, port in three]
    finally:
        for process, _ in three:
            process.stop()
    counts: dict[str, int] = {}
    for names in by_shard.values():
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    assert counts == {f"svc-{i}": 2 for i in range(90)}
    assert replicas == [2, 2, 2]


def _firing(prometheus: servers.Prometheus) -> set[str]:
    return {s["metric"]["alertname"] for s in prometheus.query('ALERTS{alertstate="firing"}')}


def test_what_is_per_instance_heartbeats_windows_health_and_the_status_page(
    tmp_path: Path, http_targets: servers.HttpTargets, seeded_password: str,
) -> None:
    token = tmp_path / "job-token"
    token.write_text(seeded_password)
    config = _config(tmp_path, 40, http_targets.port, interval="2s")
    config.write_text(config.read_text() + "".join(
        f"  - {{name: job-{i}, kind: heartbeat, period: 1h, token_file: {token}}}\n" for i in range(6)))
    two = _start(tmp_path, config, 2)
    try:
        # heartbeat targets say nothing until a job reports: wait for the services of each shard
        by_shard = {index: {f"svc-{i}" for i in range(40) if owner(f"svc-{i}", "default", 2) == index}
                    for index in range(2)}
        for index, (process, port) in enumerate(two):
            process.wait_ready(lambda port=port, index=index: _checked(port) == by_shard[index], timeout=60)
        job = "job-0"
        home = owner(job, "default", 2)
        answers = {index: _post(port, f"/api/v1/heartbeat/{job}", None, token=seeded_password)
                   for index, (_, port) in enumerate(two)}
        svc = sorted(by_shard[0])[0]
        windows = {index: _post(port, "/api/v1/maintenance", {"targets": [svc], "duration": "5m"})
                   for index, (_, port) in enumerate(two)}
        health = {index: _get(port, "/health") for index, (_, port) in enumerate(two)}
        pages = {index: _get(port, "/") for index, (_, port) in enumerate(two)}
        documents = {index: json.loads(_get(port, "/api/v1/targets")) for index, (_, port) in enumerate(two)}
    finally:
        for process, _ in two:
            process.stop()
    assert answers[home][0] == 200
    status, body = answers[1 - home]
    assert status == 404
    assert f"this instance is shard {1 - home} of 2: a target named 'job-0' in environment 'default' is checked " \
           f"by shard {home}" in body
    assert windows[0][0] == 201
    assert windows[1][0] == 400 and "is checked by shard 0" in windows[1][1]
    for index, names in by_shard.items():
        checks = json.loads(health[index])["checks"]
        assert {key.split(":")[0] for key in checks} >= names  # its own services only (and its own jobs)
        assert not {key.split(":")[0] for key in checks} & by_shard[1 - index]
        assert all(f'data-service="{name}"' in pages[index] for name in names)  # a row per service
        assert all(f'data-service="{name}"' not in pages[index] for name in by_shard[1 - index])
        # the page and the API say for which instance they speak
        mine = sum(1 for name in [f"svc-{i}" for i in range(40)] + [f"job-{i}" for i in range(6)]
                   if owner(name, "default", 2) == index)
        said = f"This instance is shard {index} of 2 (shards 0 to 1): {mine} of the configuration's 46 targets"
        assert f'<p class="muted" id="instance">{said}: what this page shows is its own view.' \
            in html.unescape(pages[index])
        assert documents[index]["instance"] == said


def _post(port: int, path: str, body: object, *, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST",
                                     data=json.dumps(body).encode() if body is not None else b"",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _get(port: int, path: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:  # /health answers 503 while a critical target is down
        return str(exc.read().decode())
