"""Service level objectives: ``slo:`` on a target or on ``defaults``, and the Prometheus rules
that keep their error budgets (``otel-health rules``).

What counts as bad is a failed check: by its raw outcome (``count: raw``, the default, which
spends the budget on what users met) or by the debounced state after it (``count: debounced``,
which forgives a blip the failure threshold absorbs). Checks while the target's alerts are held
back (maintenance, a dependency down) are left out of both the bad and the total by default
(``suppressed: excluded``): a planned window spends no budget; with ``suppressed: counted`` they
count as they were. Checks, not minutes: at 99.9%, one bad minute in an hour is already over the
fast-burn threshold (14.4 times the budget's pace), so a minute-grained count would page on it.

The collector counts each check of a target with an SLO in ``tta_service_slo_checks_total``
(``outcome`` up or down as the counting says; not at all while excluded), and the rules are the
Prometheus way, as the SRE workbook's multi-window, multi-burn-rate alerts: the share of those
checks that failed over 5m to 3d and over each SLO window, the budget left, and alerts that
page when the budget burns 14.4 times too fast over 1h and 5m or 6 times over 6h and 30m, and
open a ticket at 3 times over 1d and 2h or once over 3d and 6h. Every series carries
``service``, ``environment`` and ``kind``; a target's objective, window and counting are the
labels of ``tta_service_slo_objective``, which the rules join on.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .config.slo import Slo, window_name

__all__ = ["BURNS", "generate", "generate_tests", "rules_command"]

# (severity, long window, short window, burn rate): the SRE workbook's table for a 30-day SLO
BURNS = (("critical", "1h", "5m", 14.4), ("critical", "6h", "30m", 6.0),
         ("warning", "1d", "2h", 3.0), ("warning", "3d", "6h", 1.0))
_SAID = {  # severity: the alert's summary and description
    "critical": ("{{ $labels.service }} ({{ $labels.environment }}): error budget burning fast",
                 "{{ $labels.service }} in {{ $labels.environment }} is spending its error budget fast: at this "
                 "pace a month's budget lasts days."),
    "warning": ("{{ $labels.service }} ({{ $labels.environment }}): error budget burning slowly",
                "{{ $labels.service }} in {{ $labels.environment }} is spending its error budget faster than its "
                "objective allows: a ticket, not a page."),
}
_RANGES = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


def _ratio(over: str) -> str:
    """The share of a target's counted checks that failed, over ``over``."""
    by = "sum by (service, environment, kind, location)"  # each location's own, where several check
    return (f'{by} (rate(tta_service_slo_checks_total{{outcome="down"}}[{over}]))\n'
            f"  / {by} (rate(tta_service_slo_checks_total[{over}]))")


def _limit(rate: float) -> str:
    return (f"on (service, environment, kind) group_left () ({rate:g} * (1 - max by (service, environment, kind) "
            "(tta_service_slo_objective)))")


def generate(slos: list[Slo], *, interval: str = "1m") -> dict[str, Any]:
    """The rule groups for the SLOs in use: the same for every target, one record per SLO window."""
    windows = sorted({window_name(s.window) for s in slos}, key=_seconds)
    ratios: list[dict[str, Any]] = [{"record": f"tta_service:slo_error_ratio:rate{r}", "expr": _ratio(r)}
                                    for r in _RANGES]
    each = [f"({_ratio(window)}\n  and on (service, environment, kind) "
            f'tta_service_slo_objective{{slo_window="{window}"}})' for window in windows]
    ratios.append({"record": "tta_service:slo_error_ratio:window", "expr": "\nor\n".join(each)})  # its own window
    ratios.append({"record": "tta_service:slo_budget_remaining",
                   "expr": "1 - tta_service:slo_error_ratio:window\n  / " + _limit(1.0)})
    alerts = []
    for severity, (summary, description) in _SAID.items():
        clauses = [f"(tta_service:slo_error_ratio:rate{long} > {_limit(rate)}\n"
                   f"   and tta_service:slo_error_ratio:rate{short} > {_limit(rate)})"
                   for level, long, short, rate in BURNS if level == severity]
        name = "TTAServiceErrorBudgetBurn" if severity == "critical" else "TTAServiceErrorBudgetBurnSlow"
        alerts.append({
            "alert": name,
            "expr": ("(\n  " + "\n  or\n  ".join(clauses)
                     + "\n)\nunless on (service, environment) (max by (service, environment) "
                       "(tta_service_suppressed) > 0)"),
            "for": "2m" if severity == "critical" else "15m",
            "labels": {"severity": severity},
            "annotations": {"summary": summary, "description": description},
        })
    return {"groups": [
        {"name": "otel-health-slo-records", "interval": interval, "rules": ratios},
        {"name": "otel-health-slo-alerts", "rules": alerts},
    ]}


