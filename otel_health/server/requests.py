"""What a write asks for, read and refused with the reason: a maintenance window, a job's report."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ..announcements import MAX_MESSAGE, SEVERITIES
from ..config import Target, format_seconds, parse_duration
from ..suppression import Window, gap_hint, instant, zone

__all__ = ["MAX_COMMENT", "MAX_REPORT_MESSAGE", "BadRequest", "MaintenanceApi", "Period", "announcement_request",
           "period_request", "report_request", "window_request"]


class MaintenanceApi(Protocol):
    """What the maintenance endpoints read and change (``collector.Maintenance``)."""

    @property
    def limit(self) -> float: ...

    def targets(self) -> list[Target]: ...

    def windows(self) -> list[Window]: ...

    async def open(self, targets: list[tuple[str, str]], start: float, end: float, comment: str) -> Window: ...

    async def end(self, window_id: str) -> bool: ...


MAX_COMMENT = 500  # characters of a maintenance window's comment
_WINDOW_FIELDS = ("targets", "duration", "start", "end", "location", "comment")


class BadRequest(ValueError):
    """A request the API refuses with 400: the reason, one line."""


def window_request(body: Any, api: MaintenanceApi, now: float,
                    elsewhere: Callable[[str, str | None], str] = lambda _name, _environment: "",
                    ) -> tuple[list[tuple[str, str]], float, float, str]:
    """What ``POST /api/v1/maintenance`` asks for: targets, start, end, comment; or BadRequest."""
    body = _object(body, _WINDOW_FIELDS, "'targets' and 'duration' (or 'end')")
    wanted = body.get("targets")
    if not isinstance(wanted, list) or not wanted:
        raise BadRequest("'targets' must be a non-empty list of target names or {\"name\", \"environment\"} objects")
    by_name: dict[str, list[tuple[str, str]]] = {}
    for target in api.targets():
        by_name.setdefault(target.name, []).append(target.key)
    keys: list[tuple[str, str]] = []
    chosen: set[tuple[str, str]] = set()
    for entry in wanted:
        if isinstance(entry, str):
            found = sorted(by_name.get(entry, ()))
        elif isinstance(entry, dict) and set(entry) == {"name", "environment"} \
                and all(isinstance(v, str) for v in entry.values()):
            key = (entry["name"], entry["environment"])
            found = [key] if key in by_name.get(key[0], ()) else []
        else:
            raise BadRequest("each of 'targets' is a name or {\"name\": …, \"environment\": …}")
        if not found:
            name, environment = (entry, None) if isinstance(entry, str) else (entry["name"], entry["environment"])
            raise BadRequest(f"unknown target {json.dumps(entry)[:80]}; GET /api/v1/targets lists them"
                             + elsewhere(name, environment))
        for key in found:
            if key not in chosen:
                chosen.add(key)
                keys.append(key)
    where, start = _zone_and_start(body, now)
    if ("duration" in body) == ("end" in body):
        raise BadRequest("give either 'duration' (such as \"30m\") or 'end', one of them")
    if "duration" in body:
        end = start + _duration(body["duration"])
    else:
        given = instant(body["end"], where)
        if given is None:
            raise BadRequest("'end' must be a time such as 2026-12-24T23:00:00Z" + gap_hint(body["end"], where))
        end = given
    if end <= start:
        raise BadRequest("the window ends before it starts; give an 'end' after 'start'")
    if end <= now:
        raise BadRequest("the window is already over; give an 'end' in the future")
    if end - start > api.limit:
        raise BadRequest(f"the window is {format_seconds(end - start)} long, longer than max_maintenance "
                         f"({format_seconds(api.limit)}); open a shorter one, or raise max_maintenance in the config")
    if start - now > api.limit:
        raise BadRequest(f"the window starts {format_seconds(start - now)} from now, further ahead than "
                         f"max_maintenance ({format_seconds(api.limit)}); open it nearer the time, or plan it in "
                         "the config")
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise BadRequest(f"'comment' must be text of at most {MAX_COMMENT} characters")
    return keys, start, end, comment


_ANNOUNCEMENT_FIELDS = ("message", "severity", "start", "end", "duration", "location")


def announcement_request(body: Any, now: float) -> tuple[str, str, float, float | None]:
    """What ``POST /api/v1/announcements`` asks for: severity, message, start, end (None: until
    ended); or BadRequest."""
    body = _object(body, _ANNOUNCEMENT_FIELDS, "'message' (Markdown) and 'severity'")
    message = body.get("message")
    if not isinstance(message, str) or not 0 < len(message.strip()) <= MAX_MESSAGE:
        raise BadRequest(f"'message' must be Markdown of 1 to {MAX_MESSAGE} characters")
    severity = body.get("severity", "info")
    if severity not in SEVERITIES:
        raise BadRequest(f"'severity' must be one of {', '.join(SEVERITIES)}")
    where, start = _zone_and_start(body, now)
    if "duration" in body and "end" in body:
        raise BadRequest("give 'duration' or 'end', not both (neither: until it is ended)")
    end = None
    if "duration" in body:
        end = start + _duration(body["duration"])
    elif body.get("end") is not None:
        end = instant(body["end"], where)
        if end is None:
            raise BadRequest("'end' must be a time such as 2026-12-24T23:00:00Z" + gap_hint(body["end"], where))
    if end is not None and end <= max(start, now):
        raise BadRequest("the announcement would be over before it is shown; give an 'end' after 'start' and now")
    return severity, message, start, end


def _object(body: Any, fields: tuple[str, ...], wanted: str) -> dict[str, Any]:
    """A write's body: a JSON object with only ``fields``; BadRequest naming what is wanted."""
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object with {wanted}")
    unknown = sorted(str(k)[:40] for k in body if k not in fields)
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; known fields: {', '.join(fields)}")
    return body


