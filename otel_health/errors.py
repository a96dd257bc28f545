"""The closed set of reasons a check can fail.

Every failed check carries exactly one of these as ``error_type`` (a metric label and the
span's ``error.type``). New protocols extend the set here and nowhere else, so dashboards
and alerts can rely on it.
"""

from __future__ import annotations

import enum

__all__ = ["ErrorType", "NoVerdict", "ProbeFailure"]


class ErrorType(enum.StrEnum):
    TIMEOUT = "timeout"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_RESET = "connection_reset"
    DNS = "dns"
    TLS = "tls"
    HTTP_STATUS = "http_status"
    ASSERTION = "assertion"
    AUTH = "auth"
    PROTOCOL = "protocol"
    LOADING = "loading"
    # The server answers but says it cannot serve now: a replica cut off from its master, a
    # cluster node whose cluster is down, a store that cannot persist and refuses writes.
    UNAVAILABLE = "unavailable"
    DATABASE_MISSING = "database_missing"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    # The service answers its health check with "not serving" (gRPC NOT_SERVING, UNKNOWN).
    NOT_SERVING = "not_serving"
    # A job that reports in (a heartbeat target) did not within its period and grace.
    MISSED = "missed"
    # Echo requests went unanswered, more of them than the target's max_loss allows (ICMP).
    PACKET_LOSS = "packet_loss"
    # No route to the host: this host or a router on the way said so (EHOSTUNREACH,
    # ENETUNREACH, an ICMP destination unreachable or time exceeded).
    UNREACHABLE = "unreachable"
    # The SSH server presented a host key other than the one pinned: the key changed, or another
    # server answers at the address.
    HOST_KEY_MISMATCH = "host_key_mismatch"
    # A DNS answer's DNSSEC signatures do not validate up to the trust anchor: expired, not yet
    # valid, not verifying, missing, or a chain of DS and DNSKEY that breaks.
    DNSSEC = "dnssec"
    # The TLS peer's certificate is revoked: an OCSP response signed for its issuer says so.
    REVOKED = "revoked"
    UNKNOWN = "unknown"


class ProbeFailure(Exception):
    """Raised by a probe's protocol step to fail the check with a known reason.

    ``detail`` is shown to operators: it must never hold a credential.
    """

    def __init__(self, error_type: ErrorType, detail: str) -> None:
        super().__init__(detail)
        self.error_type = error_type
        self.detail = detail


class NoVerdict(Exception):
    """Raised by a probe that cannot say up or down yet (a heartbeat target after a restart,
    before one period and its grace have passed): nothing is recorded, the state stays unknown."""
