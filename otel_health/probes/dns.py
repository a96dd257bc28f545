"""DNS probe: one query to a given server, its answer judged as blackbox_exporter's dns module
judges it (rcode, regular expressions on each section's records) and by counts.

The query goes over UDP and again over TCP when the answer comes back truncated
(``dns.asyncquery.udp_with_fallback``; ``transport: tcp`` asks over TCP only). The resolver
class of dnspython is not used: it hides the rcode and the authority section, and retries on
its own. dnspython checks that the answer is one to our question (id, question, source).
Each record is matched in its text form, one per line as ``dig`` shows it:
``www.example.test. 300 IN A 192.0.2.10``.

dnspython (5 MB) is imported when the first DNS check runs.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..config import Fields, Secret, Target, split_host_port
from ..config.values import is_ip_address
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, Probe, host_port
from ._dnssec import Anchors, Validator, parse_anchors
from ._match import Pattern, PatternError

__all__ = ["DnsOptions", "DnsProbe", "RecordChecks"]

ROOT = Anchors()  # IANA's root trust anchors

QUERY_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "SRV", "SOA", "NS", "PTR", "CAA", "ANY")
QUERY_CLASSES = ("IN", "CH", "HS")
RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET",
          "NOTAUTH", "NOTZONE")
_NAME_RE = re.compile(r"^(?=.{1,253}\.?$)([A-Za-z0-9_*]([A-Za-z0-9_\-]{0,61}[A-Za-z0-9_])?\.)*"
                      r"[A-Za-z0-9_]([A-Za-z0-9_\-]{0,61}[A-Za-z0-9_])?\.?$|^\.$")
_SECTIONS = ("answer", "authority", "additional")
_SHOWN = 160  # characters of a record in a failure's detail


@dataclass(frozen=True, slots=True)
class RecordChecks:
    """blackbox_exporter's ``validate_*_rrs`` for one section: regular expressions on records."""

    fail_if_matches_regexp: tuple[Pattern, ...] = ()
    fail_if_not_matches_regexp: tuple[Pattern, ...] = ()
    fail_if_all_match_regexp: tuple[Pattern, ...] = ()
    fail_if_none_matches_regexp: tuple[Pattern, ...] = ()

    def problem(self, section: str, records: list[str]) -> str | None:
        """Why ``records`` fail these checks, or None."""
        for pattern in self.fail_if_matches_regexp:
            hit = next((r for r in records if pattern.found(r)), None)
            if hit is not None:
                return f"{section} record {_shown(hit)!r} matches /{pattern.pattern}/"
        for pattern in self.fail_if_not_matches_regexp:
            if not records:  # as blackbox_exporter: a match is required, and there is nothing to match
                return f"no {section} record to match /{pattern.pattern}/"
            miss = next((r for r in records if not pattern.found(r)), None)
            if miss is not None:
                return f"{section} record {_shown(miss)!r} does not match /{pattern.pattern}/"
        for pattern in self.fail_if_all_match_regexp:
            # blackbox_exporter's meaning, whatever the name says: fail unless every record matches
            # (an empty section passes), so a module moved from it keeps its verdicts.
            miss = next((r for r in records if not pattern.found(r)), None)
            if miss is not None:
                return f"not every {section} record matches /{pattern.pattern}/: {_shown(miss)!r} does not"
        for pattern in self.fail_if_none_matches_regexp:
            if not any(pattern.found(r) for r in records):
                return f"no {section} record matches /{pattern.pattern}/"
        return None

    def public(self) -> dict[str, list[str]]:
        return {name: [p.pattern for p in getattr(self, name)] for name in self.__slots__ if getattr(self, name)}


