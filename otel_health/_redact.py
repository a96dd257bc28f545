"""Keeping credentials out of everything an operator or a backend can see."""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

__all__ = ["REDACTED", "encoded_forms", "redact_url", "scrub"]

REDACTED = "REDACTED"
# Query keys whose values are hidden: any key holding one of these words, or one of the
# short keys credentials travel in (an OAuth code, a session id, a one-time password). The
# docs/checks.md lists the same rule.
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


_MIN_ENCODED = 6  # characters: a shorter encoded form would hide ordinary text


@functools.lru_cache(maxsize=4096)
def encoded_forms(secret: str) -> tuple[str, ...]:
    """The ways ``secret`` can be written where a target, a URL or a document carries it: as it
    is, percent-encoded (a path or a query), form-encoded, JSON-escaped, and in base64 (standard
    and URL-safe, at each of the three alignments it can take inside a longer base64 text, as in
    a Basic credential), longest first."""
    forms = {secret, quote(secret, safe=""), quote(secret, safe="/:@"), quote_plus(secret),
             json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    raw = secret.encode("utf-8", "surrogatepass")
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for shift in range(3):
            text = encode(b"\0" * shift + raw).decode("ascii")
            # the characters that depend on the secret's bytes alone
            first = -(-shift * 8 // 6)
            last = (shift + len(raw)) * 8 // 6
            forms.add(text[first:last])
    return tuple(sorted((f for f in forms if f == secret or len(f) >= _MIN_ENCODED), key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every known secret value, in each of its :func:`encoded_forms`, and any
    URL userinfo replaced."""
    for secret in secrets:
        if not secret:
            continue
        for form in encoded_forms(secret):
            if form in text:
                text = text.replace(form, REDACTED)
    return _USERINFO_IN_TEXT.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
