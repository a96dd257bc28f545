"""Trust anchors as zone file lines (pure logic: validation against signed zones is
tests/integration/test_dnssec.py, held to unbound's verdicts)."""

from __future__ import annotations

import dns.name

from otel_health.probes._dnssec import ROOT_ANCHORS, Anchors, parse_anchors


def test_the_root_anchors_are_ianas_two_ksks() -> None:
    anchors = Anchors().by_zone()
    assert list(anchors) == [dns.name.root]
    assert sorted(ds.key_tag for ds in anchors[dns.name.root]) == [20326, 38696]
    assert Anchors().lines == ROOT_ANCHORS


def test_an_anchor_is_a_ds_or_a_dnskey_with_or_without_ttl_and_class() -> None:
    parsed, problem = parse_anchors(["example.test. IN DS 8498 13 2 1a736abe0513f29eac5e16bd8f572c4e7b3c6e9b23d53f9d"
                                     "1302990be964dca7",
                                     "example.test. 3600 DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJ"
                                     "xpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ=="])
    assert problem is None and parsed is not None
    assert [r.rdtype.name for r in parsed.by_zone()[dns.name.from_text("example.test.")]] == ["DS", "DNSKEY"]
    assert parse_anchors(["example.test. IN A 192.0.2.1"])[1] == ("'example.test. IN A 192.0.2.1' is not a DS or "
                                                                  "DNSKEY record: a trust anchor is one of those")
    _, broken = parse_anchors(["example.test. IN DS nonsense"])
    assert broken is not None and broken.startswith("'example.test. IN DS nonsense' is not a DS or DNSKEY record")
