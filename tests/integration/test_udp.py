"""The udp kind against real servers: NSD asked a DNS query written in hexadecimal (its answer
matched byte by byte), the misbehaving UDP ports beside it (one that never answers, one that
answers garbage), and a port nothing listens on (the kernel's ICMP port unreachable)."""

from __future__ import annotations

import socket

import dns.message
import dns.rdatatype
import pytest

from otel_health.errors import ErrorType
from tests.harness import servers, targets
from tests.harness.checks import assert_failed, check_once

pytestmark = pytest.mark.integration


def _udp(name: str, port: int, *, timeout: str = "1s", **fields: object) -> str:
    return targets.entry(name, "udp", host="127.0.0.1", port=port, timeout=timeout, **fields)


def _query() -> str:
    """A DNS query for www.example.test's A records, as hexadecimal bytes."""
    query = dns.message.make_query(f"www.{servers.ZONE}", dns.rdatatype.A, use_edns=False)
    query.id = 0x4242
    return query.to_wire().hex(" ")


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_query_and_its_answer_against_a_real_server(dns_server: servers.Nsd) -> None:
    results = await check_once(
        # the answer: the query's id, and 192.0.2.10 among the addresses
        _udp("dns", dns_server.port, send_hex=_query(), expect=r"^\x42\x42[\s\S]*\xc0\x00\x02\x0a")
        + _udp("any-answer", dns_server.garbage_port, send_hex=_query())
        + _udp("text", dns_server.garbage_port, send="\\x42\\x42hello, anyone there?\\r\\n", expect="^BB"))
    for name, result in results.items():
        assert result.up, (name, result.detail)
        assert "exchange" in result.phases and "connect" in result.phases, (name, result.phases)


async def test_each_way_a_udp_check_fails_is_named(dns_server: servers.Nsd) -> None:
    closed = _closed_port()
    results = await check_once(
        _udp("silent", dns_server.silent_port, send_hex=_query(), timeout="0.5s")
        + _udp("closed", closed, send="ping")
        + _udp("mismatch", dns_server.port, send_hex=_query(), expect=r"\xc0\x00\x02\x63")
        + targets.entry("no-name", "udp", host="no-such-host.invalid", port=53, send="x", timeout="1s"))
    assert_failed(results, {
        "silent": (ErrorType.TIMEOUT, "no answer within the 0.5s timeout"),
        "closed": (ErrorType.CONNECTION_REFUSED, f"udp 127.0.0.1:{closed}: the port is closed"),
        "mismatch": (ErrorType.ASSERTION, "the answer did not match '\\\\xc0\\\\x00\\\\x02\\\\x63': 'BB\\x"),
        "no-name": (ErrorType.DNS, "no-such-host.invalid"),
    })
