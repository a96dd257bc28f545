"""Whatever a server sends, a STARTTLS preset ends with a named failure (or the go-ahead), never
an exception of another kind: the presets fed arbitrary answers, then the connection's end.
(The protocols themselves are proven against Exim, Dovecot and Prosody in tests/integration.)"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_health.errors import ErrorType, ProbeFailure
from otel_health.probes._starttls import PRESETS


class _Writer:
    def __init__(self) -> None:
        self.sent = b""

    def write(self, data: bytes) -> None:
        self.sent += data


async def _run(preset: str, answer: bytes) -> tuple[ProbeFailure | None, bytes]:
    reader = asyncio.StreamReader(limit=64 * 1024)
    reader.feed_data(answer)
    reader.feed_eof()
    writer = _Writer()
    try:
        await PRESETS[preset](reader, writer, "example.test")  # type: ignore[arg-type]
    except ProbeFailure as failure:
        return failure, writer.sent
    return None, writer.sent


answers = st.one_of(st.binary(max_size=300), st.lists(st.sampled_from(
    [b"220 ok\r\n", b"250-STARTTLS\r\n", b"250 OK\r\n", b"* OK [CAPABILITY STARTTLS] hi\r\n", b"a2 OK go\r\n",
     b"+OK\r\n", b"STLS\r\n", b".\r\n", b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
     b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>", b"<x", b"\xff"]),
    max_size=8).map(b"".join))


@settings(max_examples=200, deadline=None)
@given(preset=st.sampled_from(sorted(PRESETS)), answer=answers)
def test_any_answer_ends_in_a_named_failure_or_the_go_ahead(preset: str, answer: bytes) -> None:
    failure, _ = asyncio.run(_run(preset, answer))
    if failure is not None:
        assert failure.error_type in (ErrorType.PROTOCOL, ErrorType.ASSERTION, ErrorType.CONNECTION_RESET)
        assert "\n" not in failure.detail and failure.detail.startswith(f"{preset}: ")


@pytest.mark.parametrize(("preset", "answer", "sent"), [
    ("smtp", b"220-hello\r\n220 there\r\n250-mail\r\n250-SIZE 10\r\n250 STARTTLS\r\n220 go\r\n",
     b"EHLO otel-health\r\nSTARTTLS\r\n"),
    ("imap", b"* OK ready\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\na2 OK begin\r\n",
     b"a1 CAPABILITY\r\na2 STARTTLS\r\n"),
    ("pop3", b"+OK ready\r\n-ERR no CAPA\r\n+OK begin\r\n", b"CAPA\r\nSTLS\r\n"),
])
async def test_the_go_ahead_after_what_the_rfc_says(preset: str, answer: bytes, sent: bytes) -> None:
    failure, written = await _run(preset, answer)
    assert failure is None and written == sent
