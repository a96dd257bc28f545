"""What the API answers with: the stack's health (application/health+json), every target's
settings and state, a maintenance window."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ..config import KindSpec
from ..ledger import Incident, TargetReport, budget, spent, uptimes
from ..logs import iso_time
from ..state import HistoryEntry, TargetState
from ..suppression import Recurring, Suppressed, Window

__all__ = ["HEALTH_CONTENT_TYPE", "LISTED_INCIDENTS", "Kinds", "Reports", "health_document", "report_csv",
           "report_document", "targets_document", "window_document"]

HEALTH_CONTENT_TYPE = "application/health+json"


Kinds = Mapping[str, KindSpec]  # by kind name: probes.PROBES


def window_document(window: Window, now: float) -> dict[str, Any]:
    """A maintenance window as the API shows it: configured ones by name, the API's by id."""
    schedule = window.schedule
    doc: dict[str, Any] = {
        "id" if window.source == "api" else "name": window.name,
        "source": window.source,
        "active": schedule.active(now),
        "targets": None if window.targets is None else
        [{"name": n, "environment": e} for n, e in sorted(window.targets)],
        "comment": window.comment or None,
        **(schedule.as_written() if isinstance(schedule, Recurring) else
           {"start": iso_time(schedule.start), "end": iso_time(schedule.end)}),
    }
    if window.source == "api":
        doc["created"] = iso_time(window.created)
    return doc


def health_document(states: list[TargetState], kinds: Kinds) -> tuple[int, dict[str, Any]]:
    """The stack's health in the IETF health-check response format, and the HTTP status.

    It follows the debounced state, as ``tta_service_state_up`` and the alerts do: a critical
    target that is down (past its ``failure_threshold``) makes ``fail`` (503); a non-critical
    one ``warn`` (200), and so does a down target whose alerts are suppressed (maintenance, a
    dependency down), with the reason; a check that failed while the target is not down yet
    (or passed while it is not up yet) is ``warn`` and says how far it is. Targets not checked
    yet are left out. Each check is named ``{service}:{check name}`` with the component type of
    its kind.
    """
    checks: dict[str, list[dict[str, Any]]] = {}
    worst = "pass"
    for state in states:
        target, result = state.target, state.result
        if result is None:
            continue
        kind = kinds.get(target.kind)
        suppressed = state.suppressed
        down = state.debounced_up is False
        if down:
            status = "fail" if target.critical and suppressed is None else "warn"
        else:
            status = "pass" if result.up else "warn"
        if status == "fail" or (status == "warn" and worst == "pass"):
            worst = status
        item: dict[str, Any] = {
            "componentId": target.name,
            "componentType": kind.component_type if kind is not None else "component",
            "status": status,
            "observedValue": round(result.duration, 6),
            "observedUnit": "s",
            "time": iso_time(result.started_at + result.duration),
            "environment": target.environment,
        }
        if not result.up:
            item["output"] = f"{result.error_type}: {result.detail}" if result.detail else str(result.error_type)
            if not down:
                item["output"] += (f" (failure {state.consecutive_failures} of the {target.failure_threshold} "
                                   "that make it down)")
            elif suppressed is not None:
                item["output"] += f" (suppressed: {suppressed.describe()})"
        elif down:
            item["output"] = (f"up again, {state.consecutive_successes} of the {target.success_threshold} passing "
                              "checks that make it up")
        if suppressed is not None:
            item["suppressedBy"] = suppressed.sources()
        check_name = kind.check_name if kind is not None else "connectivity"
        checks.setdefault(f"{target.name}:{check_name}", []).append(item)
    doc = {"status": worst, "description": "health of the checked services", "checks": checks}
    return (503 if worst == "fail" else 200), doc


def _result_doc(entry: HistoryEntry) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "time": iso_time(entry.started_at),
        "outcome": "up" if entry.up else "down",
        "duration_seconds": round(entry.duration, 6),
        "error_type": entry.error_type,
        "detail": entry.detail or None,
        "status_code": entry.status_code,
        "attempts": entry.attempts,
        "slow": entry.slow,
        "debounced_up": entry.debounced_up,
        "lag_seconds": round(entry.lag, 6),
    }
    if entry.trace_id is not None:
        doc["trace_id"] = entry.trace_id
    return doc


def _suppression_doc(suppressed: Suppressed | None, windows: Mapping[str, Window]) -> list[dict[str, Any]] | None:
    if suppressed is None:
        return None
    out: list[dict[str, Any]] = []
    for name in suppressed.maintenance:
        window = windows.get(name)
        item = {"reason": "maintenance", "window": name, "source": window.source if window else "config"}
        if window is not None and window.comment:
            item["comment"] = window.comment
        out.append(item)
    out += [{"reason": "dependency", "depends_on": name} for name in suppressed.dependency]
    return out


