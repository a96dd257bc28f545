"""The Alertmanager part of a configuration, written from otel-health's own.

- ``inhibit_rules`` for the dependency edges: while a dependency's down alert fires, its
  dependents' alerts are held back (one rule per dependency and environment, naming its
  dependents, so an unrelated service is never inhibited).
- ``time_intervals`` and routes with ``mute_time_intervals`` for the recurring maintenance
  windows. Alertmanager refuses a time range across midnight: such a range is split in two,
  the second part on the following weekdays.

One-off windows and the windows opened through the API are not Alertmanager configuration:
they act through ``tta_service_suppressed``, which the shipped alert rules honour.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import Config, Target
from .suppression import Recurring, Window

__all__ = ["ROOT_RECEIVER", "SOURCE_ALERTS", "SUPPRESSIBLE_ALERTS", "generate", "merge"]

# The shipped alerts that suppression holds back (a target's own trouble), and those of a
# dependency that inhibit them. Staleness and TLS expiry are never suppressed: neither a
# dependency nor a deploy makes them untrue.
SUPPRESSIBLE_ALERTS = ("TTAServiceDown", "TTAServiceDownFromLocations", "TTAServiceCheckFailing", "TTAServiceSlow",
                       "TTAServiceFlapping")
SOURCE_ALERTS = ("TTAServiceDown", "TTAServiceCheckFailing")
INTERVAL_PREFIX = "otel-health:"  # names of the generated time intervals
ROOT_RECEIVER = "default"
_TARGET_ALERTS = f'alertname=~"{"|".join(SUPPRESSIBLE_ALERTS)}"'
_SOURCE_ALERTS = f'alertname=~"{"|".join(SOURCE_ALERTS)}"'


def _any_of(names: list[str]) -> str:
    # Alertmanager anchors regular expressions; '.' is the only character of a target name
    # that means something in one (a class, not a backslash, so the quoting stays plain).
    return "|".join(name.replace(".", "[.]") for name in sorted(names))


def _inhibit_rules(targets: tuple[Target, ...]) -> list[dict[str, Any]]:
    dependents: dict[tuple[str, str], list[str]] = {}
    for target in targets:
        for dependency in target.depends_on:
            dependents.setdefault((target.environment, dependency), []).append(target.name)
    return [{
        "source_matchers": [_SOURCE_ALERTS, f'service="{dependency}"', f'environment="{environment}"'],
        "target_matchers": [_TARGET_ALERTS, f'service=~"{_any_of(names)}"', f'environment="{environment}"'],
        "equal": ["environment"],
    } for (environment, dependency), names in sorted(dependents.items())]


def _recurring(windows: tuple[Window, ...]) -> list[Window]:
    return [w for w in windows if isinstance(w.schedule, Recurring)]


def _time_intervals(windows: list[Window]) -> list[dict[str, Any]]:
    out = []
    for window in windows:
        assert isinstance(window.schedule, Recurring)
        out.append({"name": INTERVAL_PREFIX + window.name, "time_intervals": window.schedule.time_intervals()})
    return out


def _mute_routes(targets: tuple[Target, ...], windows: list[Window]) -> list[dict[str, Any]]:
    """One route per environment and set of windows, so a target under two windows is muted
    by both (Alertmanager takes the first route that matches)."""
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for target in targets:
        names = tuple(INTERVAL_PREFIX + w.name for w in windows if w.covers(target.key))
        if names:
            groups.setdefault((target.environment, names), []).append(target.name)
    return [{
        "matchers": [_TARGET_ALERTS, f'service=~"{_any_of(names)}"', f'environment="{environment}"'],
        "mute_time_intervals": list(intervals),
    } for (environment, intervals), names in sorted(groups.items())]


def generate(config: Config, *, receiver: str = ROOT_RECEIVER) -> dict[str, Any]:
    """A whole Alertmanager configuration: a root route to ``receiver`` (a receiver without
    integrations until one is added), the muting routes, the time intervals and the inhibit rules."""
    return merge({"route": {"receiver": receiver, "group_by": ["alertname", "service", "environment"]},
                  "receivers": [{"name": receiver}]}, config)


def _generated_route(route: Any) -> bool:
    return isinstance(route, Mapping) and bool(route.get("mute_time_intervals")) and all(
        isinstance(n, str) and n.startswith(INTERVAL_PREFIX) for n in route["mute_time_intervals"])


def _generated_rule(rule: Any) -> bool:
    return isinstance(rule, Mapping) and list(rule.get("target_matchers") or ())[:1] == [_TARGET_ALERTS]


def merge(base: Mapping[str, Any], config: Config) -> dict[str, Any]:
    """``base`` (an Alertmanager configuration) with this config's part put in: the muting
    routes first under the root route (they inherit its receiver and grouping), the time
    intervals and inhibit rules after the base's own. What an earlier run put in is replaced."""
    out = dict(base)
    windows = _recurring(config.maintenance)
    route = dict(out.get("route") or {})
    kept = [r for r in route.get("routes") or () if not _generated_route(r)]
    route["routes"] = _mute_routes(config.targets, windows) + kept
    if not route["routes"]:
        del route["routes"]
    out["route"] = route
    intervals = [i for i in out.get("time_intervals") or ()
                 if not (isinstance(i, Mapping) and str(i.get("name", "")).startswith(INTERVAL_PREFIX))]
    intervals += _time_intervals(windows)
    if intervals:
        out["time_intervals"] = intervals
    else:
        out.pop("time_intervals", None)
    rules = [r for r in out.get("inhibit_rules") or () if not _generated_rule(r)] + _inhibit_rules(config.targets)
    if rules:
        out["inhibit_rules"] = rules
    else:
        out.pop("inhibit_rules", None)
    return out
