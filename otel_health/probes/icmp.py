"""ICMP probe: ``packets`` echo requests, ``packet_interval`` apart, on icmplib's sockets and packets.

A check is up when at most ``max_loss`` of its requests went unanswered and, with ``max_rtt``,
the answered ones came back within it on average. The round trips are measured here, on the
monotonic clock, from the send to the loop's reading of the reply: minimum, average and
maximum are the check's ``rtt_min``, ``rtt_avg`` and ``rtt_max`` phases; the share lost is
``tta_service_packet_loss_ratio``. A request is lost when its reply has not come by nine tenths
of the check's timeout, so a lossy host is a verdict with its loss, not a timeout.

Two ways to send ICMP without running as root, chosen once per process and address family:
a datagram ICMP socket (Linux, where ``net.ipv4.ping_group_range`` holds the process's group),
which the kernel gives only the replies to its own requests, or a raw socket (``CAP_NET_RAW``),
which sees every ICMP packet the host receives and keeps those with its identifier. Neither
allowed is a configuration error that says how to grant one.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import re
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..config import Fields, Secret, Target
from ..config.values import format_seconds, is_ip_address
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, Probe, Rule, answer_by, classify, classify_os_error, os_cause
from ._resolver import Names, ascii_host

__all__ = ["IcmpOptions", "IcmpProbe", "access"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:_]{1,253}$")
_FAMILIES = {"auto": socket.AF_UNSPEC, "ip4": socket.AF_INET, "ip6": socket.AF_INET6}
_GRANT = ("allow datagram ICMP sockets to the process's group (sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"; "
          "in Kubernetes, the pod's securityContext.sysctls) or grant it CAP_NET_RAW "
          "(setcap cap_net_raw+ep on the Python binary, or the container's capabilities)")


@functools.cache
def access(family: int) -> str | None:
    """How this process may send ICMP echo requests for ``family``: ``"datagram"``, ``"raw"``,
    or None when neither socket may be opened."""
    protocol = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    for kind, type_ in (("datagram", socket.SOCK_DGRAM), ("raw", socket.SOCK_RAW)):
        try:
            socket.socket(family, type_, protocol).close()
        except OSError:
            continue
        return kind
    return None


@dataclass(frozen=True, slots=True)
class IcmpOptions:
    host: str
    packets: int = 3
    packet_interval: float = 0.2
    payload_size: int = 56
    dont_fragment: bool = False
    ttl: int = 64
    ip_protocol: str = "auto"
    source_ip: str | None = None
    max_loss: float = 0.5
    max_rtt: float | None = None

    @classmethod
    def parse(cls, f: Fields) -> IcmpOptions | None:
        host = f.text("host", required=True, pattern=_HOST_RE, hint="use a host name or an IP address")
        options = cls(
            host=host or "",
            packets=f.whole("packets", 3, minimum=1, maximum=100),
            packet_interval=f.duration("packet_interval", 0.2, minimum=0.01, maximum=60.0),
            payload_size=f.whole("payload_size", 56, minimum=0, maximum=65_000),
            dont_fragment=f.flag("dont_fragment", False),
            ttl=f.whole("ttl", 64, minimum=1, maximum=255),
            ip_protocol=f.text("ip_protocol", "auto", choices=tuple(_FAMILIES)),
            source_ip=f.text("source_ip"),
            max_loss=f.ratio("max_loss", 0.5),
            max_rtt=f.duration("max_rtt", 0.0, minimum=0.0001, maximum=60.0) or None,
        )
        if options.source_ip is not None and not is_ip_address(options.source_ip):
            f.problem("source_ip", f"{options.source_ip[:60]!r} is not an IP address; give one of this host's")
        if options.max_loss >= 1:
            f.problem("max_loss", "is 100%: every request could be lost and the check still pass; "
                                  "lower it (0 fails on one lost request)")
        families = [socket.AF_INET, socket.AF_INET6] if options.ip_protocol == "auto" else [
            _FAMILIES[options.ip_protocol]]
        if host and not any(access(family) for family in families):
            f.problem("kind", f"icmp: this process may not send ICMP echo requests; {_GRANT}")
        return options if host else None

    def fits(self, f: Fields, timeout: float) -> None:
        """The requests are sent within half the check's timeout, so the last has time to come back."""
        sending = (self.packets - 1) * self.packet_interval
        if sending > timeout / 2:
            f.problem("packets", f"{self.packets} requests {format_seconds(self.packet_interval)} apart take "
                                 f"{format_seconds(sending)}, over half the timeout ({format_seconds(timeout)}); "
                                 "send fewer, closer together, or raise the timeout")

    def secrets(self) -> Iterator[Secret]:
        return iter(())

    def where(self) -> str:
        return self.host

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "packets": self.packets, "packet_interval": self.packet_interval,
                "payload_size": self.payload_size, "dont_fragment": self.dont_fragment, "ttl": self.ttl,
                "ip_protocol": self.ip_protocol, "source_ip": self.source_ip, "max_loss": self.max_loss,
                "max_rtt": self.max_rtt}


