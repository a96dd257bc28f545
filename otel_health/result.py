"""The one result every probe produces and every consumer reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ErrorType

__all__ = ["CheckResult"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check of one target.

    ``duration`` is wall time in seconds from the start of the check to its end, retries
    included. ``phases`` holds the last attempt's step timings in seconds (``connect``,
    ``tls``, ``request``…). ``info`` holds what the target reports about itself beyond
    its version (kind-specific, e.g. a Redis role); it becomes labels of ``tta_service_info``.
    ``tls_expiry`` is the Unix time the peer's certificate expires, for TLS targets.
    """

    up: bool
    duration: float
    started_at: float
    error_type: ErrorType | None = None
    detail: str = ""
    status_code: int | None = None
    version: str | None = None
    phases: dict[str, float] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)
    attempts: int = 1
    slow: bool = False
    tls_expiry: float | None = None

    @property
    def outcome(self) -> str:
        return "up" if self.up else "down"