@dataclass(frozen=True, slots=True)
class DnsOptions:
    server: str
    port: int
    query_name: str
    query_type: str = "A"
    query_class: str = "IN"
    transport: str = "udp"  # udp (with TCP when truncated) or tcp
    recursion_desired: bool = True
    valid_rcodes: tuple[str, ...] = ("NOERROR",)
    min_answers: int = 1
    max_answers: int | None = None
    checks: tuple[tuple[str, RecordChecks], ...] = ()  # (section, checks)
    dnssec: str = "off"  # off, or validate: the answer's signatures up to the trust anchors
    trust_anchors: Anchors = ROOT

    @classmethod
    def parse(cls, f: Fields) -> DnsOptions | None:
        server, port = _server(f)
        name = f.text("query_name", required=True, pattern=_NAME_RE, hint="a domain name such as www.example.com")
        query_type = (f.text("query_type", "A") or "A").upper()
        if query_type not in QUERY_TYPES:
            f.problem("query_type", f"must be one of {', '.join(QUERY_TYPES)}, got {query_type[:20]!r}")
            query_type = "A"
        rcodes: list[str] = []
        for item in f.sequence("valid_rcodes") or ["NOERROR"]:
            code = str(item).upper()
            if code not in RCODES:
                f.problem("valid_rcodes", f"{str(item)[:20]!r} is not an rcode; use {', '.join(RCODES[:6])}, …")
            else:
                rcodes.append(code)
        min_answers = f.whole("min_answers", 1 if "NOERROR" in rcodes and len(rcodes) == 1 else 0,
                              minimum=0, maximum=10_000)
        max_answers = f.whole("max_answers", -1, minimum=0, maximum=10_000) if f.has("max_answers") else None
        if max_answers is not None and max_answers >= 0 and max_answers < min_answers:
            f.problem("max_answers", f"is below min_answers ({min_answers}); raise it or lower min_answers")
        checks = []
        for section in _SECTIONS:
            sub = f.sub(f"validate_{section}_rrs")
            if sub is not None:
                checks.append((section, _record_checks(sub)))
                sub.finish()
        options = cls(
            server=server or "", port=port, query_name=name or "", query_type=query_type,
            query_class=f.text("query_class", "IN", choices=QUERY_CLASSES) or "IN",
            transport=f.text("transport", "udp", choices=("udp", "tcp")) or "udp",
            recursion_desired=f.flag("recursion_desired", True),
            valid_rcodes=tuple(rcodes) or ("NOERROR",), min_answers=min_answers,
            max_answers=max_answers if max_answers is not None and max_answers >= 0 else None,
            checks=tuple(checks),
            dnssec=f.text("dnssec", "off", choices=("off", "validate")) or "off",
        )
        anchors = [str(line) for line in f.sequence("trust_anchor")]
        if anchors:
            parsed, problem = parse_anchors(anchors)
            if problem is not None:
                f.problem("trust_anchor", f"{problem}; write a DS or DNSKEY record as a zone file line: "
                                          "'example.com. IN DS 12345 13 2 ABCD...'")
            elif options.dnssec != "validate":
                f.problem("trust_anchor", "is read to validate answers; add dnssec: validate")
            elif parsed is not None:
                options = dataclasses.replace(options, trust_anchors=parsed)
        return options if server and name else None

    def secrets(self) -> Iterator[Secret]:
        return iter(())

    def domain_name(self) -> str:
        """The name whose registration ``domain_expiry`` watches."""
        return self.query_name

    def where(self) -> str:
        asked = self.query_type if self.query_class == "IN" else f"{self.query_class} {self.query_type}"
        return f"{self.query_name} {asked} at {host_port(self.server, self.port)}"

    def public(self) -> dict[str, Any]:
        return {"server": self.server, "port": self.port, "query_name": self.query_name, "dnssec": self.dnssec,
                "query_type": self.query_type, "query_class": self.query_class, "transport": self.transport,
                "recursion_desired": self.recursion_desired, "valid_rcodes": list(self.valid_rcodes),
                "min_answers": self.min_answers, "max_answers": self.max_answers,
                **{f"validate_{section}_rrs": checks.public() for section, checks in self.checks}}


def _server(f: Fields) -> tuple[str | None, int]:
    text = f.text("server", required=True)
    if text is None:
        return None, 53
    try:
        host, port = (text, 53) if is_ip_address(text) else split_host_port(text)
        ipaddress.ip_address(host)
    except ValueError:
        f.problem("server", f"{text[:60]!r} is not an IP address with an optional port (192.0.2.53, "
                            "192.0.2.53:5353, [2001:db8::53]:53): a DNS server is reached by its address")
        return None, 53
    if port == 0:
        f.problem("server", f"the port in {text[:60]!r} must be from 1 to 65535")
        return None, 53
    return host, port


def _record_checks(f: Fields) -> RecordChecks:
    found: dict[str, tuple[Pattern, ...]] = {}
    for name in RecordChecks.__slots__:
        patterns = []
        for item in f.sequence(name):
            try:
                patterns.append(Pattern(str(item)))
            except PatternError as exc:
                f.problem(name, f"{str(item)[:60]!r} {exc}")
        found[name] = tuple(patterns)
    return RecordChecks(**found)


def _shown(record: str) -> str:
    return record if len(record) <= _SHOWN else record[:_SHOWN] + "…"


@functools.cache
def dns_modules() -> tuple[ModuleType, ...]:
    """dnspython's modules the probe uses, imported on first use."""
    import dns.asyncquery
    import dns.exception
    import dns.flags
    import dns.message
    import dns.rcode
    import dns.rdatatype
    return dns.asyncquery, dns.exception, dns.flags, dns.message, dns.rcode, dns.rdatatype