class IcmpProbe(Probe):
    kind = "icmp"
    component_type = "system"
    check_name = "reachability"
    info_labels = ("icmp_socket",)
    options_type = IcmpOptions
    schemes = ("icmp",)

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self._names: Names | None = None

    @classmethod
    def options_from_url(cls, url: str) -> IcmpOptions:
        host = url.partition("://")[2].strip("/[]")
        if not host:
            raise ValueError("an ICMP URL needs a host: icmp://HOST")
        return IcmpOptions(host=host)

    def _load(self) -> None:
        import icmplib  # noqa: F401 - imported once, off the loop, before the first check

    async def _check(self, target: Target, attempt: Attempt) -> None:
        from icmplib import AsyncSocket, ICMPRequest, ICMPv4Socket, ICMPv6Socket

        o: IcmpOptions = target.options
        deadline = answer_by(target.timeout)
        attributes: dict[str, str | int] = {"server.address": o.host, "network.transport": "icmp"}
        with self.step(attempt, "dns", "resolve", attributes):
            family, address = await self._address(o)
        mode = access(family)
        if mode is None:
            raise ProbeFailure(ErrorType.AUTH, f"this process may not send ICMP echo requests; {_GRANT}")
        attempt.info["icmp_socket"] = mode
        make = ICMPv4Socket if family == socket.AF_INET else ICMPv6Socket
        sock = AsyncSocket(make(address=o.source_ip, privileged=mode == "raw"))
        try:
            if o.dont_fragment:
                _dont_fragment(sock.sock, family)
        except BaseException:
            sock.close()
            raise
        with self.step(attempt, "echo", f"ping {address}", {**attributes, "network.peer.address": address}):
            sent, answered, refusal = await self._exchange(sock, ICMPRequest, address, o, deadline)
        _verdict(o, attempt, sent, answered, refusal)

    async def _exchange(self, sock: Any, request_type: Any, address: str, o: IcmpOptions,
                        deadline: float) -> tuple[int, dict[int, float], str | None]:
        """Send the requests on their schedule while a task reads the replies; the round trip
        of each answered request by its sequence number, and the first refusal a router sent.
        The socket is closed when its reader has ended, whichever way the exchange ends."""
        ident = secrets.randbelow(0xFFFF) + 1  # a raw socket tells its checks apart by it
        sent_at: dict[int, float] = {}
        answered: dict[int, float] = {}
        refusals: dict[int, str] = {}
        all_in = asyncio.Event()
        reader = asyncio.ensure_future(_replies(sock, lambda: ident, sent_at, answered, refusals, o.packets, all_in))
        reader.add_done_callback(functools.partial(_close_after, sock))
        try:
            start = time.perf_counter()
            for sequence in range(o.packets):
                if sequence:
                    await asyncio.sleep(max(0.0, start + sequence * o.packet_interval - time.perf_counter()))
                request = request_type(destination=address, id=ident, sequence=sequence,
                                       payload_size=o.payload_size, ttl=o.ttl)
                sent_at[sequence] = time.perf_counter()
                sock.send(request)
                ident = request.id  # a datagram socket's requests carry the kernel's identifier
                if reader.done():
                    break
            if not reader.done():
                remaining = deadline - time.perf_counter()
                if remaining > 0:
                    try:
                        await asyncio.wait_for(all_in.wait(), remaining)
                    except TimeoutError:
                        pass
            if reader.done() and reader.exception() is not None:
                raise reader.exception()  # type: ignore[misc]
        finally:
            reader.cancel()
        return len(sent_at), answered, next(iter(refusals.values()), None)

    async def _address(self, o: IcmpOptions) -> tuple[int, str]:
        wanted = _FAMILIES[o.ip_protocol]
        family = Names.literal(o.host)
        if family is not None:
            if wanted not in (socket.AF_UNSPEC, family):
                raise ProbeFailure(ErrorType.DNS, f"the address is not one of ip_protocol {o.ip_protocol}")
            return family, o.host
        if self._names is None:
            self._names = Names(threads=4)
        found = await self._names.resolve(ascii_host(o.host), 0)
        for family, sockaddr in found:
            if wanted in (socket.AF_UNSPEC, family) and family in (socket.AF_INET, socket.AF_INET6):
                return family, str(sockaddr[0])
        raise ProbeFailure(ErrorType.DNS, f"the name has no {o.ip_protocol} address")

    async def close(self) -> None:
        if self._names is not None:
            self._names.close()

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        from icmplib import ICMPSocketError, SocketAddressError, SocketPermissionError

        found = classify(exc, _rules(SocketPermissionError, SocketAddressError))
        if found is not None:
            return found
        if isinstance(exc, ICMPSocketError):
            return _socket_error(exc)
        return classify_os_error(exc)


