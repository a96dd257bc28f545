"""Patterns on a target's answer: RE2's reading, as Go's regexp (and so blackbox_exporter) reads."""

from __future__ import annotations

import threading

import pytest

from otel_health.probes._match import OFF_LOOP_BYTES, Pattern, PatternError, judged


def test_a_byte_that_is_not_utf8_reads_as_a_replacement_character_as_in_go() -> None:
    assert Pattern("a.b").found(b"a\xffb") and Pattern("a[^x]b").found(b"a\xffb")
    assert Pattern("caf.$").found("café".encode()) and Pattern("(?i)CAFÉ").found("café")
    assert not Pattern("a..b").found(b"a\xffb")  # one character, not two


def test_dollar_is_the_end_of_the_text_and_multiline_is_asked_for() -> None:
    assert not Pattern("ok$").found(b"ok\n")  # Go and RE2; Python's re would match before the newline
    assert Pattern("(?m)^ok$").found(b"status\nok\n")


def test_groups_are_taken_by_name_or_else_the_first() -> None:
    assert Pattern(r"(?P<skip>\w+)=(?P<value>\d+)", captures=True).group(b"id=42") == "42"
    assert Pattern(r"(\w+)=(\d+)", captures=True).group(b"id=42") == "id"
    assert Pattern(r"x(y)?", captures=True).group(b"x") is None
    assert Pattern(r"(\w+)", captures=True).groups == 1


def test_a_tcp_pattern_matches_one_byte_a_character() -> None:
    assert Pattern(r"^\+PONG", latin1=True).found(b"+PONG\r\n")
    assert Pattern("\xff\x00.", latin1=True).found(b"\xff\x00\x80")
    with pytest.raises(PatternError, match="beyond Latin-1"):
        Pattern("café ☕", latin1=True)


@pytest.mark.parametrize(("pattern", "said"), [
    (r"(a)\1", "backreferences"),
    (r"status(?=ok)", "lookahead and lookbehind"),
    (r"(?<!x)y", "lookahead and lookbehind"),
    (r"a{1001}", "at most {1000}"),
    (r"(unclosed", "missing )"),
    ("x" * 5000, "keep a pattern under"),
])
def test_what_re2_refuses_is_said_with_the_fix(pattern: str, said: str) -> None:
    with pytest.raises(PatternError, match=said.replace("(", r"\(").replace(")", r"\)").replace("{", r"\{")
                       .replace("}", r"\}")):
        Pattern(pattern)


async def test_a_large_answer_is_judged_on_a_thread_and_a_small_one_on_the_loop() -> None:
    loop_thread = threading.get_ident()
    assert await judged(OFF_LOOP_BYTES, threading.get_ident) == loop_thread
    assert await judged(OFF_LOOP_BYTES + 1, threading.get_ident) != loop_thread
