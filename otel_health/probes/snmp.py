"""SNMP probe: one GET of an object (sysUpTime by default) from an agent, SNMPv2c with a community
or SNMPv3 with a user (authentication and privacy), on pysnmp; the value matched when asked.

SNMP has no refusal an unauthenticated manager can hear: an agent given a wrong community (or,
in SNMPv3, asked as a user it does not know) mostly stays silent, so a wrong credential and an
agent that is down look alike, and both are ``timeout``, said so. SNMPv3's own reports
(unknown user, wrong digest, a security level the user does not have) are ``auth``."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import ANSWER_SHARE, Attempt, Probe, answer_by, host_port, server_words
from ._match import Pattern, pattern_field

__all__ = ["SnmpOptions", "SnmpProbe"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]_]{1,253}$")
_OID_RE = re.compile(r"^\.?[0-2](\.\d{1,10}){1,127}$")
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
MAX_ENGINES = 64  # SNMPv3 logins kept an engine at once
_AUTH = ("sha", "sha224", "sha256", "sha384", "sha512", "md5")
_PRIVACY = ("aes", "aes192", "aes256", "des")


@dataclass(frozen=True, slots=True)
class SnmpOptions:
    host: str
    port: int = 161
    version: str = "2c"
    community: Secret | None = None
    username: str | None = None
    auth_protocol: str = "sha256"
    auth_password: Secret | None = None
    privacy_protocol: str = "aes"
    privacy_password: Secret | None = None
    oid: str = SYS_UPTIME
    expect: Pattern | None = None

    @classmethod
    def parse(cls, f: Fields) -> SnmpOptions | None:
        host = f.text("host", required=True, pattern=_HOST_RE, hint="use a host name or an IP address")
        version = f.text("version", "2c", choices=("2c", "3")) or "2c"
        oid = f.text("oid", SYS_UPTIME) or SYS_UPTIME
        if not _OID_RE.fullmatch(oid):
            f.problem("oid", f"{oid[:60]!r} is not a numeric OID; write it in numbers, such as 1.3.6.1.2.1.1.3.0 "
                             "(sysUpTime.0)")
        expect = pattern_field(f, "expect")
        options = cls(
            host=host or "", port=f.whole("port", 161, minimum=1, maximum=65535), version=version,
            community=f.secret("community"), username=f.text("username"),
            auth_protocol=f.text("auth_protocol", "sha256", choices=_AUTH) or "sha256",
            auth_password=f.secret("auth_password"),
            privacy_protocol=f.text("privacy_protocol", "aes", choices=_PRIVACY) or "aes",
            privacy_password=f.secret("privacy_password"), oid=oid.lstrip("."), expect=expect)
        if version == "2c" and not (f.has("community") or options.community is not None):
            f.problem("community", "is required for SNMPv2c: 'community: ${SNMP_COMMUNITY}' (it is a credential); "
                                   "or version: \"3\" with a username")
        if version == "3":
            if options.username is None:
                f.problem("username", "is required for SNMPv3: the USM user the agent knows")
            if (f.has("privacy_password") or options.privacy_password is not None) and \
                    not (f.has("auth_password") or options.auth_password is not None):
                f.problem("privacy_password", "needs auth_password too: SNMPv3 has no privacy without authentication")
        elif f.has("username"):
            f.problem("username", "is SNMPv3's; set version: \"3\" (SNMPv2c has a community instead)")
        return options if host else None

    def secrets(self) -> Iterator[Secret]:
        for secret in (self.community, self.auth_password, self.privacy_password):
            if secret is not None:
                yield secret

    def where(self) -> str:
        return f"snmp {host_port(self.host, self.port)} {self.oid}"

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "version": self.version,
                "community": self.community.source if self.community else None, "username": self.username,
                "auth_protocol": self.auth_protocol if self.auth_password else None,
                "privacy_protocol": self.privacy_protocol if self.privacy_password else None, "oid": self.oid,
                "expect": self.expect.pattern if self.expect else None}


class SnmpProbe(Probe):
    kind = "snmp"
    component_type = "system"
    check_name = "snmp"
    options_type = SnmpOptions

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        # pysnmp's engines, by login: SNMPv2c targets share one (communities are kept apart by
        # name); each SNMPv3 login (user and keys) has one of its own, since an engine keeps one
        # set of keys a user name. Made on a thread (0.1 s, 0.9 MB each), the least used let go.
        self._engines: collections.OrderedDict[str, asyncio.Future[Any]] = collections.OrderedDict()
        self._shared: Any = None

    def _load(self) -> None:
        from pysnmp.hlapi.v3arch import asyncio as snmp

        self._shared = snmp.SnmpEngine()  # SNMPv2c's, made here: off the loop, before the first check

    async def close(self) -> None:
        """Each engine's transport closed (a socket each)."""
        engines = [self._shared] if self._shared is not None else []
        engines += [made.result() for made in self._engines.values() if made.done() and not made.exception()]
        self._engines.clear()
        for engine in engines:
            with contextlib.suppress(Exception):
                engine.close_dispatcher()
        await asyncio.sleep(0)  # the transports' own close runs on the loop's next turn

    async def _engine(self, o: SnmpOptions) -> Any:
        from pysnmp.hlapi.v3arch import asyncio as snmp

        if o.version == "2c":
            return self._shared
        key = _login(o)
        made = self._engines.get(key)
        if made is None:  # one making a login's engine: the checks of that login wait for it
            made = self._engines[key] = asyncio.ensure_future(asyncio.to_thread(snmp.SnmpEngine))
            while len(self._engines) > MAX_ENGINES:
                _, old = self._engines.popitem(last=False)
                if old.done() and not old.exception():
                    old.result().close_dispatcher()
        self._engines.move_to_end(key)
        return await asyncio.shield(made)

    async def _check(self, target: Target, attempt: Attempt) -> None:
        from pysnmp.hlapi.v3arch import asyncio as snmp

        o: SnmpOptions = target.options
        deadline = answer_by(target.timeout)  # no answer by then is named, with what silence can mean
        attributes: dict[str, str | int] = {"server.address": o.host, "server.port": o.port,
                                            "network.transport": "udp"}
        with self.step(attempt, "get", f"GET {o.oid}", attributes):
            transport = await snmp.UdpTransportTarget.create((o.host, o.port), timeout=target.timeout, retries=0)
            try:
                async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
                    indication, status, index, binds = await snmp.get_cmd(
                        await self._engine(o), _credentials(o, snmp), transport, snmp.ContextData(),
                        snmp.ObjectType(snmp.ObjectIdentity(o.oid)), lookupMib=False)
            except TimeoutError:
                raise _silence(o) from None
        if indication:
            raise _indicated(o, indication)
        if status:
            raise ProbeFailure(ErrorType.ASSERTION, f"the agent answered {status.prettyPrint()} (at {index})")
        value = binds[0][1] if binds else None
        if value is None or value.__class__.__name__ in ("NoSuchObject", "NoSuchInstance", "EndOfMibView"):
            raise ProbeFailure(ErrorType.ASSERTION, f"the agent has no {o.oid} "
                                                    f"({value.__class__.__name__ if value is not None else 'nothing'})")
        text = value.prettyPrint()
        if o.expect is not None and not o.expect.found(text):
            raise ProbeFailure(ErrorType.ASSERTION, f"the value {server_words(text)[:80]!r} did not match "
                                                    f"{o.expect.pattern!r}")