def targets_document(states: list[TargetState], windows: Collection[Window] = (), now: float | None = None
                     ) -> dict[str, Any]:
    """Every target: its settings without secrets, its raw and debounced state, what suppresses
    its alerts and why, recent history, and (given ``now``) its uptimes."""
    by_name = {w.name: w for w in windows}
    out = []
    for state in states:
        t, result = state.target, state.result
        out.append({
            "name": t.name,
            "environment": t.environment,
            "kind": t.kind,
            "critical": t.critical,
            "labels": dict(t.labels),
            "interval_seconds": t.interval,
            "timeout_seconds": t.timeout,
            "retries": t.retries,
            "slow_threshold_seconds": t.slow_threshold,
            "failure_threshold": t.failure_threshold,
            "success_threshold": t.success_threshold,
            "depends_on": list(t.depends_on),
            "settings": t.options.public(),
            "state": {
                "up": result.up if result is not None else None,
                "debounced_up": state.debounced_up,
                "consecutive_failures": state.consecutive_failures,
                "consecutive_successes": state.consecutive_successes,
                "version": result.version if result is not None else None,
                "info": dict(result.info) if result is not None else {},
                "tls_cert_expiry": iso_time(state.tls_expiry) if state.tls_expiry is not None else None,
                "domain_expiry": iso_time(state.domain_expiry) if state.domain_expiry is not None else None,
                "dnssec_signature_expiry": iso_time(state.dnssec_expiry) if state.dnssec_expiry is not None else None,
                "suppressed": _suppression_doc(state.suppressed, by_name),
            },
            "history": [_result_doc(entry) for entry in reversed(state.history)],
        })
        if now is not None:  # the share of minutes with a check that passed: 24 h, and 7, 30, 90 days
            out[-1]["uptime"] = uptimes(state, now)
            held = budget(state, now)  # and what is left of its error budget
            out[-1]["slo"] = held.document() if held is not None else None
    return {"targets": out}


Reports = Sequence[tuple[TargetState, TargetReport]]
LISTED_INCIDENTS = 500  # a target's incidents the JSON report lists (the latest; all are counted)


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 3)


def _incident_doc(incident: Incident) -> dict[str, Any]:
    return {"start": iso_time(incident.start), "end": iso_time(incident.end) if incident.end is not None else None,
            "minutes": _minutes(incident.end - incident.start) if incident.end is not None else None,
            "cause": incident.cause, "detail": incident.detail or None, "held_back": incident.held_back,
            "confirmed": incident.confirmed}


def _target_report(state: TargetState, report: TargetReport) -> dict[str, Any]:
    t, slo = state.target, state.target.slo
    checked, down = report.minutes
    doc: dict[str, Any] = {
        "service": t.name, "environment": t.environment, "kind": t.kind,
        "uptime": None if report.uptime is None else round(report.uptime, 6),
        "observed_minutes": _minutes(report.observed), "downtime_minutes": _minutes(report.downtime),
        "incident_count": len(report.incidents),
        "confirmed_count": sum(1 for i in report.incidents if i.confirmed),
        "mttr_minutes": _minutes(report.mttr),
        "incidents": [_incident_doc(i) for i in report.incidents[-LISTED_INCIDENTS:]],
        "minutes": {"checked": checked, "down": down},
        "slo": None,
    }
    if slo is not None and report.checks is not None and report.bad is not None:
        share = spent(slo, report.checks, report.bad)
        doc["slo"] = {"objective": slo.objective, "checks": report.checks, "bad": report.bad,
                      "budget_spent": None if share is None else round(share, 6)}
    return doc


def report_document(reports: Reports, start: float, end: float, now: float, instance: str | None) -> dict[str, Any]:
    """``GET /api/v1/report``: each target over [start, end) (docs/http-api.md says what each
    figure is)."""
    return {"from": iso_time(start), "to": iso_time(min(end, now)), "instance": instance,
            "targets": [_target_report(s, r) for s, r in reports]}


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A text cell a spreadsheet would take for a formula, quoted as text."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA) else value


def report_csv(reports: Reports, start: float, end: float, now: float, rows: str, instance: str | None) -> str:
    """The report as CSV: a row a target (``rows=targets``) or a row an incident; each row says
    for which instance it speaks (empty for one), so several instances' reports can be joined."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if rows == "incidents":
        writer.writerow(["instance", "service", "environment", "start", "end", "minutes", "cause", "detail",
                         "held_back", "confirmed"])
        for state, report in reports:
            for incident in report.incidents:
                doc = _incident_doc(incident)
                writer.writerow([_cell(v) for v in (instance, state.target.name, state.target.environment, doc["start"],
                                                    doc["end"], doc["minutes"], doc["cause"], doc["detail"],
                                                    doc["held_back"], doc["confirmed"])])
        return out.getvalue()
    writer.writerow(["instance", "service", "environment", "kind", "from", "to", "uptime", "observed_minutes",
                     "downtime_minutes", "incidents", "confirmed_incidents", "mttr_minutes", "minutes_checked",
                     "minutes_down", "slo_objective", "slo_checks", "slo_bad", "budget_spent"])
    for state, report in reports:
        doc = _target_report(state, report)
        slo = doc["slo"] or {}
        writer.writerow([_cell(v) for v in (
            instance, doc["service"], doc["environment"], doc["kind"], iso_time(start), iso_time(min(end, now)),
            doc["uptime"], doc["observed_minutes"], doc["downtime_minutes"], doc["incident_count"],
            doc["confirmed_count"], doc["mttr_minutes"], doc["minutes"]["checked"], doc["minutes"]["down"],
            slo.get("objective"), slo.get("checks"), slo.get("bad"), slo.get("budget_spent"))])
    return out.getvalue()
