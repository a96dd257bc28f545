"""Maintenance windows as a config writes them: recurring (``times``, ``weekdays``, in a
time zone) or one-off (``start``, ``end``), on one target or on the targets a top-level
window names or matches by label."""

from __future__ import annotations

import difflib

from ..suppression import DAY, OneOff, Recurring, Window, clock_minutes, gap_hint, instant, weekday_set, zone
from ..suppression import utc as dt_utc
from .fields import Fields
from .model import Target, attributes_of
from .values import NAME_RE, short

__all__ = ["check_window_names", "parse_maintenance", "parse_schedule"]


def parse_schedule(f: Fields) -> tuple[str | None, Recurring | OneOff, str] | None:
    """A window's name, schedule and comment (recurring: ``times``/``weekdays``; one-off:
    ``start``/``end``); None when it has problems (reported)."""
    name = f.text("name", pattern=NAME_RE, hint="use 1-128 letters, digits, '.', '_' or '-'")
    comment = f.text("comment", "")
    location = f.text("location", "UTC")
    where = zone(location)
    if where is None:
        f.problem("location", f"unknown time zone {short(location)!r}; use an IANA name such as Europe/Berlin "
                              "or UTC")
    recurring, one_off = f.has("times") or f.has("weekdays"), f.has("start") or f.has("end")
    schedule: Recurring | OneOff | None = None
    if recurring and one_off:
        for key in ("times", "weekdays", "start", "end"):
            f.raw(key)
        f.problem(None, "a window is recurring (times, weekdays) or one-off (start, end), not both")
    elif one_off:
        moments = []
        for key in ("start", "end"):
            value = f.raw(key)
            moment = instant(value, where or dt_utc()) if value is not None else None
            if value is None:
                f.problem(key, "is required for a one-off window")
            elif moment is None:
                f.problem(key, f"must be a time such as 2026-12-24T22:00:00Z or 2026-12-24 22:00 (read in "
                               f"'location'), got {short(value)!r}{gap_hint(value, where or dt_utc())}")
            moments.append(moment)
        start, end = moments
        if start is not None and end is not None:
            if end <= start:
                f.problem("end", "is not after 'start'; a window ends after it starts")
            else:
                schedule = OneOff(start, end)
    elif recurring:
        ranges: list[tuple[int, int]] = []
        for _, tf in f.each("times"):
            bounds = []
            for key in ("start_time", "end_time"):
                value = tf.raw(key)
                minutes = clock_minutes(value) if value is not None else None
                if minutes is None or (key == "start_time" and minutes == DAY):
                    tf.problem(key, f"must be a time of day from 00:00 to {'23:59' if key == 'start_time' else '24:00'}"
                                    f", got {short(value) if value is not None else 'nothing'}")
                bounds.append(minutes)
            tf.finish()
            if bounds[0] is not None and bounds[1] is not None:
                if bounds[0] == bounds[1]:
                    tf.problem("end_time", "equals start_time: the range is empty (an end before the start "
                                           "runs past midnight)")
                else:
                    ranges.append((bounds[0], bounds[1]))
        days, problem = weekday_set(f.sequence("weekdays")) if f.has("weekdays") else (None, None)
        if problem is not None:
            f.problem("weekdays", problem)
        elif where is not None and (ranges or not f.has("times")):
            schedule = Recurring(tuple(ranges) or ((0, DAY),), days, location)
    else:
        f.problem(None, "give 'start' and 'end' (a one-off window) or 'times' and/or 'weekdays' (a recurring one)")
    f.finish()
    if schedule is None or (one_off and where is None):
        return None
    return name, schedule, comment


def parse_maintenance(top: Fields, targets: list[Target], names: set[str]) -> list[Window]:
    """The top-level windows: on every target, on ``targets`` (``names`` of configured
    targets, in any environment) or on the targets whose labels (``service``, ``environment``,
    ``kind`` and their own) match every pair of ``match``. A discovered target is not named:
    it may go at the next refresh, and the config with it; ``match`` finds it."""
    windows = []
    for i, f in top.each("maintenance"):
        listed = f.sequence("targets") if f.has("targets") else None
        match = f.mapping("match") if f.has("match") else None
        keys: frozenset[tuple[str, str]] | None = None
        if listed is not None and match is not None:
            f.problem(None, "give 'targets' or 'match', not both")
        elif listed is not None:
            wanted = set()
            for entry in listed:
                if not isinstance(entry, str) or entry not in names:
                    close = difflib.get_close_matches(str(entry), sorted(names), n=1) if isinstance(entry, str) else []
                    discovered = any(t.name == entry for t in targets)
                    f.problem("targets", f"unknown target {short(entry)!r}" + (
                        "; it is discovered: choose discovered targets by their labels with 'match'" if discovered
                        else f"; did you mean {close[0]!r}?" if close else "; list configured targets"))
                else:
                    wanted.add(entry)
            keys = frozenset(t.key for t in targets if t.name in wanted)
        elif match is not None:
            pairs = {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in match.items()}
            keys = frozenset(t.key for t in targets
                             if all(attributes_of(t).get(k) == v for k, v in pairs.items()))
            if not pairs:
                f.problem("match", "is empty; leave out 'match' for a window on every target")
        parsed = parse_schedule(f)
        if parsed is not None:
            windows.append(Window(parsed[0] or f"maintenance-{i + 1}", parsed[1], keys, parsed[2]))
    return windows


def check_window_names(top: Fields, windows: list[Window]) -> None:
    seen: set[str] = set()
    for window in windows:
        if window.name in seen:
            top.problem("maintenance", f"window name {window.name!r} is used twice; give each window its own "
                                       "'name' (Alertmanager's time intervals are named by it)")
        seen.add(window.name)
