"""Sharded instances as processes on loopback: every target checked by exactly one of them, a
fourth instance takes about a quarter of the targets, all from the three, and a stopped one
shows up in a real Prometheus with the shipped rules as targets checked by nobody."""

from __future__ import annotations

import re
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

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
        rules.write_text(scaled_rules())
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