def _rules(permission: type[BaseException], address: type[BaseException]) -> tuple[Rule, ...]:
    return (
        (permission, ErrorType.AUTH, f"this process may not send ICMP echo requests; {_GRANT}"),
        (address, ErrorType.PROTOCOL, "source_ip is not an address of this host"),
    )


def _socket_error(exc: BaseException) -> tuple[ErrorType, str]:
    """icmplib raises its own error while handling the OS error (its context); the ones a check
    meets, named by their errno."""
    cause = os_cause(exc)
    code = cause.errno if cause is not None else None
    if cause is not None and code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return classify_os_error(cause)
    if code == errno.EMSGSIZE:
        return ErrorType.PROTOCOL, ("the request is larger than the path allows and dont_fragment forbids "
                                    "splitting it; lower payload_size")
    return ErrorType.PROTOCOL, f"the ICMP socket failed: {str(exc)[:200]}"


_ECHO_REPLY = (0, 129)  # IPv4, IPv6
# The errors a router sends about a request, by ICMP type (IPv4, IPv6).
_REFUSALS = ({3: "destination unreachable", 11: "time exceeded (ttl)"},
             {1: "destination unreachable", 3: "time exceeded (hop limit)"})


async def _replies(sock: Any, ident: Any, sent_at: dict[int, float], answered: dict[int, float],
                   refusals: dict[int, str], packets: int, all_in: asyncio.Event) -> None:
    """Read replies until each request has its answer or a router's refusal (or the exchange
    is cancelled)."""
    from icmplib import TimeoutExceeded

    v6 = sock.sock.family == socket.AF_INET6
    while len(answered) + len(refusals) < packets:
        try:
            reply = await sock.receive(None, 3600)
        except TimeoutExceeded:
            continue
        now = time.perf_counter()
        sequence = reply.sequence
        if reply.id != ident() or sequence not in sent_at or sequence in answered or sequence in refusals:
            continue  # another check's, a duplicate, or a stray packet a raw socket sees
        if reply.type in _ECHO_REPLY:
            answered[sequence] = now - sent_at[sequence]
        elif (meaning := _REFUSALS[v6].get(reply.type)) is not None:
            refusals[sequence] = f"{meaning}, ICMP type {reply.type} code {reply.code}"
    all_in.set()


def _close_after(sock: Any, reader: asyncio.Future[None]) -> None:
    if not reader.cancelled():
        reader.exception()  # raised by the exchange when it ended first; retrieved here in any case
    sock.close()


def _verdict(o: IcmpOptions, attempt: Attempt, sent: int, answered: dict[int, float], refusal: str | None) -> None:
    lost = sent - len(answered)
    loss = lost / sent if sent else 1.0
    attempt.loss_ratio = loss
    if answered:
        rtts = list(answered.values())
        attempt.phases["rtt_min"] = min(rtts)
        attempt.phases["rtt_avg"] = sum(rtts) / len(rtts)
        attempt.phases["rtt_max"] = max(rtts)
    if not answered and refusal is not None:
        raise ProbeFailure(ErrorType.UNREACHABLE, f"no reply to {sent} echo requests; a router said: {refusal}")
    if loss > o.max_loss:
        said = f"; a router said: {refusal}" if refusal else ""
        raise ProbeFailure(ErrorType.PACKET_LOSS, f"{lost} of {sent} echo requests unanswered ({loss:.0%}, "
                                                  f"max_loss {o.max_loss:.0%}){said}")
    if o.max_rtt is not None and attempt.phases["rtt_avg"] > o.max_rtt:
        raise ProbeFailure(ErrorType.ASSERTION, f"average round trip {attempt.phases['rtt_avg'] * 1000:.1f} ms is over "
                                                f"max_rtt {format_seconds(o.max_rtt)}")


def _dont_fragment(sock: socket.socket, family: int) -> None:
    """Path MTU discovery on, fragmenting off: a request larger than the path fails to send."""
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MTU_DISCOVER", 10), getattr(socket, "IP_PMTUDISC_DO", 2))
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, getattr(socket, "IPV6_MTU_DISCOVER", 23),
                        getattr(socket, "IPV6_PMTUDISC_DO", 2))
