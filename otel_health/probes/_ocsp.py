"""OCSP (RFC 6960) for the revocation check (``_revocation``): what a response says of a
certificate, who may sign one, and the stapled response a server gives when asked.

A response counts when it is signed by the leaf's issuer, or by a responder the issuer
delegated to (the OCSP signing purpose), speaks of this certificate (its serial, the hashes of
its issuer's name and key) and is current on the probe's clock; otherwise :class:`Unusable`
says why.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import ErrorType, ProbeFailure

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.x509 import ocsp

__all__ = ["KEEP", "SKEW", "Revocation", "StapleAt", "Unusable", "iso", "judged_response", "responder_of",
           "stapled"]

KEEP = 3600.0          # a status learned is asked again after an hour at most
SKEW = 300.0           # clocks may differ this much between the responder and the probe


@dataclass(frozen=True, slots=True)
class Revocation:
    state: str    # "good", "revoked" or "unknown"
    detail: str
    until: float  # on the probe's clock: asked again after


@dataclass(frozen=True, slots=True)
class StapleAt:
    """Where to ask for a stapled response: the server the check's handshake was with."""

    host: str
    port: int
    server_name: str | None


class Unusable(Exception):
    """A response (or a CRL) that says nothing usable, with why."""


def responder_of(leaf: x509.Certificate) -> str | None:
    """The first http:// OCSP responder in the certificate's Authority Information Access."""
    from cryptography import x509
    from cryptography.x509.oid import AuthorityInformationAccessOID

    try:
        access = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    for description in access:
        location = description.access_location
        if (description.access_method == AuthorityInformationAccessOID.OCSP
                and isinstance(location, x509.UniformResourceIdentifier)
                and location.value.lower().startswith(("http://", "https://"))):
            return str(location.value)
    return None


def judged_response(der: bytes, leaf: x509.Certificate, issuer: x509.Certificate, now: float,
                    source: str) -> Revocation:
    """What an OCSP response (DER) says of ``leaf``; raises Unusable when it says nothing usable:
    unreadable, unsuccessful, about another certificate, badly signed, or not current."""
    from cryptography.x509 import ocsp

    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError:
        raise Unusable(f"{source} cannot be read as an OCSP response") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise Unusable(f"{source} says {response.response_status.name.lower()}")
    single = next(_about(response, leaf, issuer), None)
    if single is None:
        raise Unusable(f"{source} does not speak of this certificate (serial {leaf.serial_number:x})")
    _check_signature(response, issuer, source)
    this_update = single.this_update_utc.timestamp()
    next_update = single.next_update_utc.timestamp() if single.next_update_utc is not None else None
    if this_update > now + SKEW:
        raise Unusable(f"{source} is not valid before {iso(this_update)}")
    if next_update is not None and next_update < now - SKEW:
        raise Unusable(f"{source} is stale: its next update was due {iso(next_update)}")
    until = min(now + KEEP, next_update) if next_update is not None and next_update > now else now + KEEP
    status = single.certificate_status
    if status == ocsp.OCSPCertStatus.GOOD:
        return Revocation("good", f"good, per {source}", until)
    if status == ocsp.OCSPCertStatus.REVOKED:
        when = single.revocation_time_utc
        reason = f" ({_reason(single.revocation_reason)})" if single.revocation_reason is not None else ""
        return Revocation("revoked", f"certificate {leaf.subject.rfc4514_string()} (serial {leaf.serial_number:x}) "
                                     f"was revoked{' at ' + iso(when.timestamp()) if when else ''}{reason}, "
                                     f"per {source}", now + KEEP)
    raise Unusable(f"{source} does not know the certificate (status unknown)")


def _about(response: ocsp.OCSPResponse, leaf: x509.Certificate,
           issuer: x509.Certificate) -> Iterator[ocsp.OCSPSingleResponse]:
    """The single responses about ``leaf`` as ``issuer``'s (the serial, and the hashes of the
    issuer's name and key under the response's own hash algorithm)."""
    from cryptography.x509 import ocsp

    for single in response.responses:
        if single.serial_number != leaf.serial_number:
            continue
        try:
            expected = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, single.hash_algorithm).build()
        except (ValueError, TypeError):
            continue
        if expected.issuer_key_hash == single.issuer_key_hash and expected.issuer_name_hash == single.issuer_name_hash:
            yield single


