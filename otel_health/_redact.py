"""Keeping credentials out of everything an operator or a backend can see."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["REDACTED", "redact_url", "scrub"]

REDACTED = "REDACTED"
# Query keys whose values are hidden: any key holding one of these words, or one of the
# short keys credentials travel in (an OAuth code, a session id, a one-time password). The
# README lists the same rule.
_SENSITIVE_QUERY = re.compile(
    r"(?is)(.*(token|secret|pass|pwd|private|key|signature|sig|credential|auth|session|jwt|ticket).*"
    r"|code|sid|otp|nonce|state|pw)"
)
_USERINFO_IN_TEXT = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]*@")


def redact_url(url: str) -> str:
    """The URL without userinfo and with the values of sensitive query parameters hidden."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}:{REDACTED}@" + netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, REDACTED if _SENSITIVE_QUERY.fullmatch(k) else v) for k, v in pairs], safe=REDACTED)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every known secret value and any URL userinfo replaced."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return _USERINFO_IN_TEXT.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