def _zone_and_start(body: dict[str, Any], now: float) -> tuple[ZoneInfo, float]:
    """A write's ``location`` (the zone its times without an offset are read in, UTC by
    default) and ``start`` (now by default); BadRequest with the reason."""
    location = body.get("location", "UTC")
    where = zone(location) if isinstance(location, str) else None
    if where is None:
        raise BadRequest(f"unknown time zone {json.dumps(location)[:80]}; use an IANA name such as Europe/Berlin")
    if body.get("start") is None:
        return where, now
    given = instant(body["start"], where)
    if given is None:
        raise BadRequest("'start' must be a time such as 2026-12-24T22:00:00Z" + gap_hint(body["start"], where))
    return where, given


def _duration(value: Any) -> float:
    seconds = parse_duration(value) if not isinstance(value, bool) else None
    if seconds is None or seconds <= 0:
        raise BadRequest("'duration' must be a duration such as 30m, 2h or 900 (seconds)")
    return seconds


MAX_REPORT_MESSAGE = 2000  # characters of a job's message the API takes (500 are kept)


def report_request(query: Mapping[str, str], body: Any) -> tuple[bool, float | None, str]:
    """A job's report from the query (``?status=fail&duration=12.5&message=...``) and/or a JSON
    object with the same fields; BadRequest with the reason."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequest("the body must be empty or a JSON object with 'status', 'duration', 'message'")
    unknown = sorted(str(k)[:40] for k in [*query, *body] if k not in ("status", "duration", "message", "environment"))
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; known fields: status, duration, message")
    fields = {**{k: v for k, v in query.items() if k != "environment"}, **body}
    status_text = fields.get("status", "ok")
    if status_text not in ("ok", "fail"):
        raise BadRequest("'status' is ok or fail")
    duration = None
    if fields.get("duration") is not None:
        raw = fields["duration"]
        duration = parse_duration(raw) if not isinstance(raw, bool) else None
        if duration is None:
            raise BadRequest("'duration' must be seconds (12.5) or a duration such as 3m")
    message = fields.get("message", "")
    if not isinstance(message, str) or len(message) > MAX_REPORT_MESSAGE:
        raise BadRequest(f"'message' must be text of at most {MAX_REPORT_MESSAGE} characters")
    return status_text == "ok", duration, message


REPORT_DEFAULT = 30 * 86400.0  # seconds a report covers when 'from' is not given
REPORT_FIELDS = ("from", "to", "format", "rows", "service", "environment")


@dataclass(frozen=True, slots=True)
class Period:
    """What ``GET /api/v1/report`` asks for."""

    start: float
    end: float
    format: str  # json or csv
    rows: str  # csv: targets or incidents
    service: str | None
    environment: str | None


def period_request(query: Mapping[str, str], now: float) -> Period:
    """The report's query (``?from=2026-11-01&to=2026-12-01&format=csv``); BadRequest with the
    reason. A time is ISO 8601 (a date is its midnight, UTC unless an offset is given) or Unix
    seconds; ``to`` defaults to now, ``from`` to 30 days before ``to``."""
    unknown = sorted(str(k)[:40] for k in query if k not in REPORT_FIELDS)
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]!r}; known: {', '.join(REPORT_FIELDS)}")
    end = _moment(query, "to", now)
    start = _moment(query, "from", end - REPORT_DEFAULT)
    if start >= end:
        raise BadRequest("'from' must be before 'to'")
    form = query.get("format", "json")
    if form not in ("json", "csv"):
        raise BadRequest("'format' is json or csv")
    rows = query.get("rows", "targets")
    if rows not in ("targets", "incidents"):
        raise BadRequest("'rows' is targets (one row a target) or incidents (one row an incident)")
    return Period(start, end, form, rows, query.get("service") or None, query.get("environment") or None)


def _moment(query: Mapping[str, str], name: str, default: float) -> float:
    raw = query.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        seconds = float(raw)
    except ValueError:
        at = instant(raw.strip() + ("T00:00:00Z" if len(raw.strip()) == 10 else ""), ZoneInfo("UTC"))
        if at is None:
            raise BadRequest(f"'{name}' must be an ISO 8601 time (2026-11-01T00:00:00Z), a date (2026-11-01) "
                             "or Unix seconds") from None
        return at
    if not 0 <= seconds < 1e11:
        raise BadRequest(f"'{name}' is not a time: Unix seconds between 1970 and 5138")
    return seconds
