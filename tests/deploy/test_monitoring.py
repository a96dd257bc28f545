"""Monitoring as code: alert rules tested by promtool, dashboards regenerated identically."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
RULES = MONITORING / "rules" / "otel-health.rules.yml"
RULE_TESTS = MONITORING / "rules" / "tests" / "otel-health.test.yml"


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool not found: run 'make deps'"
    return found


def _dashboards_module():
    spec = importlib.util.spec_from_file_location("otel_health_dashboards", MONITORING / "grafana" / "dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_promtool_checks_the_rules_and_both_prometheus_configs() -> None:
    result = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    for config in ("prometheus.yml", "prometheus-bridge.yml"):
        result = subprocess.run([_promtool(), "check", "config", "--syntax-only", config], cwd=MONITORING,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_tests_pass() -> None:
    result = subprocess.run([_promtool(), "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_case_and_a_quiet_one() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        series = len(case["input_series"])
        for check in case["alert_rule_test"]:
            fired = len(check["exp_alerts"])
            (firing if fired else quiet).add(check["alertname"])
            if 0 < fired < series:
                quiet.add(check["alertname"])  # another input series stayed quiet, exactly as asserted
    assert alerts == firing
    assert alerts <= quiet


def test_every_alert_names_service_and_environment_or_instance_or_job() -> None:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue  # a recording rule
            assert rule["labels"]["severity"] in ("critical", "warning")
            text = rule["annotations"]["summary"] + rule["annotations"]["description"]
            if "tta_service" in rule["expr"] or "skipped" in rule["expr"]:
                assert "$labels.service" in text and "$labels.environment" in text, rule["alert"]
            elif "otel_health_shard_targets" in rule["expr"]:  # about a deployment's shards together
                assert "$labels.job" in text, rule["alert"]
            else:
                assert "$labels.instance" in text, rule["alert"]


SUPPRESSION_CLAUSE = "unless on (service, environment) tta_service:suppressed"


def test_exactly_the_alerts_suppression_holds_back_carry_the_clause_alertmanager_inhibits() -> None:
    from otel_health.alertmanager import SOURCE_ALERTS, SUPPRESSIBLE_ALERTS

    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]
    clause = {r["alert"] for r in rules if r["expr"].count(SUPPRESSION_CLAUSE) == 1}
    assert clause == set(SUPPRESSIBLE_ALERTS)
    assert not [r["alert"] for r in rules if r["alert"] not in clause and "tta_service:suppressed" in r["expr"]]
    assert set(SOURCE_ALERTS) <= clause
    # a service with dependencies waits longer than one without, so the dependency's alert leads
    for name in ("TTAServiceDown", "TTAServiceCheckFailing"):
        variants = {r["labels"].get("dependent"): r["for"] for r in rules if r["alert"] == name}
        minutes = {k: int(v.rstrip("m")) for k, v in variants.items()}
        assert set(minutes) == {None, "true"} and minutes["true"] >= minutes[None] + 1, variants


def test_regenerating_the_dashboards_gives_identical_files(tmp_path: Path) -> None:
    module = _dashboards_module()
    assert module.main(["dashboards.py", str(tmp_path)]) == 0
    committed = sorted(p.name for p in (MONITORING / "grafana" / "dashboards").glob("*.json"))
    assert committed == sorted(p.name for p in tmp_path.glob("*.json"))
    for name in committed:
        assert (tmp_path / name).read_text() == (MONITORING / "grafana" / "dashboards" / name).read_text(), name


@pytest.mark.parametrize("path", sorted((MONITORING / "grafana" / "dashboards").glob("*.json")), ids=lambda p: p.name)
def test_dashboard_round_trips_through_the_sdk(path: Path) -> None:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    module = _dashboards_module()
    original = json.loads(path.read_text())
    again = json.loads(json.dumps(Dashboard.from_json(original), cls=JSONEncoder))
    assert again == original
    jaeger_targets = [t for p in original["panels"] for t in p.get("targets", [])
                      if t.get("datasource", {}).get("type") == "jaeger"]
    assert jaeger_targets
    parsed = [t for p in Dashboard.from_json(original).panels or [] for t in (getattr(p, "targets", None) or [])]
    assert any(isinstance(t, module.JaegerQuery) for t in parsed)


def test_datasources_link_exemplars_to_jaeger_and_traces_back_to_metrics() -> None:
    doc = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text())
    by_uid = {d["uid"]: d for d in doc["datasources"]}
    links = by_uid["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert links == [{"name": "trace_id", "datasourceUid": "jaeger"}]
    assert by_uid["jaeger"]["type"] == "jaeger"
    assert by_uid["jaeger"]["jsonData"]["tracesToMetrics"]["datasourceUid"] == "prometheus"
    dashboards = [json.loads(p.read_text()) for p in (MONITORING / "grafana" / "dashboards").glob("*.json")]
    used = {(t.get("datasource") or p["datasource"])["uid"] for d in dashboards for p in d["panels"]
            for t in p.get("targets", [])}
    assert used <= set(by_uid)
