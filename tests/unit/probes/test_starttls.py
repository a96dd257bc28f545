"""Whatever a server sends, a STARTTLS preset ends with a named failure (or the go-ahead), never
an exception of another kind: the presets fed arbitrary answers, then the connection's end.
(The protocols themselves are proven against Exim, Dovecot and Prosody in tests/integration.)"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_health.errors import ErrorType, ProbeFailure
from otel_health.probes._starttls import LOGINS, PRESETS


class _Writer:
    def __init__(self) -> None:
        self.sent = b""

    def write(self, data: bytes) -> None:
        self.sent += data


def _fed(answer: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=64 * 1024)
    reader.feed_data(answer)
    reader.feed_eof()
    return reader


async def _run(preset: str, answer: bytes) -> tuple[ProbeFailure | None, bytes]:
    writer = _Writer()
    try:
        await PRESETS[preset](_fed(answer), writer, "example.test")  # type: ignore[arg-type]
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


async def _login(protocol: str, answer: bytes) -> tuple[ProbeFailure | None, bytes]:
    writer = _Writer()
    try:
        await LOGINS[protocol](_fed(answer), writer, "checker", "pa ss")  # type: ignore[arg-type]
    except ProbeFailure as failure:
        return failure, writer.sent
    return None, writer.sent


@settings(max_examples=200, deadline=None)
@given(protocol=st.sampled_from(sorted(LOGINS)), answer=answers)
async def test_whatever_a_server_answers_a_login_ends_named(protocol: str, answer: bytes) -> None:
    failure, _ = await _login(protocol, answer)
    assert failure is None or isinstance(failure.error_type, ErrorType)


@pytest.mark.parametrize(("protocol", "answer", "expected"), [
    ("smtp", b"250-mail\r\n250-AUTH PLAIN\r\n250 OK\r\n454 4.7.0 Temporary authentication failure\r\n",
     (ErrorType.UNAVAILABLE, "smtp: the login was answered '454 4.7.0 Temporary authentication failure'")),
    ("smtp", b"250-mail\r\n250-AUTH CRAM-MD5\r\n250 OK\r\n",
     (ErrorType.ASSERTION, "smtp: the server offers no AUTH PLAIN or LOGIN over TLS (AUTH: CRAM-MD5)")),
    ("imap", b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\na3 OK\r\n+ \r\na4 NO [UNAVAILABLE] Try later\r\n",
     (ErrorType.UNAVAILABLE, "imap: the login was answered 'NO [UNAVAILABLE] Try later'")),
    ("imap", b"* CAPABILITY IMAP4rev1 LOGINDISABLED\r\na3 OK\r\n",
     (ErrorType.ASSERTION, "imap: the server offers no AUTH=PLAIN over TLS, and LOGIN is disabled or cannot carry "
                           "these credentials (quotes, non-ASCII)")),
    ("pop3", b"+OK\r\n-ERR [SYS/TEMP] Try later\r\n",
     (ErrorType.UNAVAILABLE, "pop3: the login was answered '-ERR [SYS/TEMP] Try later'")),
])
async def test_a_server_that_cannot_check_a_login_now_is_unavailable_not_a_refusal(
        protocol: str, answer: bytes, expected: tuple[ErrorType, str]) -> None:
    failure, sent = await _login(protocol, answer)
    assert failure is not None and (failure.error_type, failure.detail) == expected
    assert b"pa ss" not in sent or protocol == "pop3"  # SASL PLAIN sends it in base64, POP3's PASS as is


async def test_the_plain_response_is_rfc_4616s() -> None:
    _, sent = await _login("smtp", b"250-mail\r\n250-AUTH LOGIN PLAIN\r\n250 OK\r\n235 ok\r\n")
    assert sent == b"EHLO otel-health\r\nAUTH PLAIN AGNoZWNrZXIAcGEgc3M=\r\n"  # base64 of \0checker\0pa ss


async def test_credentials_a_line_command_cannot_carry_are_named_not_sent() -> None:
    writer = _Writer()
    with pytest.raises(ProbeFailure) as caught:
        await LOGINS["pop3"](_fed(b"+OK\r\n"), writer, "checker", "päss")  # type: ignore[arg-type]
    assert caught.value.error_type == ErrorType.ASSERTION and "ASCII only" in caught.value.detail
    assert writer.sent == b""
    with pytest.raises(ProbeFailure) as imap:
        await LOGINS["imap"](_fed(b"* CAPABILITY IMAP4rev1\r\na3 OK\r\n"), _Writer(),  # type: ignore[arg-type]
                             "checker", "päss")
    assert "cannot carry these credentials" in imap.value.detail
