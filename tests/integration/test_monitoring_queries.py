"""Every dashboard and alert query against a real Prometheus and Jaeger holding real data.

A short run of the full pipeline (otel-health → Collector → Prometheus and Jaeger, with a
really-down target) feeds a Prometheus started with `monitoring/prometheus.yml` itself
(addresses pointed at the test's ports). Then every series selector of every panel and rule
must match series with the expected labels, every panel query must return data and every
trace query must return traces. Grafana cannot run here; this is what it would ask.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_health.collector import Collector
from otel_health.config.loader import load_text
from otel_health.config.slo import Slo
from otel_health.probes import PROBES
from otel_health.slo import generate
from tests.harness import servers
from tests.harness.procs import free_port, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
RULES = MONITORING / "rules" / "otel-health.rules.yml"
# The location is the one the stack's otel-health checks from: every selector then proves that its
# series carry the label, through the Collector too.
VARIABLES = {"$environment": ".*", "$service": ".*", "$location": "lab", "$__rate_interval": "30s",
             "$__interval": "15s", "$trace_service": "otel-health"}
METRIC = re.compile(r"\b((?:tta_service|otel_health|otelcol)_[a-zA-Z0-9_]+|up)\b\s*(\{[^{}]*\})?")
FUNCTIONS = {"up"}  # 'up' is a metric here, never a function


def substitute(text: str) -> str:
    for name, value in VARIABLES.items():
        text = text.replace(name, value)
    return text


def selectors(expr: str) -> list[str]:
    """The series selectors in a PromQL expression (metric name and its matchers)."""
    found = []
    for match in METRIC.finditer(expr):
        name, matchers = match.group(1), match.group(2) or ""
        end = match.end(1)
        if name not in FUNCTIONS and expr[end:end + 1] == "(":
            continue
        if name == "up" and not matchers:
            continue
        found.append(name + matchers)
    return found


def panel_queries() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                yield path.name, panel["title"], target


def rule_exprs() -> list[tuple[str, str]]:
    """The shipped rules' and those 'otel-health rules' writes for an SLO."""
    generated = generate([Slo(0.999, 30 * 86400.0)])
    return [(rule.get("alert") or rule["record"], rule["expr"])
            for doc in (yaml.safe_load(RULES.read_text()), generated) for group in doc["groups"]
            for rule in group["rules"]]


