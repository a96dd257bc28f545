"""``slo:`` on a target or on ``defaults``: the objective its checks are held to (the rules that
keep its error budget are ``otel_health.slo``'s)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .fields import Fields

__all__ = ["Slo", "parse_slo", "window_name"]

_DAYS = re.compile(r"(\d{1,3})d")
_PERCENT = re.compile(r"^(\d{1,3}(?:\.\d+)?)\s*%$")


@dataclass(frozen=True, slots=True)
class Slo:
    objective: float  # the share of checks that must pass, 0.999
    window: float  # seconds the objective is kept over
    count: str = "raw"  # raw or debounced: which outcome makes a check bad
    suppressed: str = "excluded"  # excluded or counted: checks while the alerts are held back

    def spends(self, up: bool, debounced_up: bool | None, held_back: bool) -> bool | None:
        """Whether a check spends the error budget; None when it does not count (held back, and
        such checks are excluded)."""
        if held_back and self.suppressed == "excluded":
            return None
        return not up if self.count == "raw" else debounced_up is False

    def labels(self) -> dict[str, str]:
        return {"slo_window": window_name(self.window), "slo_count": self.count, "slo_suppressed": self.suppressed}


def window_name(seconds: float) -> str:
    """A window as PromQL writes it: 30d, 7d, 12h."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def parse_slo(f: Fields, inherited: Slo | None) -> Slo | None:
    """``slo:`` of ``f`` (a mapping, or ``false`` for none), on top of what ``defaults`` gave."""
    raw = f.raw("slo")
    if raw is None:
        return inherited
    if raw is False:
        return None
    sub = f.sub("slo")
    if sub is None:
        return inherited
    objective = _objective(sub, inherited.objective if inherited else None)
    window = _window(sub, inherited.window if inherited else 30 * 86400.0)
    slo = Slo(objective=objective or 0.0, window=window,
              count=sub.text("count", inherited.count if inherited else "raw", choices=("raw", "debounced")) or "raw",
              suppressed=sub.text("suppressed", inherited.suppressed if inherited else "excluded",
                                  choices=("excluded", "counted")) or "excluded")
    sub.finish()
    return slo if objective is not None else None


def _window(f: Fields, default: float) -> float:
    """A window in days (30d) or as any duration (12h), from an hour to a year."""
    raw = f.raw("window")
    days = _DAYS.fullmatch(raw.strip()) if isinstance(raw, str) else None
    if days is None:
        return f.duration("window", default, minimum=3600.0, maximum=366 * 86400.0)
    if not 1 <= int(days.group(1)) <= 366:
        f.problem("window", f"{raw!r} is not between an hour and a year")
        return default
    return int(days.group(1)) * 86400.0


def _objective(f: Fields, inherited: float | None) -> float | None:
    raw = f.raw("objective")
    if raw is None:
        if inherited is None:
            f.problem("objective", "is required: the share of checks that must pass, such as 99.9%")
        return inherited
    text = str(raw).strip()
    match = _PERCENT.fullmatch(text)
    try:
        value = round(float(match.group(1)) / 100, 9) if match else float(text)
    except ValueError:
        value = -1.0
    if not 0.5 <= value < 1:
        f.problem("objective", f"{text[:20]!r} is not an objective between 50% and 100% (excluded); "
                               "write 99.9% or 0.999")
        return None
    return value


