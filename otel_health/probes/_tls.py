"""Reading a peer certificate's expiry from its DER bytes (works with verification off too)."""

from __future__ import annotations

import calendar
import time

__all__ = ["not_after", "not_after_or_none"]


def not_after_or_none(der: bytes) -> float | None:
    """Unix time the certificate expires, or None when it cannot be read."""
    try:
        return not_after(der)
    except (IndexError, ValueError, UnicodeDecodeError):
        return None


def _tlv(data: bytes, i: int) -> tuple[int, int, int]:
    """(tag, start of content, length of content) of the element at ``i``."""
    tag = data[i]
    length = data[i + 1]
    i += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[i:i + count], "big")
        i += count
    return tag, i, length


def not_after(der: bytes) -> float:
    """The ``notAfter`` of an X.509 certificate in DER, as a Unix time."""
    _, cert, _ = _tlv(der, 0)          # Certificate ::= SEQUENCE
    _, i, _ = _tlv(der, cert)          # tbsCertificate ::= SEQUENCE
    tag, start, length = _tlv(der, i)
    if tag == 0xA0:                    # [0] EXPLICIT version
        i = start + length
    for _ in range(3):                 # serialNumber, signature, issuer
        _, start, length = _tlv(der, i)
        i = start + length
    tag, start, _ = _tlv(der, i)       # validity ::= SEQUENCE { notBefore, notAfter }
    if tag != 0x30:
        raise ValueError("no validity")
    _, nb_start, nb_len = _tlv(der, start)
    tag, na_start, na_len = _tlv(der, nb_start + nb_len)
    text = der[na_start:na_start + na_len].decode("ascii")
    if tag == 0x17:                    # UTCTime YYMMDDHHMMSSZ
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18:                  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError("unknown time type")
    return float(calendar.timegm(time.strptime(text[:14], "%Y%m%d%H%M%S")))
