"""How an OCSP response (_ocsp.judged_response) and a CRL (_crl.judged_crl) are judged, and
what a chain reports (_chain.report): responses and CRLs made with cryptography's own builders
at fixed instants, judged at a clock the test sets. The servers' side (openssl's responder, nginx's staples) is in
tests/integration/test_revocation.py."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from otel_health.probes._chain import report
from otel_health.probes._crl import crl_of, judged_crl
from otel_health.probes._ocsp import Unusable, judged_response, responder_of

T0 = dt.datetime(2031, 5, 1, tzinfo=dt.UTC)
NOW = (T0 + dt.timedelta(hours=1)).timestamp()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(cn: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None = None,
          *, days: int = 90, serial: int = 0x1234, extensions: list[x509.ExtensionType] = ()) -> x509.Certificate:
    issuer_name, signer = issuer if issuer is not None else (cn, key)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(issuer_name))
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(T0 - dt.timedelta(days=1)).not_valid_after(T0 + dt.timedelta(days=days)))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def pki() -> dict[str, object]:
    ca_key, leaf_key, other_key, delegate_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    ca = _cert("CA", ca_key, days=30)
    aia = x509.AuthorityInformationAccess([x509.AccessDescription(
        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier("http://ocsp.example.test/"))])
    leaf = _cert("leaf", leaf_key, ("CA", ca_key), extensions=[aia])
    signing = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING])
    delegate = _cert("responder", delegate_key, ("CA", ca_key), serial=7, extensions=[signing])
    undelegated = _cert("not-a-responder", delegate_key, ("CA", ca_key), serial=8)
    stranger = _cert("responder", other_key, serial=9, extensions=[signing])  # self-signed, same name
    impostor = _cert("CA", other_key, serial=10)  # the issuer's name, another key
    return {"impostor": impostor, "ca": ca, "ca_key": ca_key, "leaf": leaf, "delegate": delegate,
            "delegate_key": delegate_key, "undelegated": undelegated, "stranger": stranger, "other_key": other_key}


def _response(pki: dict[str, object], status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD, *,
              signer: str = "ca", key: str = "ca_key", this: dt.datetime = T0, next_: dt.datetime | None = None,
              about: x509.Certificate | None = None) -> bytes:
    leaf = about or pki["leaf"]
    revoked = status == ocsp.OCSPCertStatus.REVOKED
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf, issuer=pki["ca"], algorithm=hashes.SHA1(), cert_status=status,  # type: ignore[arg-type]
        this_update=this, next_update=next_ or this + dt.timedelta(days=1),
        revocation_time=T0 - dt.timedelta(days=2) if revoked else None,
        revocation_reason=x509.ReasonFlags.key_compromise if revoked else None)
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.NAME, pki[signer])  # type: ignore[arg-type]
    if signer != "ca":
        builder = builder.certificates([pki[signer]])  # type: ignore[list-item]
    made = builder.sign(pki[key], hashes.SHA256())  # type: ignore[arg-type]
    return made.public_bytes(serialization.Encoding.DER)


def _judge(pki: dict[str, object], der: bytes, now: float = NOW) -> tuple[str, str]:
    try:
        made = judged_response(der, pki["leaf"], pki["ca"], now, "R")  # type: ignore[arg-type]
    except Unusable as exc:
        return "invalid", str(exc)
    return made.state, made.detail


def test_good_revoked_and_signed_by_a_delegated_responder(pki: dict[str, object]) -> None:
    assert _judge(pki, _response(pki)) == ("good", "good, per R")
    state, detail = _judge(pki, _response(pki, ocsp.OCSPCertStatus.REVOKED))
    assert (state, detail) == ("revoked", "certificate CN=leaf (serial 1234) was revoked at 2031-04-29T00:00:00Z "
                                          "(keyCompromise), per R")
    assert _judge(pki, _response(pki, signer="delegate", key="delegate_key"))[0] == "good"
    # kept until the response's next update, an hour at most
    made = judged_response(_response(pki, next_=T0 + dt.timedelta(hours=1, minutes=10)), pki["leaf"],  # type: ignore
                           pki["ca"], NOW, "R")  # type: ignore[arg-type]
    assert made.until == NOW + 600


def test_responses_that_say_nothing_usable_are_named(pki: dict[str, object]) -> None:
    assert _judge(pki, _response(pki, ocsp.OCSPCertStatus.UNKNOWN)) == (
        "invalid", "R does not know the certificate (status unknown)")
    assert _judge(pki, _response(pki, signer="undelegated", key="delegate_key")) == (
        "invalid", "R is signed by CN=not-a-responder, which is not an OCSP responder (no OCSP signing purpose)")
    assert _judge(pki, _response(pki, signer="stranger", key="other_key")) == (
        "invalid", "R is signed by CN=responder, which the leaf's issuer did not issue")
    # signed as the issuer by name, with another key: the signature does not verify
    forged = _response(pki, signer="impostor", key="other_key")
    assert _judge(pki, forged) == ("invalid", "R: its signature does not verify")
    other_leaf = _cert("other", ec.generate_private_key(ec.SECP256R1()), ("CA", pki["ca_key"]),  # type: ignore
                       serial=0x99)
    assert _judge(pki, _response(pki, about=other_leaf)) == (
        "invalid", "R does not speak of this certificate (serial 1234)")
    assert _judge(pki, _response(pki), now=(T0 + dt.timedelta(days=2)).timestamp()) == (
        "invalid", "R is stale: its next update was due 2031-05-02T00:00:00Z")
    assert _judge(pki, _response(pki), now=(T0 - dt.timedelta(hours=1)).timestamp()) == (
        "invalid", "R is not valid before 2031-05-01T00:00:00Z")
    assert _judge(pki, b"\x30\x03\x0a\x01\x06") == ("invalid", "R says unauthorized")
    assert _judge(pki, b"not DER") == ("invalid", "R cannot be read as an OCSP response")


def test_the_chain_report_names_the_first_to_expire_and_the_leafs_issuer(pki: dict[str, object]) -> None:
    der = [c.public_bytes(serialization.Encoding.DER) for c in (pki["leaf"], pki["ca"])]  # type: ignore[attr-defined]
    made = report((der[0], der[1]))
    assert made is not None
    assert (made.expires_first, made.issuer, made.serial) == ("CN=CA", "CN=CA", "1234")
    assert made.expiry == (T0 + dt.timedelta(days=30)).timestamp()
    assert made.leaf_issuer == pki["ca"]
    alone = report((der[0], b"\x30\x00"))  # an unreadable certificate up the chain is left out
    assert alone is not None and alone.expires_first == "CN=leaf" and alone.leaf_issuer is None
    assert report((b"junk",)) is None
    assert responder_of(pki["leaf"]) == "http://ocsp.example.test/"  # type: ignore[arg-type]
    assert responder_of(pki["ca"]) is None  # type: ignore[arg-type]


def _crl(pki: dict[str, object], *, key: str = "ca_key", issuer: str = "CA", revoked: int | None = None,
         last: dt.datetime = T0, next_: dt.datetime | None = None) -> bytes:
    builder = (x509.CertificateRevocationListBuilder().issuer_name(_name(issuer)).last_update(last)
               .next_update(next_ or last + dt.timedelta(days=7)))
    if revoked is not None:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(revoked).revocation_date(T0 - dt.timedelta(days=3))
            .add_extension(x509.CRLReason(x509.ReasonFlags.superseded), critical=False).build())
    return builder.sign(pki[key], hashes.SHA256()).public_bytes(serialization.Encoding.DER)  # type: ignore


def _judge_crl(pki: dict[str, object], der: bytes, now: float = NOW) -> tuple[str, str]:
    try:
        made = judged_crl(der, pki["leaf"], pki["ca"], now, "L")  # type: ignore[arg-type]
    except Unusable as exc:
        return "invalid", str(exc)
    return made.state, made.detail


def test_a_crl_says_revoked_when_it_lists_the_serial_and_only_when_the_issuer_signed_it(
        pki: dict[str, object]) -> None:
    assert _judge_crl(pki, _crl(pki)) == ("good", "good, per L")
    assert _judge_crl(pki, _crl(pki, revoked=0x77)) == ("good", "good, per L")  # another serial
    assert _judge_crl(pki, _crl(pki, revoked=0x1234)) == (
        "revoked", "certificate CN=leaf (serial 1234) was revoked at 2031-04-28T00:00:00Z (superseded), per L")
    assert _judge_crl(pki, _crl(pki, key="other_key")) == (
        "invalid", "L: its signature does not verify with the issuer's key")
    assert _judge_crl(pki, _crl(pki, issuer="Other CA")) == (
        "invalid", "L is issued by CN=Other CA, not by the leaf's issuer")
    assert _judge_crl(pki, _crl(pki), now=(T0 + dt.timedelta(days=8)).timestamp()) == (
        "invalid", "L is stale: its next update was due 2031-05-08T00:00:00Z")
    assert _judge_crl(pki, b"junk") == ("invalid", "L cannot be read as a CRL")
    # kept until its next update when that comes within the hour
    soon = judged_crl(_crl(pki, next_=T0 + dt.timedelta(minutes=70)), pki["leaf"], pki["ca"], NOW, "L")  # type: ignore
    assert soon.until == NOW + 600


def test_the_crl_a_certificate_names() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    points = x509.CRLDistributionPoints([x509.DistributionPoint(
        [x509.UniformResourceIdentifier("ldap://ldap.example.test/cn=CA"),
         x509.UniformResourceIdentifier("http://crl.example.test/ca.crl")], None, None, None)])
    assert crl_of(_cert("leaf", key, extensions=[points])) == "http://crl.example.test/ca.crl"
    assert crl_of(_cert("leaf", key)) is None