def _check_signature(response: ocsp.OCSPResponse, issuer: x509.Certificate, source: str) -> None:
    """The response is signed by the issuer, or by a certificate the issuer made an OCSP responder."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.x509.oid import ExtendedKeyUsageOID

    signer = issuer if _is_responder(response, issuer) else None
    if signer is None:
        for cert in response.certificates:
            if not _is_responder(response, cert):
                continue
            try:
                cert.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                raise Unusable(f"{source} is signed by {cert.subject.rfc4514_string()}, which the leaf's issuer "
                               "did not issue") from None
            try:
                purposes = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            except (x509.ExtensionNotFound, ValueError):
                purposes = x509.ExtendedKeyUsage([])
            if ExtendedKeyUsageOID.OCSP_SIGNING not in purposes:
                raise Unusable(f"{source} is signed by {cert.subject.rfc4514_string()}, which is not an OCSP "
                               "responder (no OCSP signing purpose)")
            signer = cert
            break
    if signer is None:
        raise Unusable(f"{source} is signed by neither the leaf's issuer nor a responder it delegated to")
    try:
        _verify(signer.public_key(), response.signature, response.tbs_response_bytes, response.signature_hash_algorithm)
    except InvalidSignature:
        raise Unusable(f"{source}: its signature does not verify") from None
    except (TypeError, ValueError) as exc:
        raise Unusable(f"{source}: its signature cannot be checked ({exc})") from None


def _is_responder(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    from cryptography import x509

    if response.responder_name is not None:
        return bool(response.responder_name == cert.subject)
    return bool(response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest)


def _verify(key: Any, signature: bytes, data: bytes, algorithm: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key.verify(signature, data)
    else:
        raise TypeError(f"a {type(key).__name__} is not a key OCSP responses are checked with here")


def _reason(flag: Any) -> str:
    # ReasonFlags' values are RFC 5280's names: keyCompromise, superseded, ...
    return str(getattr(flag, "value", flag))


def iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- The stapled response ---------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _staple_context() -> Any:
    from OpenSSL import SSL

    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_verify(SSL.VERIFY_NONE)  # only the staple is read: the check's handshake judged the rest

    def stapled(connection: Any, data: bytes, _: Any) -> bool:
        connection.get_app_data().append(data)
        return True

    context.set_ocsp_client_callback(stapled)
    return context


async def stapled(at: StapleAt) -> bytes | None:
    """The OCSP response the server staples when asked in a handshake (None when it staples none)."""
    from OpenSSL import SSL

    connection = SSL.Connection(_staple_context(), None)
    said: list[bytes] = []
    connection.set_app_data(said)
    if at.server_name:
        connection.set_tlsext_host_name(at.server_name.encode("ascii", "replace"))
    connection.request_ocsp()
    connection.set_connect_state()
    reader, writer = await asyncio.open_connection(at.host, at.port)
    try:
        while True:
            try:
                connection.do_handshake()
                break
            except SSL.WantReadError:
                pass
            except SSL.Error as exc:
                raise ProbeFailure(ErrorType.TLS, f"the handshake asking for a stapled response failed: "
                                                  f"{exc}") from None
            _send(connection, writer)
            await writer.drain()
            data = await reader.read(65536)
            if not data:
                raise ConnectionResetError("the server closed the handshake asking for a stapled response")
            connection.bio_write(data)
        _send(connection, writer)
    finally:
        writer.transport.abort()  # nothing more is said: the staple is all it was for
    return said[0] if said and said[0] else None


def _send(connection: Any, writer: asyncio.StreamWriter) -> None:
    from OpenSSL import SSL

    while True:
        try:
            out = connection.bio_read(65536)
        except SSL.WantReadError:
            return
        if not out:
            return
        writer.write(out)