class DnsProbe(Probe):
    kind = "dns"
    component_type = "dns"
    check_name = "resolution"
    options_type = DnsOptions
    schemes = ("dns",)

    @classmethod
    def options_from_url(cls, url: str) -> DnsOptions:
        """``dns://SERVER[:PORT]/NAME?type=A`` (``&transport=tcp``)."""
        parts = urlsplit(url)
        name = unquote(parts.path.strip("/"))
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            port = parts.port or 53
        except ValueError:
            port = 0
        if not parts.hostname or not name or not port:
            raise ValueError("a DNS URL names the server and the name: dns://SERVER[:PORT]/NAME?type=A")
        try:
            ipaddress.ip_address(parts.hostname)
        except ValueError:
            raise ValueError("the server in a DNS URL is an IP address: dns://192.0.2.53/www.example.com") from None
        query_type = query.get("type", "A").upper()
        if query_type not in QUERY_TYPES:
            raise ValueError(f"type must be one of {', '.join(QUERY_TYPES)}")
        transport = query.get("transport", "udp")
        if transport not in ("udp", "tcp"):
            raise ValueError("transport must be udp or tcp")
        return DnsOptions(server=parts.hostname, port=port, query_name=name, query_type=query_type,
                          transport=transport)

    def _load(self) -> None:
        dns_modules()

    async def _check(self, target: Target, attempt: Attempt) -> None:
        o: DnsOptions = target.options
        _, _, _, _, rcode, rdatatype = dns_modules()
        query = self._query(o, o.query_name, rdatatype.from_text(o.query_type))
        attributes: dict[str, str | int] = {"server.address": o.server, "server.port": o.port,
                                            "dns.question.name": o.query_name, "dns.question.type": o.query_type,
                                            "dns.question.class": o.query_class}
        with self.step(attempt, "query", f"DNS {o.query_type}", attributes) as span:
            answer, used_tcp = await self._ask(o, query)
            span.set_attribute("network.transport", "tcp" if used_tcp else "udp")
            if used_tcp and o.transport == "udp":
                span.add_event("truncated", {"dns.retried_over": "tcp"})
            code = rcode.to_text(answer.rcode())
            span.set_attribute("dns.response.rcode", code)
        if code not in o.valid_rcodes:
            raise ProbeFailure(ErrorType.DNS, f"rcode {code} for {o.query_name} {o.query_type}, "
                                              f"expected {', '.join(o.valid_rcodes)}")
        if o.dnssec == "validate":
            with self.step(attempt, "dnssec", "DNSSEC validation", attributes):
                async def ask(name: Any, rdtype: Any) -> Any:
                    return (await self._ask(o, self._query(o, name, rdtype)))[0]

                validator = Validator(ask, o.trust_anchors, self.settings.clock())
                try:
                    await validator.answer(answer)
                finally:
                    attempt.dnssec_expiry = validator.earliest
        records = {"answer": _lines(answer.answer), "authority": _lines(answer.authority),
                   "additional": _lines(answer.additional)}
        count = len(records["answer"])
        if count < o.min_answers:
            raise ProbeFailure(ErrorType.ASSERTION, f"{count} answer records for {o.query_name} {o.query_type}, "
                                                    f"expected at least {o.min_answers}")
        if o.max_answers is not None and count > o.max_answers:
            raise ProbeFailure(ErrorType.ASSERTION, f"{count} answer records for {o.query_name} {o.query_type}, "
                                                    f"expected at most {o.max_answers}")
        for section, checks in o.checks:
            problem = checks.problem(section, records[section])
            if problem is not None:
                raise ProbeFailure(ErrorType.ASSERTION, problem)

    @staticmethod
    def _query(o: DnsOptions, name: Any, rdtype: Any) -> Any:
        """A query as the target asks (with DO and CD set to validate: the server hands over its
        signatures, and what it thinks of them is not asked)."""
        _, _, flags, message, _, _ = dns_modules()
        query = message.make_query(name, rdtype, o.query_class)
        if not o.recursion_desired:
            query.flags &= ~flags.RD
        if o.dnssec == "validate":
            query.use_edns(0, flags.DO, 1232)
            query.flags |= flags.CD
        return query

    @staticmethod
    async def _ask(o: DnsOptions, query: Any) -> tuple[Any, bool]:
        """The answer, and whether it came over TCP."""
        asyncquery = dns_modules()[0]
        if o.transport == "tcp":
            return await asyncquery.tcp(query, o.server, port=o.port), True
        answer, used_tcp = await asyncquery.udp_with_fallback(query, o.server, port=o.port)
        return answer, bool(used_tcp)

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        _, exception, _, message, _, _ = dns_modules()
        if isinstance(exc, message.Truncated):
            return ErrorType.PROTOCOL, "the answer was truncated"
        if isinstance(exc, exception.Timeout):
            return ErrorType.TIMEOUT, "no answer within the timeout"
        if isinstance(exc, (exception.FormError, exception.TooBig, message.BadEDNS, message.UnknownHeaderField)):
            return ErrorType.PROTOCOL, f"malformed DNS answer ({_said(exc)})"
        if isinstance(exc, exception.DNSException):
            return ErrorType.PROTOCOL, f"not an answer to the query ({_said(exc)})"
        if isinstance(exc, EOFError):
            return ErrorType.CONNECTION_RESET, "the server closed the TCP connection before answering"
        return super()._classify(exc)


def _lines(rrsets: list[Any]) -> list[str]:
    out: list[str] = []
    for rrset in rrsets:
        out.extend(rrset.to_text().splitlines())
    return out


def _said(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:120]
