"""Heartbeat targets: jobs no probe can reach (cron jobs, backups, Celery beat) report in.

A job calls ``POST /api/v1/heartbeat/{name}`` with its own token (``otel-health ping`` does it
around a command). The check, run on the target's interval like any other, says down with
``missed`` when no report came within ``period`` plus ``grace``, down with ``assertion`` and the
job's message when the last report said it failed, and up otherwise. After a start with no
report kept, it has no verdict (unknown, not down) until one period and its grace have passed.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._redact import scrub
from ..config import Fields, Secret, Target, format_seconds
from ..errors import ErrorType, NoVerdict, ProbeFailure
from ..result import said
from ._base import Attempt, Probe, ProbeSettings
from ._reports import MESSAGE_LIMIT, Report, Reports

__all__ = ["HeartbeatOptions", "HeartbeatProbe", "Heartbeats"]


@dataclass(frozen=True, slots=True)
class HeartbeatOptions:
    period: float
    grace: float
    token: Secret | None

    @classmethod
    def parse(cls, f: Fields) -> HeartbeatOptions:
        period = f.duration("period", 0.0, minimum=1.0, maximum=366 * 86400.0)
        if not f.has("period"):
            f.problem("period", "is required: how often the job reports in, such as 1h or 24h")
        grace = f.duration("grace", 60.0, minimum=0.0, maximum=366 * 86400.0)
        token = f.secret("token", required=True)
        if token is not None and not token.reveal():
            f.problem("token", "is empty; give the job a token of its own")
        return cls(period=period, grace=grace, token=token)

    def secrets(self) -> Iterator[Secret]:
        if self.token is not None:
            yield self.token

    def public(self) -> dict[str, Any]:
        return {"period_seconds": self.period, "grace_seconds": self.grace,
                "token": f"REDACTED ({self.token.source})" if self.token is not None else None}


class Heartbeats:
    """The heartbeat kind's inbox (``_inbox.Inbox``): which targets take reports, taking one,
    and keeping them (``_reports``)."""

    def __init__(self, reports: Reports) -> None:
        self.reports = reports

    @staticmethod
    def takes(target: Target) -> bool:
        return isinstance(target.options, HeartbeatOptions)

    @staticmethod
    def knows(target: Target, token: str) -> bool:
        """Whether ``token`` is ``target``'s own token (compared in constant time)."""
        options = target.options
        if not isinstance(options, HeartbeatOptions) or options.token is None:
            return False
        return hmac.compare_digest(token.encode("utf-8", "surrogateescape"), options.token.reveal().encode())

    def accept(self, target: Target, token: str, *, ok: bool, duration: float | None, message: str) -> bool:
        """Record a job's report for ``target`` if ``token`` is its token."""
        if not self.knows(target, token):
            return False
        # kept and shown: never with the target's own token in it, should the job echo it
        text = said(scrub(message, target.secrets()), MESSAGE_LIMIT) if message else ""
        self.reports.add(target.key, Report(self.reports.clock(), ok, duration, text, time.monotonic()))
        return True

    def pending(self) -> Callable[[], bool] | None:
        return self.reports.pending()

    def save(self) -> None:
        self.reports.save()

    def move(self, state_dir: Path | None) -> None:
        self.reports.move(state_dir)

    def retain(self, live: Iterable[tuple[str, str]]) -> None:
        self.reports.retain(live)


class HeartbeatProbe(Probe):
    kind = "heartbeat"
    options_type = HeartbeatOptions
    component_type = "component"
    check_name = "heartbeat"

    def __init__(self, settings: ProbeSettings) -> None:
        super().__init__(settings)
        # What jobs report in: the API writes through the inbox, _check reads.
        self.reports = Reports(settings.state_dir, clock=settings.clock)
        self.inbox = Heartbeats(self.reports)

    async def _check(self, target: Target, attempt: Attempt) -> None:
        o: HeartbeatOptions = target.options
        reports = self.reports
        last = reports.last(target.key)
        now = reports.clock()
        allowed = o.period + o.grace
        if last is None:
            if now - reports.started < allowed:
                raise NoVerdict()
            since = format_seconds(round(now - reports.started))
            raise ProbeFailure(ErrorType.MISSED, f"no report since otel-health started {since} ago; expected "
                                                 f"every {format_seconds(o.period)} (+{format_seconds(o.grace)} grace)")
        if last.duration is not None:
            attempt.phases["job"] = last.duration
        age = last.age(now)
        if age > allowed:
            raise ProbeFailure(ErrorType.MISSED, f"last report {format_seconds(round(age))} ago; expected "
                                                 f"every {format_seconds(o.period)} (+{format_seconds(o.grace)} grace)")
        if not last.ok:
            raise ProbeFailure(ErrorType.ASSERTION, f"the job reported failure: {last.message}" if last.message
                               else "the job reported failure")
