"""The status page at ``/``: the state store rendered on the server, for people.

One view that needs nothing else running (Grafana may be one of the services that is down).
Rendered with Jinja2, autoescaping on: every name, label, version and detail a target or an
operator supplies is text, never markup. The page refreshes itself in place with a few lines of
script, and without script by a ``<noscript>`` meta refresh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2

from .announcements import Announcement, rendered
from .days import DAY_MINUTES, Day
from .ledger import budget, uptimes
from .logs import iso_time
from .sharding import Shard
from .state import HistoryEntry, TargetState

__all__ = ["CSP", "LIMIT", "REFRESH_SECONDS", "SLOTS", "group_of", "instance_of", "render"]

REFRESH_SECONDS = 15
# Past this many targets the page lists only those that need a look (down, slow, held back,
# not checked yet) and says how many healthy ones it left out; ?all=1 or ?group= lists them.
LIMIT = 500
# The page's own inline style and script only; trace links are plain links to anywhere.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'")
SLOTS = 24  # the day's bar: hours, the worst check of each
PAST_SHOWN = 20  # past announcements listed at the foot of the page
_SLOT = DAY_MINUTES // SLOTS
_WORDS = {Day.NONE: "no check", Day.UP: "up", Day.SLOW: "slow", Day.DOWN: "down"}
_MARKS = {Day.NONE: "·", Day.UP: "✓", Day.SLOW: "~", Day.DOWN: "✗"}
_CLASSES = {state: word.replace(" ", "-") for state, word in _WORDS.items()}

_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("otel_health", "templates"),
    autoescape=True,  # every value is text; markup only from the template itself
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class _Cell:
    state: str  # up, slow, down, none: the CSS class
    mark: str  # the text equivalent of the colour
    label: str  # what it says, in words
    link: str | None = None


def _iso(ts: float) -> str:
    return iso_time(ts, "seconds")


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def _trace_link(trace_url: str | None, trace_id: str | None) -> str | None:
    return trace_url.replace("{trace_id}", trace_id) if trace_url and trace_id else None


def _recent(entries: Sequence[HistoryEntry], trace_url: str | None) -> list[_Cell]:
    cells = []
    for entry in entries:
        state = Day.DOWN if not entry.up else Day.SLOW if entry.slow else Day.UP
        words = f"{_WORDS[state]} at {_iso(entry.started_at)}, {_ms(entry.duration)}"
        if entry.error_type:
            words += f", {entry.error_type}"
        link = _trace_link(trace_url, entry.trace_id) if state != Day.UP else None
        cells.append(_Cell(_CLASSES[state], _MARKS[state], words, link))
    return cells


def _slot_labels(now: float) -> list[str]:
    """The span of each slot of the day's bar, the same for every row of one page."""
    start = now - DAY_MINUTES * 60
    return [f"{_iso(start + slot * _SLOT * 60)} to {_iso(start + (slot + 1) * _SLOT * 60)}" for slot in range(SLOTS)]


def _day(minutes: bytes, spans: Sequence[str]) -> list[_Cell]:
    """The last 24 hours in :data:`SLOTS` slots (the worst minute of each)."""
    cells = []
    for slot in range(SLOTS):
        worst = max(minutes[slot * _SLOT:(slot + 1) * _SLOT])
        cells.append(_Cell(_CLASSES[worst], _MARKS[worst], f"{_WORDS[worst]}, {spans[slot]}"))
    return cells


def _percent(share: float | None) -> str | None:
    return None if share is None else f"{share * 100:.2f} %"


def _budget(state: TargetState, now: float) -> str | None:
    """What is left of the error budget, for a target with an SLO: '62.10 % of the budget left
    (99.9 % over 30d)', or '240 % of the budget spent' when it is overspent."""
    held = budget(state, now)
    if held is None:
        return None
    if held.left is None:
        said = "no check counted yet"
    elif held.left >= 0:
        said = f"{held.left * 100:.2f} % of the budget left"
    else:
        said = f"{(1 - held.left) * 100:.0f} % of the budget spent"
    return f"{said} ({held.objective * 100:g} % over {held.window})"


def _summary(what: str, cells: Sequence[_Cell]) -> str:
    counts = {state: sum(1 for c in cells if c.state == state) for state in ("up", "slow", "down")}
    said = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    return f"{what}: {said or 'no check'}"


