"""The DNS kind's record checks, read as blackbox_exporter reads them. (Queries are proven
against NSD in tests/integration.)"""

from __future__ import annotations

from otel_health.probes import dns as dns_probe
from otel_health.probes._match import Pattern


def test_dns_record_checks_read_as_blackbox_reads_them() -> None:
    records = ["www.example.test. 300 IN A 192.0.2.10", "www.example.test. 300 IN A 192.0.2.11"]

    def checks(**kw: list[str]) -> dns_probe.RecordChecks:
        return dns_probe.RecordChecks(**{k: tuple(Pattern(p) for p in v) for k, v in kw.items()})

    assert checks(fail_if_matches_regexp=[r"\.11$"]).problem("answer", records) == (
        "answer record 'www.example.test. 300 IN A 192.0.2.11' matches /\\.11$/")
    assert checks(fail_if_not_matches_regexp=[r"\.10$"]).problem("answer", records) is not None
    # fail_if_all_match_regexp as blackbox_exporter's validRRs reads it (TestAuthoritativeDNSResponse):
    # fail unless every record matches, whatever the name says; an empty section passes.
    assert checks(fail_if_all_match_regexp=["192"]).problem("answer", records) is None
    assert checks(fail_if_all_match_regexp=[r"\.10$"]).problem("answer", records) == (
        "not every answer record matches /\\.10$/: 'www.example.test. 300 IN A 192.0.2.11' does not")
    assert checks(fail_if_all_match_regexp=["192"]).problem("answer", []) is None
    # fail_if_not_matches_regexp on an empty section: a match is required, there is none (TestRecursiveDNSResponse)
    assert checks(fail_if_not_matches_regexp=["NS"]).problem("authority", []) == "no authority record to match /NS/"
    assert checks(fail_if_none_matches_regexp=["AAAA"]).problem("answer", records) == (
        "no answer record matches /AAAA/")
    assert checks(fail_if_none_matches_regexp=["AAAA"]).problem("answer", []) is not None
    assert checks(fail_if_not_matches_regexp=[r"IN A "]).problem("answer", records) is None
