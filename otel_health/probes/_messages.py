"""What an HTTP check sends and gets, whatever the version: the request as the probe prepared
it, the answer, the time of each step, and the bounds on an answer's head. The HTTP/1.1 and
HTTP/2 exchanges both import from here, and nothing here imports either."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import SplitResult, quote

from ..errors import ErrorType, ProbeFailure
from ._proxy import Proxies

__all__ = ["MAX_HEAD_BYTES", "MAX_HEAD_FIELDS", "SECRET_HEADERS", "Hop", "Request", "Response", "Timings",
           "invalid"]

MAX_HEAD_BYTES = 65536
MAX_HEAD_FIELDS = 256
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


@dataclass(frozen=True, slots=True)
class Request:
    """One check's request, as the probe prepared it."""

    url: str
    method: str = "GET"
    # One value per name, credentials revealed (never printed); Host, Content-Length and
    # Connection are the client's, a configured Host comes as ``host``.
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    body: bytes | None = None
    context: Callable[[], ssl.SSLContext] | None = None  # called for https URLs only
    follow_redirects: bool = True
    read_body: bool = True
    max_body: int = 1 << 20
    private: frozenset[str] = SECRET_HEADERS  # lower-case names that stay with the first origin
    host: str | None = None  # a configured Host header, sent to the first origin
    server_name: str | None = None  # the TLS server name there (configured, or the Host's name)
    ip_protocol: str = "auto"  # "auto", "ip4" or "ip6"
    source_ip: str | None = None
    proxies: Proxies | None = None  # asked once per hop
    # "off"; "alpn": HTTP/2 when TLS agrees on h2 (``context`` then offers it); "prior_knowledge":
    # HTTP/2 from the first byte, also on plain connections (h2c).
    http2: str = "off"


@dataclass(slots=True)
class Timings:
    """perf_counter stamps of the last hop, and the time the hops before it took."""

    start: float = 0.0
    resolved: float | None = None   # names only
    connected: float | None = None  # to the target, or to the proxy
    tunneled: float | None = None   # https through a proxy: its CONNECT answered
    secured: float | None = None    # https only
    headers: float | None = None
    done: float | None = None
    redirects: float = 0.0

    def next_hop(self, now: float) -> None:
        self.redirects += now - self.start
        self.start = now
        self.resolved = self.connected = self.tunneled = self.secured = self.headers = self.done = None

    def phases(self) -> dict[str, float]:
        """Seconds per step: dns, connect, proxy (the CONNECT exchange), tls, request (until
        the head), body, redirect."""
        out: dict[str, float] = {}
        mark = self.start
        for name, stamp in (("dns", self.resolved), ("connect", self.connected), ("proxy", self.tunneled),
                            ("tls", self.secured), ("request", self.headers), ("body", self.done)):
            if stamp is not None:
                out[name] = max(stamp - mark, 0.0)
                mark = stamp
        if self.redirects:
            out["redirect"] = self.redirects
        return out


@dataclass(slots=True)
class Response:
    status: int
    version: str                          # "1.1", "1.0"
    fields: list[tuple[str, str]]         # lower-case names, in order, values without surrounding spaces
    body: bytes = b""                     # decoded, at most the cap; empty when not read
    truncated: bool = False               # the body went past the cap and was cut there
    peer_chain: tuple[bytes, ...] = ()    # DER of the last TLS peer's chain, leaf first, also unverified
    trailers: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""                         # where the answer came from, after redirects
    tls: bool = False                     # the answer came over TLS
    tls_resumed: bool = False             # ... on a session resumed (tls_resume), not a full handshake
    downgraded: bool = False              # a redirect led from https to plain http on the way
    cookies_set: list[tuple[str, str]] = field(default_factory=list)  # (URL, Set-Cookie) of every hop
    undecodable: str | None = None        # why the body could not be decoded (a coding not asked for)

    @property
    def headers(self) -> dict[str, str]:
        """Fields by name, repeated ones joined with ", "."""
        joined: dict[str, str] = {}
        for name, value in self.fields:
            joined[name] = f"{joined[name]}, {value}" if name in joined else value
        return joined

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.fields if n == name]


@dataclass(frozen=True, slots=True)
class Hop:
    """One request of a check as the wire carries it: this hop's URL (after redirects), method,
    headers and body, and the names it gives the origin. The client makes one per hop; the
    head writers of HTTP/1.1 and HTTP/2 read it."""

    parts: SplitResult
    method: str
    host: str  # as DNS and the Host header carry it (A-labels)
    port: int
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    body: bytes | None = None
    read_body: bool = True
    host_header: str | None = None  # a configured Host: sent to the first origin only
    server_name: str | None = None  # the TLS server name there

    @property
    def tls(self) -> bool:
        return self.parts.scheme == "https"

    def target(self) -> tuple[str, str]:
        """The request target (path and query, percent-encoded) and the authority (the port
        only when it is not the scheme's)."""
        path = quote(self.parts.path or "/", safe=_PATH_SAFE, errors="surrogateescape")
        if self.parts.query:
            path += "?" + quote(self.parts.query, safe=_QUERY_SAFE, errors="surrogateescape")
        authority = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != (443 if self.tls else 80):
            authority += f":{self.port}"
        return path, authority


def invalid(what: str) -> ProbeFailure:
    """An answer that is not valid HTTP (``protocol``), saying what was wrong."""
    return ProbeFailure(ErrorType.PROTOCOL, f"invalid HTTP response: {what}")