def _row(state: TargetState, now: float, trace_url: str | None, spans: Sequence[str]) -> dict[str, Any]:
    target, result = state.target, state.result
    minutes = state.day.minutes(now)
    day = _day(minutes, spans)
    shares = uptimes(state, now, minutes)
    said = dict(state.reported[1]) if state.reported else {}  # what the target last said of itself
    row: dict[str, Any] = {
        "name": target.name,
        "environment": target.environment,
        "kind": target.kind,
        "critical": target.critical,
        "labels": [f"{k}={v}" for k, v in target.labels if k != "group"],
        "state": "unknown" if result is None else "up" if result.up else "down",
        "debounced": "unknown" if state.debounced_up is None else "up" if state.debounced_up else "down",
        "slow": result is not None and result.up and result.slow,
        "checked": None if result is None else _ago(now - result.started_at - result.duration),
        "checked_at": None if result is None else _iso(result.started_at + result.duration),
        "duration": None if result is None else _ms(result.duration),
        "uptime": _percent(shares["24h"]),
        # the longer windows: today and the days before it, from the history store
        "uptimes": [(name.replace("d", " d"), _percent(share)) for name, share in shares.items() if name != "24h"],
        "budget": _budget(state, now),
        "recent": (recent := _recent(list(state.history), trace_url)),
        "recent_summary": _summary(f"{len(recent)} recent checks", recent),
        "day": day,
        "day_summary": _summary("the last 24 hours by the hour", day),
        "error": None,
        "version": state.reported[0] if state.reported and state.reported[0] else None,
        "tls_days": None if state.tls_expiry is None else f"{(state.tls_expiry - now) / 86400:.0f}",
        # which certificate of the chain expires first, as the target last reported it
        "tls_first": said.get("tls_expires_first"),
        "tls_revocation": said.get("tls_revocation"),
        "suppressed": state.suppressed.describe() if state.suppressed is not None else None,
        "trace": None,
    }
    if result is not None and not result.up:
        row["error"] = f"{result.error_type}: {result.detail}" if result.detail else str(result.error_type)
        last = state.history[-1] if len(state.history) else None
        row["trace"] = _trace_link(trace_url, last.trace_id if last is not None else None)
    return row


def instance_of(location: str | None, shard: Shard | None, targets: int, configured: int) -> str | None:
    """For which instance the page (and the API) speaks, when there are several: where it checks
    from, which shard it is and how many of the configuration's targets that gives it; None for
    a single instance that checks every target from one place."""
    said = []
    if location:
        said.append(f"checks from {location}")
    if shard is not None:
        said.append(f"is shard {shard.index} of {shard.count} (shards 0 to {shard.count - 1})"
                    + (f", each target checked by {shard.replicas} shards" if shard.replicas > 1 else "")
                    + f": {targets} of the configuration's {configured} targets")
    return "This instance " + " and ".join(said) if said else None


def group_of(state: TargetState) -> str:
    return dict(state.target.labels).get("group") or state.target.kind


def _needs_a_look(state: TargetState) -> bool:
    result = state.result
    return result is None or not result.up or result.slow or state.suppressed is not None


def _notes(announcements: Sequence[Announcement], now: float) -> dict[str, list[dict[str, Any]]]:
    """The announcements as the page shows them: current (newest first), upcoming (soonest
    first), past (ended, newest first, the last :data:`PAST_SHOWN`)."""
    def shown(a: Announcement) -> dict[str, Any]:
        return {"severity": a.severity, "html": rendered(a.message), "id": a.id,
                "start": _iso(a.start) if a.start > 0 else None, "end": _iso(a.end) if a.end is not None else None}

    return {
        "current": [shown(a) for a in sorted(announcements, key=lambda a: -a.start) if a.current(now)],
        "upcoming": [shown(a) for a in sorted(announcements, key=lambda a: a.start) if a.start > now],
        "past": [shown(a) for a in sorted((a for a in announcements if a.over(now)),
                                          key=lambda a: -(a.end or 0))][:PAST_SHOWN],
    }


def render(states: Sequence[TargetState], *, now: float, trace_url: str | None = None,
           title: str = "Service status", every: bool = False, instance: str | None = None,
           announcements: Sequence[Announcement] = ()) -> str:
    """The page: targets grouped by their ``group`` label, else by kind; groups by name,
    targets in the order the configuration gives them. Past :data:`LIMIT` targets, unless
    ``every``, only those that need a look are listed."""
    counts: Mapping[str, int] = {
        "up": sum(1 for s in states if s.result is not None and s.result.up),
        "down": sum(1 for s in states if s.result is not None and not s.result.up),
        "unknown": sum(1 for s in states if s.result is None),
        "suppressed": sum(1 for s in states if s.suppressed is not None),
    }
    shown = states if every or len(states) <= LIMIT else [s for s in states if _needs_a_look(s)]
    sizes: dict[str, int] = {}
    for state in states:
        sizes[group_of(state)] = sizes.get(group_of(state), 0) + 1
    groups: dict[str, list[dict[str, Any]]] = {}
    spans = _slot_labels(now)
    for state in shown:
        groups.setdefault(group_of(state), []).append(_row(state, now, trace_url, spans))
    return _environment.get_template("status.html").render(
        title=title, groups=sorted(groups.items()), counts=counts, generated=_iso(now), instance=instance,
        notes=_notes(announcements, now),
        refresh=REFRESH_SECONDS, hidden=len(states) - len(shown), limit=LIMIT, group_counts=sorted(sizes.items()))