def check_selectors(prometheus: servers.Prometheus, where: str, expr: str) -> list[str]:
    problems = []
    for selector in selectors(substitute(expr)):
        found = prometheus.series(selector)
        if not found:
            problems.append(f"{where}: {selector} matches no series")
            continue
        if selector.startswith("tta_service_"):
            for series in found:
                missing = {"service", "environment", "kind"} - set(series)
                if missing:
                    problems.append(f"{where}: {selector} lacks labels {sorted(missing)}")
                    break
    return problems


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, jaeger: servers.Jaeger, http_targets: servers.HttpTargets,
          ) -> Iterator[servers.Prometheus]:
    """A short run of the full pipeline with a down target, scraped by monitoring/prometheus.yml."""
    workdir = tmp_path_factory.mktemp("monitoring")
    collector = servers.start_otelcol(
        workdir, [REPO / "otel-collector.yaml", REPO / "tests" / "testdata" / "otel-collector.test.yaml"],
        {"JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{jaeger.otlp_grpc}",
         "OTELCOL_FILE_EXPORT_PATH": str(workdir / "kept.json"), "OTELCOL_LOG_LEVEL": "warn"})
    port = free_port()
    h = http_targets
    # Prometheus evaluates the rules at the real now: the signed zone's signatures are made around it
    signed = servers.start_signed_nsd(workdir / "signed", valid=servers.valid_around(time.time()))
    text = (
        f"listen: 127.0.0.1:{port}\nenvironment: monitoring\nlocation: lab\n"
        f"otlp:\n  endpoint: http://127.0.0.1:{collector.otlp_http}\n  export_interval: 0.5s\n"
        "defaults:\n  interval: 0.5s\n  timeout: 0.4s\n  slow_threshold: 100ms\n  failure_threshold: 2\n"
        "  slo: {objective: 99.9%, window: 30d}\n"
        f"rdap_bootstrap_url: {h.url('/rdap/bootstrap.json')}\n"  # the domain registrations' registry
        "targets:\n"
        f"  - name: web\n    kind: http\n    url: {h.url('/ok')}\n    domain_expiry: www.example.test\n"
        f"  - name: broken\n    kind: http\n    url: {h.url('/status/503')}\n"
        f"  - name: behind\n    kind: http\n    url: {h.url('/status/502')}\n    depends_on: [broken]\n"
        f"  - name: sluggish\n    kind: http\n    url: {h.url('/slow?ms=150')}\n"
        f"  - name: secure\n    kind: http\n    url: {h.url('/ok', tls=True)}\n    ca_file: {h.cert}\n"
        "    check_revocation: stapled\n"  # the test server staples nothing: the unknown status the rule reads
        f"  - name: zone\n    kind: dns\n    server: '{signed.server}'\n    query_name: www.chain.test\n"
        f"    dnssec: validate\n    trust_anchor: ['{signed.anchor}']\n"
        # the discovery series the rules read: one source, one target
        f"discovery:\n  - name: inventory\n    file_sd: {{files: ['{workdir / 'sd.json'}']}}\n"
        "    target_template: {name: found, kind: http, url: 'http://$(address)/ok'}\n"
    )
    (workdir / "sd.json").write_text(f'[{{"targets": ["127.0.0.1:{h.port}"]}}]')
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    # the rules 'otel-health rules' writes for this config, evaluated as often as the shipped ones here
    slo_rules = workdir / "slo.rules.yml"
    slo_rules.write_text(yaml.safe_dump(generate([t.slo for t in load_text(text, "monitoring.yaml", PROBES).targets
                                                  if t.slo is not None], interval="1s")))
    config["rule_files"] = [str(RULES), str(slo_rules)]
    addresses = {"otel-collector:8889": f"127.0.0.1:{collector.prometheus_port}",
                 "otel-collector:8888": f"127.0.0.1:{collector.telemetry_port}",
                 "otel-health:8090": f"127.0.0.1:{port}"}
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [addresses[t] for t in static["targets"]]
    prometheus = servers.start_prometheus(workdir / "prometheus", yaml.safe_dump(config))

    # otel-health runs for the whole module: instant queries of its own gauges would otherwise
    # meet the stale markers Prometheus writes once a scrape of a stopped process fails.
    started, stopping = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    async def run() -> None:
        os.environ["OTEL_SERVICE_NAME"] = "otel-health"
        os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "100"
        try:
            health = Collector(load_text(text, "monitoring.yaml", PROBES))
        finally:
            del os.environ["OTEL_SERVICE_NAME"], os.environ["OTEL_BSP_SCHEDULE_DELAY"]
        await health.start()
        started.set()
        try:
            await asyncio.to_thread(stopping.wait, 600)
        finally:
            await health.stop(grace=1)

    def runner() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # reported by the fixture
            failure.append(exc)
            started.set()

    thread = threading.Thread(target=runner, name="otel-health", daemon=True)
    thread.start()
    try:
        assert started.wait(30) and not failure, failure
        time.sleep(8.0)  # several scrapes and exports, traces past the decision wait
        wait_until(lambda: bool(prometheus.series('tta_service_up{service="broken"}')), timeout=20,
                   what="tta_service_up of the broken target in Prometheus")
        yield prometheus
    finally:
        stopping.set()
        thread.join(30)
        prometheus.stop()
        collector.stop()
        signed.stop()


def test_every_panel_selector_matches_series_with_the_contract_labels(stack: servers.Prometheus) -> None:
    problems = []
    for board, title, target in panel_queries():
        if "expr" in target:
            problems += check_selectors(stack, f"{board} / {title}", target["expr"])
    assert not problems, "\n".join(problems)