def _login(o: SnmpOptions) -> str:
    """An SNMPv3 login's digest: its user name, protocols and keys."""
    keys = "\0".join((o.username or "", o.auth_protocol, o.auth_password.reveal() if o.auth_password else "",
                       o.privacy_protocol, o.privacy_password.reveal() if o.privacy_password else ""))
    return hashlib.sha256(keys.encode()).hexdigest()


def _credentials(o: SnmpOptions, snmp: Any) -> Any:
    if o.version == "2c":
        return snmp.CommunityData(o.community.reveal() if o.community else "", mpModel=1)
    auth = {"sha": snmp.usmHMACSHAAuthProtocol, "sha224": snmp.usmHMAC128SHA224AuthProtocol,
            "sha256": snmp.usmHMAC192SHA256AuthProtocol, "sha384": snmp.usmHMAC256SHA384AuthProtocol,
            "sha512": snmp.usmHMAC384SHA512AuthProtocol, "md5": snmp.usmHMACMD5AuthProtocol}[o.auth_protocol]
    privacy = {"aes": snmp.usmAesCfb128Protocol, "aes192": snmp.usmAesCfb192Protocol,
               "aes256": snmp.usmAesCfb256Protocol, "des": snmp.usmDESPrivProtocol}[o.privacy_protocol]
    return snmp.UsmUserData(
        o.username or "",
        authKey=o.auth_password.reveal() if o.auth_password else None,
        privKey=o.privacy_password.reveal() if o.privacy_password else None,
        authProtocol=auth if o.auth_password else snmp.usmNoAuthProtocol,
        privProtocol=privacy if o.privacy_password else snmp.usmNoPrivProtocol)


def _silence(o: SnmpOptions) -> ProbeFailure:
    why = "an agent given a wrong community stays silent too" if o.version == "2c" else \
        "an agent may stay silent to a user it does not know too"
    return ProbeFailure(ErrorType.TIMEOUT, f"no answer within {ANSWER_SHARE:.0%} of the timeout ({why})")


def _indicated(o: SnmpOptions, indication: Any) -> ProbeFailure:
    name = indication.__class__.__name__
    said = server_words(str(indication))
    if name == "RequestTimedOut":
        return _silence(o)
    if name in ("UnknownUserName", "WrongDigest", "AuthenticationError", "UnsupportedSecLevel",
                "UnknownSecurityName", "DecryptionError", "NotInTimeWindow"):
        return ProbeFailure(ErrorType.AUTH, f"the agent refused the user: {said}")
    return ProbeFailure(ErrorType.PROTOCOL, f"the SNMP exchange failed: {said}")
