"""Regular expressions on what a target says, in time linear in what it says.

Every pattern applied to a target's answer (a body, a header, a TCP exchange, DNS records, a
value a suite step takes) is compiled by RE2, the engine of Go's ``regexp`` and so of
blackbox_exporter: no backtracking, so no answer can make a match take more than a time
proportional to its length. RE2 refuses what cannot run in linear time (backreferences,
lookaround); :class:`Pattern` says so at config time, with the fix.

What a match costs still grows with the input: an answer longer than :data:`OFF_LOOP_BYTES` is
judged on a thread (RE2 releases the interpreter while it matches), so the event loop that
runs every other check never waits on it (:func:`judged`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TypeVar

import re2

from ..config import Fields

__all__ = ["OFF_LOOP_BYTES", "Pattern", "PatternError", "judged", "pattern_field"]

# Above this many bytes of input, matching, decoding and JSON reading run on a thread: below it
# the worst pattern RE2 takes costs the loop a fraction of a millisecond (docs/performance.md).
OFF_LOOP_BYTES = 16 * 1024
MAX_PATTERN = 4096  # characters: a pattern's size bounds RE2's work per byte of input
_REFERENCE = re.compile(rb"\$(?:\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")  # Go's Regexp.Expand

T = TypeVar("T")


class PatternError(ValueError):
    """A pattern RE2 does not take; the message says why and what to do instead."""


class Pattern:
    """A pattern as written (``pattern``) and compiled by RE2 to match bytes: UTF-8 text, or with
    ``latin1`` one byte a character (a TCP exchange). Without ``captures`` it answers only
    whether it matches, which RE2 decides in one pass of its DFA."""

    __slots__ = ("_compiled", "_latin1", "pattern")

    def __init__(self, pattern: str, *, captures: bool = False, latin1: bool = False) -> None:
        if len(pattern) > MAX_PATTERN:
            raise PatternError(f"is {len(pattern)} characters long; keep a pattern under {MAX_PATTERN}")
        options = re2.Options()
        options.log_errors = False  # a refused pattern is the config's problem, said once, not on stderr
        options.never_capture = not captures
        if latin1:
            options.encoding = re2.Options.Encoding.LATIN1
        try:
            encoded = pattern.encode("latin-1" if latin1 else "utf-8")
        except UnicodeEncodeError:
            raise PatternError("holds a character beyond Latin-1; the answer is matched byte by byte, so write "
                               "the pattern in single-byte characters") from None
        try:
            self._compiled = re2.compile(encoded, options)
        except re2.error as exc:
            reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) \
                else str(exc)
            raise PatternError(f"is not a pattern RE2 takes ({reason}); {_fix(reason)}") from None
        self.pattern = pattern
        self._latin1 = latin1

    def found(self, data: bytes | str) -> bool:
        """Whether the pattern matches anywhere in ``data``."""
        return self._compiled.search(self._text(data)) is not None

    def group(self, data: bytes | str, name: str = "value") -> str | None:
        """The group called ``name`` (else the first group) of the first match, as text, or None."""
        match = self._compiled.search(self._text(data))
        if match is None:
            return None
        value = match.group(name.encode() if name.encode() in self._compiled.groupindex else 1)
        return None if value is None else bytes(value).decode("latin-1" if self._latin1 else "utf-8", "replace")

    def expand(self, template: bytes, data: bytes) -> bytes | None:
        """``template`` with ``$1``, ``${1}``, ``$name``, ``${name}`` replaced by the groups of the
        first match in ``data`` (a group that did not take part, or is not there, by nothing;
        ``$$`` by ``$``), as Go's ``Regexp.Expand`` and so blackbox_exporter's ``send`` does; None
        when the pattern does not match. Needs ``captures``."""
        match = self._compiled.search(self._text(data))
        if match is None:
            return None
        names = self._compiled.groupindex

        def one(reference: re.Match[bytes]) -> bytes:
            if reference.group(0) == b"$$":
                return b"$"
            name = reference.group(1) or reference.group(2)
            if name.isdigit():
                index = int(name)
                value = match.group(index) if index <= self._compiled.groups else None
            else:
                value = match.group(name) if name in names else None
            return bytes(value) if value is not None else b""

        return _REFERENCE.sub(one, template)

    def _text(self, data: bytes | str) -> bytes:
        """What RE2 reads: with UTF-8, a byte that is not UTF-8 becomes U+FFFD, as Go's regexp
        reads it (and as RE2 would not: it lets no pattern match such a byte)."""
        if isinstance(data, str):
            return data.encode("utf-8", "replace")
        if self._latin1 or data.isascii():
            return data
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("utf-8", "replace").encode("utf-8")
        return data

    @property
    def groups(self) -> int:
        return int(self._compiled.groups)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and (other.pattern, other._latin1) == (self.pattern, self._latin1)

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"Pattern({self.pattern!r})"


def pattern_field(f: Fields, name: str, *, prefix: str = "", latin1: bool = False) -> Pattern | None:
    """The RE2 pattern in field ``name`` of ``f`` (``prefix`` before it: ``(?m)`` for ``^`` and
    ``$`` at each line), or None; one RE2 does not take is the field's problem, said once."""
    text = f.text(name)
    if text is None:
        return None
    try:
        return Pattern(prefix + text, latin1=latin1)
    except PatternError as exc:
        f.problem(name, str(exc))
        return None


def _fix(reason: str) -> str:
    if any(op in reason for op in ("(?=", "(?!", "(?<=", "(?<!")):
        return ("lookahead and lookbehind are not supported (RE2's syntax, as in blackbox_exporter): match the text "
                "itself, or use a 'not' option for what must not be there")
    if "escape sequence: \\" in reason and reason.rsplit("\\", 1)[-1][:1].isdigit():
        return "backreferences (\\1) are not supported (RE2's syntax, as in blackbox_exporter): spell the text out"
    if "repetition size" in reason:
        return "a counted repetition is at most {1000}: write a smaller count, or + or *"
    return "write it in RE2's syntax (that of Go's regexp and blackbox_exporter)"


async def judged(size: int, judge: Callable[[], T]) -> T:
    """``judge()`` (matching, decoding, reading JSON of an answer of ``size`` bytes): on the loop
    when it is small, else on a thread."""
    if size <= OFF_LOOP_BYTES:
        return judge()
    return await asyncio.to_thread(judge)