def test_every_panel_query_returns_data(stack: servers.Prometheus) -> None:
    empty = []
    for board, title, target in panel_queries():
        if "expr" in target:
            if not stack.query(substitute(target["expr"])):
                empty.append(f"{board} / {title}: {target['expr']}")
    assert not empty, "\n".join(empty)


def test_every_query_the_readme_gives_returns_data(stack: servers.Prometheus) -> None:
    blocks = re.findall(r"```promql\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    queries = [line for block in blocks for line in block.splitlines() if line and not line.startswith("#")]
    assert len(queries) >= 3
    for query in queries:
        assert stack.query(query), query
        assert not check_selectors(stack, "README", query), query


def test_every_variable_query_returns_values(stack: servers.Prometheus) -> None:
    for path in DASHBOARDS:
        for variable in json.loads(path.read_text())["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
            assert match, variable["query"]
            q = urllib.parse.urlencode({"match[]": substitute(match.group(1))})
            values = servers.get_json(f"{stack.url}/api/v1/label/{match.group(2)}/values?{q}")["data"]
            expected = {"environment": "monitoring", "service": "broken", "location": "lab"}[variable["name"]]
            assert expected in values, (variable["name"], values)


def test_every_rule_selector_matches_series(stack: servers.Prometheus) -> None:
    problems = []
    for alert, expr in rule_exprs():
        problems += check_selectors(stack, alert, expr)
    assert not problems, "\n".join(problems)


def test_the_down_alert_expression_finds_the_down_target_and_not_its_dependent(stack: servers.Prometheus) -> None:
    # 'behind' depends on 'broken' and is down with it: suppressed, through the Collector's series
    record = dict(rule_exprs())["tta_service:suppressed"]
    assert {s["metric"]["service"] for s in stack.query(record)} == {"behind"}
    down = [expr for name, expr in rule_exprs() if name == "TTAServiceDown"]
    assert len(down) == 4  # critical and not, each with and without dependencies
    found = [s["metric"]["service"] for expr in down
             for s in stack.query(expr.replace("tta_service:suppressed", f"({record})"))]
    assert found == ["broken"]
    without = [s["metric"]["service"] for expr in down for s in stack.query(
        expr.replace("unless on (service, environment) tta_service:suppressed", ""))]
    assert sorted(without) == ["behind", "broken"]


def test_every_trace_query_returns_traces(stack: servers.Prometheus, jaeger: servers.Jaeger) -> None:
    queries = [t for _, _, t in panel_queries() if t.get("datasource", {}).get("type") == "jaeger"]
    assert queries
    for target in queries:
        tags = dict(pair.split("=", 1) for pair in target.get("tags", "").split())
        q = urllib.parse.urlencode({"service": substitute(target["service"]), "tags": json.dumps(tags),
                                    "limit": target.get("limit", 20), "lookback": "1h"})
        deadline = time.monotonic() + 20
        data: list[Any] = []
        while time.monotonic() < deadline and not data:
            data = servers.get_json(f"{jaeger.query_url}/api/traces?{q}")["data"] or []
            time.sleep(0.3)
        assert data, f"no traces for {target}"
        for trace in data:
            root = next(s for s in trace["spans"] if s["operationName"].startswith("health_check"))
            root_tags = {t["key"]: str(t["value"]).lower() for t in root["tags"]}
            for key, value in tags.items():
                assert root_tags[key] == value.lower()


def test_a_typo_in_a_metric_name_is_caught(stack: servers.Prometheus) -> None:
    problems = check_selectors(stack, "typo", 'sum by (service) (tta_service_upp{environment=~".*"})')
    assert problems == ['typo: tta_service_upp{environment=~".*"} matches no series']
    assert selectors("histogram_quantile(0.95, sum by (le) (rate(tta_service_check_duration_seconds_bucket[5m])))") \
        == ["tta_service_check_duration_seconds_bucket"]
