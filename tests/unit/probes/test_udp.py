"""The udp kind's options: the datagram written as text with escapes or as hexadecimal, the
answer's pattern read by RE2 byte by byte (the wire is in tests/integration/test_udp.py)."""

from __future__ import annotations

from otel_health.probes.udp import UdpOptions, _shown
from tests.harness.checks import options_of


def _options(fields: str) -> UdpOptions:
    return options_of(UdpOptions, f"kind: udp, host: 127.0.0.1, port: 53, {fields}")


def test_the_datagram_as_text_with_escapes_or_as_hexadecimal() -> None:
    assert _options(r"send: '\xff\xff\xff\xffTSource Engine Query\x00'").send == (
        b"\xff\xff\xff\xffTSource Engine Query\x00")
    assert _options(r"send: 'stats\r\n'").send == b"stats\r\n"
    hexed = _options("send_hex: 'ff ff:ff ff 54 53'")
    assert hexed.send == b"\xff\xff\xff\xffTS"
    assert hexed.public()["send_bytes"] == 6


def test_the_answer_is_matched_byte_by_byte_with_re2_escapes() -> None:
    expect = _options(r"send: x, expect: '^\x42\x42[\s\S]*\xc0\x00\x02\x0a'").expect
    assert expect is not None
    assert expect.found(b"BB\x85\x00junk\xc0\x00\x02\x0a")
    assert not expect.found(b"BC\xc0\x00\x02\x0a")
    assert _options(r"send: x, expect: '\.'").expect.found(b".")  # type: ignore[union-attr]
    assert not _options(r"send: x, expect: '\x2e'").expect.found(b"a")  # type: ignore[union-attr]  # escaped: a dot


def test_an_answer_is_shown_printable_and_cut() -> None:
    assert _shown(b"OK\r\n") == "OK\\r\\n"
    assert _shown(b"\x00" * 100) == "\\x00" * 64 + "…"