def _seconds(window: str) -> float:
    return float(window[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[window[-1]]


def generate_tests(slos: list[Slo], rule_file: str) -> dict[str, Any]:
    """promtool tests of the generated rules for each objective in use, on counters of checks
    every 15 seconds: a target down for good pages within minutes; failing at four times the
    budget's pace opens a ticket and pages nobody; down while held back (its checks not counted)
    does neither."""
    tests = []
    for i, slo in enumerate(sorted(set(slos), key=lambda s: (s.objective, s.window, s.count, s.suppressed))):
        target = f'service="t{i}",environment="test",kind="http"'
        labels = ",".join(f'{k}="{v}"' for k, v in slo.labels().items())
        objective = {"series": f"tta_service_slo_objective{{{target},{labels}}}", "values": f"{slo.objective:g}x720"}
        checks = f'tta_service_slo_checks_total{{{target},outcome="%s"}}'
        who = {"severity": "critical", "service": f"t{i}", "environment": "test", "kind": "http"}

        def fired(labels: dict[str, str]) -> dict[str, Any]:
            summary, description = _SAID[labels["severity"]]
            said = {key: text.replace("{{ $labels.service }}", labels["service"])
                    .replace("{{ $labels.environment }}", labels["environment"])
                    for key, text in (("summary", summary), ("description", description))}
            return {"exp_labels": labels, "exp_annotations": said}

        name = f"objective {slo.objective:g} over {window_name(slo.window)}"
        tests.append({
            "name": f"{name}: a target down for good pages within minutes", "interval": "1m",
            "input_series": [objective, {"series": checks % "up", "values": "0+4x59 240x60"},
                             {"series": checks % "down", "values": "0x59 4+4x60"}],
            "alert_rule_test": [{"eval_time": "59m", "alertname": "TTAServiceErrorBudgetBurn", "exp_alerts": []},
                                {"eval_time": "68m", "alertname": "TTAServiceErrorBudgetBurn",
                                 "exp_alerts": [fired(who)]}]})
        slow = 4 * (1 - slo.objective) * 4  # bad checks a minute: four times the budget's pace
        tests.append({
            "name": f"{name}: a slow burn opens a ticket and pages nobody", "interval": "1m",
            "input_series": [objective, {"series": checks % "up", "values": f"0+{4 - slow:.6g}x720"},
                             {"series": checks % "down", "values": f"0+{slow:.6g}x720"}],
            "alert_rule_test": [{"eval_time": "719m", "alertname": "TTAServiceErrorBudgetBurn", "exp_alerts": []},
                                {"eval_time": "719m", "alertname": "TTAServiceErrorBudgetBurnSlow",
                                 "exp_alerts": [fired({**who, "severity": "warning"})]}]})
        if slo.suppressed == "excluded":
            tests.append({
                "name": f"{name}: down while held back spends nothing and pages nobody", "interval": "1m",
                "input_series": [objective, {"series": checks % "up", "values": "0+4x59 240x60"},
                                 {"series": checks % "down", "values": "0x119"},
                                 {"series": f'tta_service_suppressed{{{target},reason="maintenance"}}',
                                  "values": "0x59 1x60"}],
                "alert_rule_test": [{"eval_time": "119m", "alertname": name_, "exp_alerts": []}
                                    for name_ in ("TTAServiceErrorBudgetBurn", "TTAServiceErrorBudgetBurnSlow")]})
    return {"rule_files": [rule_file], "evaluation_interval": "1m", "tests": tests}


def rules_command(load: Callable[..., Any], every_shard: Any, write: Callable[..., bool],
                  args: argparse.Namespace) -> int:
    """``otel-health rules``: the rules of the SLOs the config's targets have (every shard's),
    and with ``--tests`` their promtool tests."""
    config = load(args.config, every_shard, resolve_secrets=False)
    if config is None:
        return 2
    slos = [target.slo for target in config.targets if target.slo is not None]
    if not slos:
        print(f"otel-health rules: {args.config}: no target has an SLO; give one on defaults or a target: "
              "slo: {objective: 99.9%, window: 30d}", file=sys.stderr)
        return 2
    head = (f"# Prometheus rules for the error budgets of the targets of {Path(args.config).name} (their slo:),\n"
            "# the SRE workbook's multi-window, multi-burn-rate alerts. Written by 'otel-health rules'; run it\n"
            "# again after changing an objective or a window. Load it beside monitoring/rules/otel-health.rules.yml.\n")
    if not write("rules", args.output, head + yaml.safe_dump(generate(slos), sort_keys=False, width=120)):
        return 2
    if args.tests:
        rule_file = str(Path(args.output).resolve()) if args.output else "otel-health-slo.rules.yml"
        text = ("# promtool tests of the rules 'otel-health rules' wrote: promtool test rules THIS_FILE\n"
                + yaml.safe_dump(generate_tests(slos, rule_file), sort_keys=False, width=120))
        if not write("rules", args.tests, text):
            return 2
    return 0
