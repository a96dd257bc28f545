"""The TCP kind's options: what a config may say, escapes in ``send`` and ``expect``, and the
URLs ``otel-health probe`` takes. (Connections are proven against real servers in
tests/integration.)"""

from __future__ import annotations

import pytest

from otel_health.config import ConfigError
from otel_health.config.loader import load_text
from otel_health.probes import PROBES
from otel_health.probes.tcp import TcpOptions, TcpProbe
from tests.harness import targets


def test_send_and_expect_take_escapes_and_match_bytes_as_latin1() -> None:
    config = load_text(targets.config(targets.tcp("smtp", port=25, extra={"send": "EHLO x\\r\\n",
                                                                           "expect": "^220 "})), "t.yaml", PROBES)
    options = config.targets[0].options
    assert isinstance(options, TcpOptions)
    send, expect = options.dialog
    assert send.send == b"EHLO x\r\n"
    assert expect.expect is not None and expect.expect.found(b"220 mail.example ESMTP\r\n")
    assert not expect.expect.found(b"554 no\r\n")
    assert options.public() == {"host": "127.0.0.1", "port": 25, "tls": False, "starttls": None, "ip_protocol": "auto",
                                "source_ip": None, "username": None, "password": None, "check_revocation": "off",
                                "revocation_unknown": "warn",
                                "dialog": [{"expect": None, "send": True, "starttls": False},
                                           {"expect": "^220 ", "send": False, "starttls": False}]}


def test_a_dialog_reads_its_steps_and_knows_which_sends_take_groups() -> None:
    config = load_text(targets.config(targets.tcp("smtp", port=25, extra={"dialog": [
        {"expect": "^220 "}, {"send": "EHLO x\\r\\n"}, {"expect": "^250-STARTTLS"}, {"send": "STARTTLS\\r\\n"},
        {"expect": "^220"}, {"starttls": True}, {"expect": "^PING :(?P<token>\\S+)", "send": "PONG ${token} $$\\r\\n"},
        {"send": "costs $5\\r\\n"}]})), "t.yaml", PROBES)
    options = config.targets[0].options
    assert isinstance(options, TcpOptions) and options.uses_tls and not options.tls
    assert [(s.expect is not None, s.send, s.starttls, s.expands) for s in options.dialog] == [
        (True, None, False, False), (False, b"EHLO x\r\n", False, False), (True, None, False, False),
        (False, b"STARTTLS\r\n", False, False), (True, None, False, False), (False, None, True, False),
        (True, b"PONG ${token} $$\r\n", False, True), (False, b"costs $5\r\n", False, False)]
    ping = options.dialog[6]
    assert ping.expect is not None and ping.expect.expand(ping.send or b"", b"PING :abc") == b"PONG abc $\r\n"


def test_a_port_is_required_and_bounded() -> None:
    for extra, said in (({}, "field 'port': is required"), ({"port": 70000}, "field 'port': must be from 1 to 65535")):
        entry = targets.entry("db", "tcp", {"host": "127.0.0.1", **extra})
        with pytest.raises(ConfigError) as info:
            load_text(targets.config(entry), "t.yaml", PROBES)
        assert said in str(info.value)


def test_urls_map_to_options() -> None:
    assert TcpProbe.options_from_url("tcps://db.internal:5433") == TcpOptions(host="db.internal", port=5433, tls=True)
    assert TcpProbe.options_from_url("tcp://127.0.0.1:6379").tls is False
    with pytest.raises(ValueError, match="needs a host and a port"):
        TcpProbe.options_from_url("tcp://db.internal")


async def _answers(payload: bytes, pattern: str, *, close: bool = True) -> str | None:
    """The failure's detail (None: matched) of ``_expect_line`` reading ``payload`` from a real socket."""
    import asyncio

    from otel_health.errors import ProbeFailure
    from otel_health.probes._match import Pattern
    from otel_health.probes.tcp import _expect_line

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()
        if close:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await asyncio.wait_for(_expect_line(Pattern(pattern, latin1=True), reader, 0), 5)
        return None
    except ProbeFailure as failure:
        return failure.detail
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("payload", "pattern", "matched"), [
    # blackbox_exporter's TestTCPConnectionQueryResponseIRC and its Redis case: ^ anchors each line
    (b":irc.example NOTICE * :*** Looking up your hostname\r\n:irc.example 001 nick :Welcome\r\n",
     r"^:[^ ]+ 001", True),
    (b"+OK\r\n+PONG\r\n", r"^\+PONG$", True),
    (b"+OK\r\n+PONG\r\n", r"^\+PONGX", False),
    (b"line one\nline two\n", r"one\nline", False),   # a pattern never spans lines
    (b"220 ready", r"^220 ready$", True),              # the last line, without its newline, at the close
    (b"220 ready\n", r"^$", False),                    # no empty line after the last newline
    (b"x" * 70_000 + b"\nok\n", r"^ok$", False),      # a line past 64 KiB fails, as a line scanner does
])
async def test_expect_is_matched_line_by_line_as_blackbox_exporter_does(payload: bytes, pattern: str,
                                                                        matched: bool) -> None:
    detail = await _answers(payload, pattern)
    assert (detail is None) == matched, detail
    if payload.startswith(b"x"):
        assert detail is not None and "a line of over 64 KiB" in detail


def test_a_dialog_survives_the_trip_back_from_the_reload_process() -> None:
    """Reloads read the config in a process of their own and send it back pickled."""
    import pickle

    config = load_text(targets.config(targets.tcp("irc", port=6667, extra={
        "starttls": "xmpp", "ip_protocol": "ip4", "source_ip": "127.0.0.1",
        "dialog": [{"expect": "^PING :(\\S+)", "send": "PONG ${1}\\r\\n"}]})), "t.yaml", PROBES)
    again = pickle.loads(pickle.dumps(config))
    assert again.targets == config.targets
    step = again.targets[0].options.dialog[0]
    assert step.expect is not None and step.expect.expand(step.send or b"", b"PING :abc") == b"PONG abc\r\n"
