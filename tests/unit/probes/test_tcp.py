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
    assert options.send == b"EHLO x\r\n"
    assert options.expect is not None and options.expect.found(b"220 mail.example ESMTP\r\n")
    assert not options.expect.found(b"554 no\r\n")
    assert options.public() == {"host": "127.0.0.1", "port": 25, "tls": False, "send": True, "expect": "^220 "}


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
