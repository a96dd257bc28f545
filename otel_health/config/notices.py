"""The announcements a config writes (``announcements:``): the status page shows them as it
shows those the API makes (``otel_health.announcements``)."""

from __future__ import annotations

from ..announcements import MAX_MESSAGE, SEVERITIES, Announcement
from ..suppression import gap_hint, instant, zone
from ..suppression import utc as dt_utc
from .fields import Fields
from .values import NAME_RE, short

__all__ = ["parse_announcements"]


def parse_announcements(top: Fields) -> tuple[Announcement, ...]:
    """Each announcement: a name (its id), a severity, a Markdown message, a start and an end
    (both optional: shown from the start, until the end); reported problems leave it out."""
    made = []
    names: set[str] = set()
    for _, f in top.each("announcements"):
        name = f.text("name", required=True, pattern=NAME_RE, hint="use 1-128 letters, digits, '.', '_' or '-'")
        if name is not None and name in names:
            f.problem("name", f"{short(name)!r} is another announcement's name too; give each its own")
        names.add(name or "")
        severity = f.text("severity", "info", choices=SEVERITIES) or "info"
        message = f.text("message", required=True)
        if message is not None and not 0 < len(message) <= MAX_MESSAGE:
            f.problem("message", f"must be Markdown of 1 to {MAX_MESSAGE} characters")
        location = f.text("location", "UTC")
        where = zone(location)
        if where is None:
            f.problem("location", f"unknown time zone {short(location)!r}; use an IANA name such as Europe/Berlin")
        moments: list[float | None] = []
        for key in ("start", "end"):
            value = f.raw(key)
            moment = instant(value, where or dt_utc()) if value is not None else None
            if value is not None and moment is None:
                f.problem(key, f"must be a time such as 2026-12-24T22:00:00Z or 2026-12-24 22:00 (read in "
                               f"'location'), got {short(value)!r}{gap_hint(value, where or dt_utc())}")
            moments.append(moment)
        start, end = moments
        if start is not None and end is not None and end <= start:
            f.problem("end", "is not after 'start'; an announcement ends after it starts")
        f.finish()
        if name and message and where is not None:
            made.append(Announcement(name, severity, message, start if start is not None else 0.0, end, "config"))
    return tuple(made)
