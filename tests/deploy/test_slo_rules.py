"""``otel-health rules``: the rules of the config's SLOs load in Prometheus (promtool check) and
their generated promtool tests pass: a target down for good pages within minutes, a slow burn
opens a ticket and pages nobody, checks while held back spend nothing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from otel_health.cli import main


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool not found: run 'make deps'"
    return found


def test_the_generated_rules_load_and_their_tests_pass(tmp_path: Path) -> None:
    config = tmp_path / "otel-health.yaml"
    config.write_text("defaults:\n  slo: {objective: 99.9%, window: 30d}\ntargets:\n"
                      "  - {name: api, kind: http, url: 'http://127.0.0.1:8080/'}\n"
                      "  - {name: db, kind: tcp, host: 127.0.0.1, port: 5432, slo: {objective: 99%, window: 7d,"
                      " count: debounced, suppressed: counted}}\n"
                      "  - {name: scratch, kind: tcp, host: 127.0.0.1, port: 9, slo: false}\n")
    rules, tests = tmp_path / "slo.rules.yml", tmp_path / "slo.tests.yml"
    assert main(["rules", "--config", str(config), "--output", str(rules), "--tests", str(tests)]) == 0
    checked = subprocess.run([_promtool(), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 11 rules found" in checked.stdout
    ran = subprocess.run([_promtool(), "test", "rules", str(tests)], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    names = [case["name"] for case in yaml.safe_load(tests.read_text())["tests"]]
    assert len(names) == 5  # both objectives fast and slow; held back only for the one that excludes it
    window = next(r for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"]
                  if r.get("record") == "tta_service:slo_error_ratio:window")
    assert '[30d]' in window["expr"] and '[7d]' in window["expr"]  # each target over its own window


def test_a_config_without_an_slo_says_how_to_give_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "plain.yaml"
    config.write_text("targets:\n  - {name: api, kind: http, url: 'http://127.0.0.1:8080/'}\n")
    assert main(["rules", "--config", str(config)]) == 2
    assert "no target has an SLO; give one on defaults or a target: slo: {objective: 99.9%, window: 30d}" in \
        capsys.readouterr().err
