"""DNSSEC validation of a DNS answer up to a trust anchor (RFC 4033, 4034, 4035), on dnspython.

Each RRset of the answer (of the authority's SOA, for an answer without records) must carry an
RRSIG that verifies with the DNSKEYs of the zone that signed it; those DNSKEYs must be signed
by a key that a DS at the parent vouches for, the DS signed by the parent's keys, and so up to a
zone whose keys a trust anchor names (a DS or DNSKEY given; the root's by default). Zone cuts
are found from the signers, so a name several labels under its zone needs no guess. Every query
of the walk goes to the target's server with DO and CD set: the server hands over what it has,
and the verdict is ours, with its reason. Validity windows are read on the probe's clock.

What is not validated: the denial of existence of a negative answer (NSEC, NSEC3): for one, the
SOA that comes with it is, which proves the zone signed, not the name absent.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import ErrorType, ProbeFailure

__all__ = ["ROOT_ANCHORS", "Anchors", "Validator", "parse_anchors"]

# IANA's root trust anchors: KSK-2017 and KSK-2024 (https://data.iana.org/root-anchors/).
ROOT_ANCHORS = (
    ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D",
    ". IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16",
)
# dnspython names DSA's types when its DNSSEC loads: said once, of no use to whoever reads the log
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"dns\.")
_MAX_DEPTH = 16  # zones walked up before the chain is said to be too long


@dataclass(frozen=True, slots=True)
class Anchors:
    """Trust anchors by zone: each a DS or DNSKEY record in zone file form."""

    lines: tuple[str, ...] = ROOT_ANCHORS

    def by_zone(self) -> dict[Any, list[Any]]:
        return _parsed(self.lines)


def parse_anchors(lines: list[str]) -> tuple[Anchors | None, str | None]:
    """The anchors of ``lines``, or why one of them is not a DS or DNSKEY record."""
    for line in lines:
        try:
            _parsed((line,))
        except ValueError as exc:
            return None, f"{line[:60]!r} {exc}"
    return Anchors(tuple(lines)), None


@functools.lru_cache(maxsize=64)
def _parsed(lines: tuple[str, ...]) -> dict[Any, list[Any]]:
    import dns.exception
    import dns.rdatatype
    import dns.rrset

    found: dict[Any, list[Any]] = {}
    for line in lines:
        try:
            rrset = dns.rrset.from_text(*_fields(line))
        except (dns.exception.DNSException, ValueError, IndexError) as exc:
            raise ValueError(f"is not a DS or DNSKEY record ({exc})") from None
        if rrset.rdtype not in (dns.rdatatype.DS, dns.rdatatype.DNSKEY):
            raise ValueError("is not a DS or DNSKEY record: a trust anchor is one of those")
        found.setdefault(rrset.name, []).extend(rrset)
    return found


def _fields(line: str) -> tuple[str, int, str, str, str]:
    """(name, ttl, class, type, rdata) of 'NAME [TTL] [IN] TYPE RDATA'."""
    parts = line.split()
    name, rest = parts[0], parts[1:]
    ttl = int(rest.pop(0)) if rest and rest[0].isdigit() else 3600
    if rest and rest[0].upper() == "IN":
        rest.pop(0)
    return name, ttl, "IN", rest[0], " ".join(rest[1:])


def _when(stamp: int) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Ask = Callable[[Any, int], Awaitable[Any]]  # (name, rdtype) -> the answer message


class Validator:
    """One check's validation: what it asked and learned, the earliest signature expiry seen."""

    def __init__(self, ask: Ask, anchors: Anchors, now: float) -> None:
        self._ask = ask
        self._anchors = anchors.by_zone()
        self._now = now
        self._keys: dict[Any, Any] = {}
        self.earliest: float | None = None  # the first RRSIG of the chain to expire (Unix time)

    async def answer(self, message: Any) -> None:
        """Validate ``message``'s answer RRsets (its SOA when it has none); raise a ProbeFailure
        of type ``dnssec`` that says why not."""
        import dns.rdatatype

        section = message.answer or [r for r in message.authority if r.rdtype == dns.rdatatype.SOA]
        if not section:
            raise ProbeFailure(ErrorType.DNSSEC, "the answer has no records and no SOA to validate")
        for rrset in section:
            if rrset.rdtype == dns.rdatatype.RRSIG:
                continue
            sigs = _sigs(message, message.answer if message.answer else message.authority, rrset)
            await self._verified(rrset, sigs)

    async def _verified(self, rrset: Any, sigs: Any) -> None:
        import dns.rdatatype

        what = f"{rrset.name.to_text(omit_final_dot=True) or '.'} {dns.rdatatype.to_text(rrset.rdtype)}"
        if sigs is None or not len(sigs):
            raise ProbeFailure(ErrorType.DNSSEC, await self._unsigned(rrset.name, what))
        self._window(sigs, what)  # the answer's own signatures first: what a reader asked about
        self._check(rrset, sigs, await self.keys(sigs[0].signer), what)

    async def _unsigned(self, name: Any, what: str) -> str:
        """Why an answer without signatures fails: its zone is under a delegation with no DS
        (insecure), or it is signed and the signatures did not come (bogus)."""
        import dns.rdatatype

        for _ in range(_MAX_DEPTH):
            shown = name.to_text(omit_final_dot=True) or "."
            if name in self._anchors or name.labels == (b"",):
                break
            message = await self._ask(name, dns.rdatatype.DS)
            if _rrset(message.answer, name, dns.rdatatype.DS) is not None:
                return f"no RRSIG over {what}, though its zone {shown} is signed (the server drops signatures?)"
            soa = next((r for r in message.authority if r.rdtype == dns.rdatatype.SOA), None)
            if soa is not None and soa.name != name and name.is_subdomain(soa.name) and \
                    _sigs(message, message.authority, soa) is not None:
                apex = await self._ask(name, dns.rdatatype.SOA)
                if _rrset(apex.answer, name, dns.rdatatype.SOA) is not None:
                    return (f"{shown} has no DS at its parent: the delegation is not signed, so nothing under it "
                            "can be validated (insecure)")
            name = name.parent()
        return f"no RRSIG over {what}: the zone is not signed, or the server drops signatures"

    def _window(self, sigs: Any, what: str) -> None:
        now = self._now
        if all(sig.expiration < now for sig in sigs):
            latest = max(sig.expiration for sig in sigs)
            raise ProbeFailure(ErrorType.DNSSEC, f"the RRSIG over {what} expired at {_when(latest)}")
        if all(sig.inception > now for sig in sigs):
            raise ProbeFailure(ErrorType.DNSSEC, f"the RRSIG over {what} is not valid before "
                                                 f"{_when(min(sig.inception for sig in sigs))}")

    def _check(self, rrset: Any, sigs: Any, keys: Any, what: str) -> None:
        import dns.dnssec
        import dns.exception

        now = self._now
        self._window(sigs, what)
        try:
            dns.dnssec.validate(rrset, sigs, {keys.name: keys}, now=now)
        except dns.exception.ValidationFailure:
            signer = sigs[0].signer.to_text(omit_final_dot=True) or "."
            raise ProbeFailure(ErrorType.DNSSEC, f"the RRSIG over {what} does not verify with the DNSKEYs of "
                                                 f"{signer} (the records changed after signing, or the key "
                                                 "is not the one that signed)") from None
        valid = [sig.expiration for sig in sigs if sig.inception <= now <= sig.expiration]
        if valid:
            self.earliest = min(max(valid), self.earliest) if self.earliest is not None else max(valid)

    async def keys(self, zone: Any, depth: int = 0) -> Any:
        """``zone``'s DNSKEY RRset, validated up to a trust anchor."""
        import dns.rdatatype
        import dns.rrset

        if zone in self._keys:
            return self._keys[zone]
        shown = zone.to_text(omit_final_dot=True) or "."
        if depth > _MAX_DEPTH:
            raise ProbeFailure(ErrorType.DNSSEC, f"the chain of trust to {shown} is over {_MAX_DEPTH} zones long")
        message = await self._ask(zone, dns.rdatatype.DNSKEY)
        dnskeys = _rrset(message.answer, zone, dns.rdatatype.DNSKEY)
        if dnskeys is None:
            raise ProbeFailure(ErrorType.DNSSEC, f"{shown} has no DNSKEY: it signs nothing that can be validated")
        sigs = _sigs(message, message.answer, dnskeys)
        anchors = self._anchors.get(zone)
        if anchors is not None:
            trusted = [key for key in dnskeys if any(_vouches(zone, anchor, key) for anchor in anchors)]
            if not trusted:
                raise ProbeFailure(ErrorType.DNSSEC, f"no DNSKEY of {shown} matches its trust anchor (a key rollover "
                                                     "the anchor missed?)")
        else:
            if zone.labels == (b"",):
                raise ProbeFailure(ErrorType.DNSSEC, "no trust anchor above the answer: give trust_anchor")
            ds_message = await self._ask(zone, dns.rdatatype.DS)
            ds = _rrset(ds_message.answer, zone, dns.rdatatype.DS)
            if ds is None:
                raise ProbeFailure(ErrorType.DNSSEC, f"{shown} has no DS at its parent: the delegation is not "
                                                     "signed, so nothing under it can be validated (insecure)")
            ds_sigs = _sigs(ds_message, ds_message.answer, ds)
            if ds_sigs is None or not len(ds_sigs):
                raise ProbeFailure(ErrorType.DNSSEC, f"no RRSIG over the DS of {shown}")
            parent = ds_sigs[0].signer
            if parent == zone or not zone.is_subdomain(parent):
                raise ProbeFailure(ErrorType.DNSSEC, f"the DS of {shown} is signed by {parent}, not by a parent")
            self._check(ds, ds_sigs, await self.keys(parent, depth + 1), f"{shown} DS")
            trusted = [key for key in dnskeys if any(_vouches(zone, d, key) for d in ds)]
            if not trusted:
                raise ProbeFailure(ErrorType.DNSSEC, f"no DNSKEY of {shown} matches its DS at "
                                                     f"{parent.to_text(omit_final_dot=True) or '.'}")
        if sigs is None or not len(sigs):
            raise ProbeFailure(ErrorType.DNSSEC, f"no RRSIG over the DNSKEYs of {shown}")
        vouched = dns.rrset.from_rdata_list(zone, dnskeys.ttl, trusted)
        self._check(dnskeys, sigs, vouched, f"{shown} DNSKEY")
        self._keys[zone] = dnskeys
        return dnskeys


def _vouches(zone: Any, anchor: Any, key: Any) -> bool:
    """Whether a DS (or DNSKEY) names ``key``."""
    import dns.dnssec
    import dns.exception
    import dns.rdatatype

    if anchor.rdtype == dns.rdatatype.DNSKEY:
        return bool(anchor == key)
    try:
        return bool(dns.dnssec.make_ds(zone, key, anchor.digest_type) == anchor)
    except (dns.exception.UnsupportedAlgorithm, ValueError):
        return False


def _rrset(section: list[Any], name: Any, rdtype: int) -> Any:
    return next((r for r in section if r.name == name and r.rdtype == rdtype), None)


def _sigs(message: Any, section: list[Any], rrset: Any) -> Any:
    import dns.rdatatype

    return next((r for r in section if r.name == rrset.name and r.rdtype == dns.rdatatype.RRSIG
                 and r.covers == rrset.rdtype), None)
