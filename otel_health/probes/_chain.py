"""The certificate chain a TLS peer presented: which of its certificates expires first, and
who issued the leaf.

Every TLS kind reads the chain of each check's own handshake (``_tls.presented_chain``) and
records what :func:`report` makes of it (:func:`record`): the earliest ``notAfter`` of the
whole chain as the expiry series, the certificate that expires first named, and the leaf's
issuer and serial as labels of ``tta_service_info``. A chain is read once: the same chain
check after check is remembered.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._base import Attempt

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["TLS_INFO", "ChainReport", "record", "report"]

# What a TLS check reports in tta_service_info (the revocation status only where it is asked).
TLS_INFO = ("tls_issuer", "tls_serial", "tls_expires_first", "tls_revocation")


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What a presented chain says, leaf first."""

    expiry: float                 # the earliest notAfter of the chain, Unix time
    expires_first: str            # the subject of the certificate that expires then
    issuer: str                   # the leaf's issuer (RFC 4514)
    serial: str                   # the leaf's serial number, lower-case hex
    chain: tuple[bytes, ...]      # DER, leaf first, as presented
    leaf: x509.Certificate | None = None
    # The certificate of the chain that issued the leaf, when the chain holds it.
    leaf_issuer: x509.Certificate | None = None


async def record(attempt: Attempt, chain: tuple[bytes, ...]) -> ChainReport | None:
    """Put what ``chain`` says on ``attempt`` (the expiry series, tta_service_info's TLS labels);
    the report, or None when the chain is empty or its leaf unreadable."""
    if not chain:
        return None
    if not _X509_LOADED:  # cryptography's X.509 (8 MB), off the loop, once, for the first TLS check only
        await asyncio.to_thread(lambda: __import__("cryptography.x509"))
        _X509_LOADED.append(True)
    made = report(chain)
    if made is None:
        return None
    attempt.tls_expiry = made.expiry
    attempt.info["tls_issuer"] = made.issuer
    attempt.info["tls_serial"] = made.serial
    attempt.info["tls_expires_first"] = made.expires_first
    return made


_X509_LOADED: list[bool] = []


@functools.lru_cache(maxsize=2048)
def report(chain: tuple[bytes, ...]) -> ChainReport | None:
    """What the chain (DER, leaf first) says; None when its leaf cannot be read. A certificate
    further up that cannot be read is left out of the earliest expiry."""
    certs = [_parsed(der) for der in chain]
    leaf = certs[0] if certs else None
    if leaf is None:
        return None
    readable = [c for c in certs if c is not None]
    first = min(readable, key=lambda c: c.expiry)
    issuer = next((c.cert for c in readable[1:] if c.cert.subject == leaf.cert.issuer), None)
    return ChainReport(first.expiry, first.subject, leaf.issuer, leaf.serial, chain, leaf.cert, issuer)


@dataclass(frozen=True, slots=True)
class _Cert:
    cert: x509.Certificate
    expiry: float
    subject: str
    issuer: str
    serial: str


@functools.lru_cache(maxsize=4096)
def _parsed(der: bytes) -> _Cert | None:
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
        return _Cert(cert, cert.not_valid_after_utc.timestamp(), _name(cert.subject), _name(cert.issuer),
                     format(cert.serial_number, "x"))
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def _name(name: x509.Name) -> str:
    try:
        return name.rfc4514_string() or "(empty name)"
    except ValueError:
        return "(unreadable name)"
