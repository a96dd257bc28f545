"""What an HTTP target's answer must be, read from its options: the header assertions, the
body's patterns (RE2), its CEL expressions and the HTTP versions that pass; and a request body
read from a file. :mod:`._http_options` reads the rest of the kind's options."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config import Fields
from ._cel import CelError, CelExpression
from ._match import Pattern, PatternError

__all__ = ["HEADER_NAME", "MAX_BODY_FILE", "HeaderAssertion", "body_file", "header_assertions", "http_versions",
           "parse_cel", "parse_regexes"]

HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HTTP_VERSIONS = ("HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/3.0")
MAX_BODY_FILE = 1 << 20  # bytes: a request body is read with the config, and sent by every check


@dataclass(frozen=True, slots=True)
class HeaderAssertion:
    """``fail_if_header_matches`` (``must_match`` False) or ``fail_if_header_not_matches``."""

    header: str  # lower case
    regexp: Pattern
    must_match: bool
    allow_missing: bool = False

    @property
    def option(self) -> str:
        return "fail_if_header_not_matches" if self.must_match else "fail_if_header_matches"


def body_file(f: Fields) -> tuple[Path | None, bytes | None]:
    """``body_file``'s path and the bytes it holds, read now (a check sends them as they were)."""
    path = f.path("body_file")
    if path is None:
        return None, None
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BODY_FILE + 1)
    except OSError as exc:
        f.problem("body_file", f"cannot be read ({exc.strerror}); check the path and its permissions")
        return path, None
    if len(data) > MAX_BODY_FILE:
        f.problem("body_file", f"is over {MAX_BODY_FILE >> 20} MiB; a request body is sent by every check")
        return path, None
    return path, data


def parse_cel(f: Fields, name: str) -> CelExpression | None:
    text = f.text(name)
    if text is None:
        return None
    try:
        return CelExpression.compile(text)
    except CelError as exc:
        f.problem(name, str(exc))
        return None


def parse_regexes(f: Fields, name: str) -> tuple[Pattern, ...]:
    """A pattern, or a list of them (blackbox_exporter's lists), each compiled by RE2."""
    value = f.raw(name)
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) for item in items):
        f.problem(name, "must be an RE2 pattern or a list of them")
        return ()
    listed = isinstance(value, list)
    compiled = [_compiled(f, name, text, f"item {i + 1}: " if listed else "") for i, text in enumerate(items)]
    return tuple(pattern for pattern in compiled if pattern is not None)


def _compiled(f: Fields, name: str, pattern: str, where: str = "") -> Pattern | None:
    """``pattern`` compiled by RE2, or None with the problem reported (``where``: an item of a list)."""
    try:
        return Pattern(pattern)
    except PatternError as exc:
        f.problem(name, f"{where}{'regexp ' if where else ''}{exc}")
        return None


def http_versions(f: Fields) -> tuple[str, ...]:
    versions: list[str] = []
    for item in f.sequence("valid_http_versions"):
        if item not in _HTTP_VERSIONS:
            f.problem("valid_http_versions", f"{str(item)[:20]!r} is not one of {', '.join(_HTTP_VERSIONS)}")
        elif item not in versions:
            versions.append(item)
    return tuple(versions)


def header_assertions(f: Fields, name: str, *, must_match: bool) -> tuple[HeaderAssertion, ...]:
    found: list[HeaderAssertion] = []
    for i, item in enumerate(f.sequence(name)):
        where = f"item {i + 1}"
        if not isinstance(item, Mapping) or not set(item) <= {"header", "regexp", "allow_missing"}:
            f.problem(name, f"{where} must be {{header: NAME, regexp: PATTERN, allow_missing: false}}")
            continue
        header, pattern, allow = item.get("header"), item.get("regexp"), item.get("allow_missing", False)
        if not isinstance(header, str) or not HEADER_NAME.fullmatch(header):
            f.problem(name, f"{where}: 'header' must be a header name")
            continue
        if not isinstance(pattern, str):
            f.problem(name, f"{where}: 'regexp' must be a regular expression")
            continue
        if not isinstance(allow, bool):
            f.problem(name, f"{where}: 'allow_missing' must be true or false")
            continue
        compiled = _compiled(f, name, pattern, f"{where}: ")
        if compiled is None:
            continue
        found.append(HeaderAssertion(header.lower(), compiled, must_match, allow))
    return tuple(found)
