"""The one result every probe produces and every consumer reads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ErrorType

__all__ = ["DETAIL_LIMIT", "VALUE_LIMIT", "CheckResult", "said"]

VALUE_LIMIT = 128  # characters of a version or an info value: label values, span attributes
DETAIL_LIMIT = 512  # characters of a failure's detail
_SURROGATE = re.compile("[\ud800-\udfff]")


def said(text: str, limit: int) -> str:
    """What a target said, made safe to carry anywhere: valid UTF-8 (a lone surrogate becomes
    U+FFFD), control characters shown as escapes (``\\x1b``), at most ``limit`` characters
    (cut with "...")."""
    if len(text) <= limit and text.isascii() and text.isprintable():
        return text  # the common case, at no cost
    text = _SURROGATE.sub("\ufffd", text)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else _escape(c) for c in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _escape(c: str) -> str:
    code = ord(c)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


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
    loss_ratio: float | None = None  # the share of echo requests unanswered (ICMP)
    dnssec_expiry: float | None = None  # Unix time the first RRSIG of a validated answer's chain expires (DNS)
    known: bool = True  # False: the probe has no verdict yet (errors.NoVerdict); nothing is recorded

    @property
    def outcome(self) -> str:
        return "up" if self.up else "down"
