"""Badges for a README, a wiki or a dashboard: a target's or a group's state, its uptime over a
window (the status page's: 24 hours, 7, 30 or 90 days) and its response time, as an SVG image
(``templates/badge.svg``, Jinja2, autoescaped: a name is text, never markup) or as the JSON
shields.io's endpoint badge reads.

A badge says only what the status page shows everyone: a name, up or down, a share, a time.
Never an error's detail, a label, an address or a version.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jinja2

from .ledger import uptimes
from .state import TargetState

__all__ = ["WHATS", "Badge", "endpoint", "group_badge", "svg", "target_badge"]

# What a badge can say: /badge/service/NAME/WHAT.svg (or .json), /badge/group/NAME/WHAT.svg
WHATS = ("state", "uptime-24h", "uptime-7d", "uptime-30d", "uptime-90d", "response-time")

# shields.io's named colours, and the hex its own badges draw them in
_COLORS = {"brightgreen": "#4c1", "green": "#97ca00", "yellow": "#dfb317", "orange": "#fe7d37", "red": "#e05d44",
           "lightgrey": "#9f9f9f"}
# Widths in pixels of Verdana at 11 px, as shields.io measures its text: the narrow and the wide
# characters, everything else about 7
_NARROW = {c: 3.5 for c in " .,:;!'|()[]ifjlrtI1"}
_WIDE = {c: 10.0 for c in "mwMW%@"}

_environment = jinja2.Environment(loader=jinja2.PackageLoader("otel_health", "templates"), autoescape=True,
                                  undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True, slots=True)
class Badge:
    label: str
    message: str
    color: str  # a name of _COLORS


def target_badge(state: TargetState, what: str, now: float) -> Badge:
    """What ``what`` says of one target."""
    name, result = state.target.name, state.result
    if what == "state":
        if result is None:
            return Badge(name, "not checked yet", "lightgrey")
        return Badge(name, "up", "brightgreen") if result.up else Badge(name, "down", "red")
    if what == "response-time":
        if result is None:
            return Badge("response time", "no check yet", "lightgrey")
        return Badge("response time", _ms(result.duration), "brightgreen" if not result.slow else "yellow")
    window = what.removeprefix("uptime-")
    return _uptime_badge(window, uptimes(state, now).get(window))


def group_badge(states: Sequence[TargetState], group: str, what: str, now: float) -> Badge:
    """What ``what`` says of a group's targets taken together: how many are down, the mean of
    their uptimes, the median of their last response times."""
    checked = [s.result for s in states if s.result is not None]
    if what == "state":
        down = len([r for r in checked if not r.up])
        if not checked:
            return Badge(group, "not checked yet", "lightgrey")
        if down:
            return Badge(group, f"{down} of {len(states)} down", "red" if down == len(checked) else "orange")
        return Badge(group, "all up" if len(checked) == len(states) else f"{len(checked)} of {len(states)} up",
                     "brightgreen")
    if what == "response-time":
        if not checked:
            return Badge("response time", "no check yet", "lightgrey")
        return Badge("response time", _ms(statistics.median(r.duration for r in checked)), "brightgreen")
    window = what.removeprefix("uptime-")
    shares = [(share, s) for s in states if (share := uptimes(s, now).get(window)) is not None]
    return _uptime_badge(window, sum(share for share, _ in shares) / len(shares) if shares else None)


def _uptime_badge(window: str, share: float | None) -> Badge:
    label = f"uptime {window}"
    if share is None:
        return Badge(label, "no check yet", "lightgrey")
    color = ("brightgreen" if share >= 0.999 else "green" if share >= 0.99 else "yellow" if share >= 0.95
             else "orange" if share >= 0.9 else "red")
    return Badge(label, f"{share * 100:.2f}%" if share < 1 else "100%", color)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _width(text: str) -> float:
    return sum(_NARROW.get(c) or _WIDE.get(c) or 7.0 for c in text) + 10  # 5 px of padding a side


def svg(badge: Badge) -> str:
    """The badge as an SVG image, shields.io's flat style."""
    left, right = _width(badge.label), _width(badge.message)
    return _environment.get_template("badge.svg").render(
        label=badge.label, message=badge.message, color=_COLORS[badge.color], left=left, right=right,
        width=left + right)


def endpoint(badge: Badge) -> dict[str, Any]:
    """shields.io's endpoint JSON (https://shields.io/badges/endpoint-badge): its own badge, drawn
    by shields.io from this."""
    return {"schemaVersion": 1, "label": badge.label, "message": badge.message, "color": badge.color}
