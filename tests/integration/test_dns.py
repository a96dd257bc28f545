"""DNS checks against NSD (Debian) serving a test zone, and UDP ports that misbehave."""

from __future__ import annotations

import time

import pytest

from otel_health.errors import ErrorType
from tests.harness import servers
from tests.harness.checks import assert_failed, check_once
from tests.harness.running import running

pytestmark = pytest.mark.integration


def _dns(name: str, server: str, query: str, extra: str = "", *, timeout: str = "2s") -> str:
    return (f"  - name: {name}\n    kind: dns\n    server: '{server}'\n    query_name: {query}\n"
            f"    timeout: {timeout}\n{extra}")


async def test_each_query_type_and_the_answer_checks(dns_server: servers.Nsd) -> None:
    s = dns_server.server
    z = servers.ZONE
    results = await check_once(
        _dns("a", s, f"www.{z}", "    validate_answer_rrs:\n"
                                 "      fail_if_not_matches_regexp: ['IN\\s+A\\s+192\\.0\\.2\\.1[01]$']\n"
                                 "    min_answers: 2\n    max_answers: 2\n")
        + _dns("aaaa", s, f"www.{z}", "    query_type: AAAA\n")
        + _dns("cname", s, f"alias.{z}", "    query_type: CNAME\n    validate_answer_rrs:\n"
                                         f"      fail_if_none_matches_regexp: ['CNAME www\\.{z}\\.$']\n")
        + _dns("mx", s, z, "    query_type: MX\n    min_answers: 2\n")
        + _dns("txt", s, z, "    query_type: TXT\n    validate_answer_rrs:\n"
                            "      fail_if_none_matches_regexp: [spf1]\n")
        + _dns("srv", s, f"_http._tcp.{z}", "    query_type: SRV\n")
        + _dns("soa", s, z, "    query_type: soa\n    validate_authority_rrs:\n"
                            "      fail_if_none_matches_regexp: ['IN NS ns1']\n")
        + _dns("nxdomain-expected", s, f"nope.{z}", "    valid_rcodes: [NXDOMAIN]\n    validate_authority_rrs:\n"
                                                    "      fail_if_none_matches_regexp: ['IN SOA ns1']\n")
        + _dns("big-over-tcp", s, f"big.{z}", "    query_type: TXT\n    min_answers: 6\n")
        + _dns("tcp-only", s, f"www.{z}", "    transport: tcp\n"))
    for name, result in results.items():
        assert result.up, (name, result.detail)
    assert set(results["a"].phases) == {"query"}

    results = await check_once(
        _dns("nxdomain", s, f"nope.{z}") + _dns("nodata", s, f"www.{z}", "    query_type: MX\n")
        + _dns("too-many", s, f"www.{z}", "    max_answers: 1\n")
        + _dns("wrong-address", s, f"www.{z}", "    validate_answer_rrs:\n"
                                              "      fail_if_matches_regexp: ['192\\.0\\.2\\.11$']\n")
        + _dns("all-match", s, f"www.{z}", "    validate_answer_rrs:\n"
                                          "      fail_if_all_match_regexp: ['192\\.0\\.2\\.10$']\n")
        + _dns("refused", s, "www.elsewhere.example"))
    expected = {
        "nxdomain": (ErrorType.DNS, f"rcode NXDOMAIN for nope.{z} A, expected NOERROR"),
        "nodata": (ErrorType.ASSERTION, "0 answer records"),
        "too-many": (ErrorType.ASSERTION, "2 answer records for www.example.test A, expected at most 1"),
        "wrong-address": (ErrorType.ASSERTION, f"answer record 'www.{z}. 300 IN A 192.0.2.11' matches"),
        "all-match": (ErrorType.ASSERTION, "not every answer record matches"),
        "refused": (ErrorType.DNS, "rcode REFUSED"),
    }
    assert_failed(results, expected)


async def test_servers_that_never_answer_truncate_or_babble_each_get_a_named_error(dns_server: servers.Nsd) -> None:
    began = time.monotonic()
    results = await check_once(
        _dns("silent", f"127.0.0.1:{dns_server.silent_port}", "www.example.test", timeout="1s")
        + _dns("truncating", f"127.0.0.1:{dns_server.truncating_port}", "www.example.test")
        + _dns("garbage", f"127.0.0.1:{dns_server.garbage_port}", "www.example.test"))
    assert time.monotonic() - began < 1.9
    expected = {
        "silent": (ErrorType.TIMEOUT, "timeout"),
        "truncating": (ErrorType.CONNECTION_REFUSED, "refused"),
        "garbage": (ErrorType.PROTOCOL, "malformed DNS answer"),
    }
    assert_failed(results, expected)


async def test_the_query_span_says_the_transport_and_the_rcode(dns_server: servers.Nsd) -> None:
    s = dns_server.server
    text = ("targets:\n" + _dns("big", s, f"big.{servers.ZONE}", "    query_type: TXT\n    interval: 0.5s\n",
                                timeout="0.5s")
            + _dns("gone", s, f"gone.{servers.ZONE}", "    interval: 0.5s\n", timeout="0.5s"))
    async with running(text) as r:
        await r.wait_for(lambda: r.checks("big") >= 1 and r.checks("gone") >= 1, timeout=10, what="a check each")
        spans = r.spans.get_finished_spans()
    query = next(s for s in spans if s.name == "DNS TXT")
    assert query.attributes["dns.question.name"] == f"big.{servers.ZONE}"
    assert query.attributes["network.transport"] == "tcp"  # truncated over UDP, asked again over TCP
    assert [e.name for e in query.events] == ["truncated"]
    gone = next(s for s in spans if s.name == "DNS A")
    assert gone.attributes["dns.response.rcode"] == "NXDOMAIN" and gone.attributes["network.transport"] == "udp"
    root = next(s for s in spans if s.name == "health_check gone")
    assert root.attributes["error.type"] == "dns"
