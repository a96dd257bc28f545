"""TLS for every probe kind: the client context, and a peer certificate's expiry.

:func:`client_context` is the one place a client ``SSLContext`` is built: loading the trust
store costs milliseconds, so contexts are cached by what they depend on, the CA file's
modification time included (a rotated CA file is picked up by the next check).
``not_after`` reads a certificate's expiry from its DER bytes (with verification off too).
"""

from __future__ import annotations

import calendar
import functools
import os
import ssl
import time
from pathlib import Path

__all__ = ["client_context", "not_after", "not_after_or_none"]


def client_context(*, verify: bool = True, check_hostname: bool | None = None,
                   ca_file: Path | None = None) -> ssl.SSLContext:
    """A client context: the system's trust store or ``ca_file``; ``verify=False`` accepts
    any certificate; ``check_hostname`` defaults to ``verify``. Shared: never modify it."""
    stamp = 0
    if ca_file is not None:
        try:
            stamp = os.stat(ca_file).st_mtime_ns
        except OSError:
            stamp = -1  # building the context raises the reason
    return _context(verify, verify if check_hostname is None else check_hostname,
                    str(ca_file) if ca_file is not None else None, stamp)


@functools.lru_cache(maxsize=64)
def _context(verify: bool, check_hostname: bool, ca_file: str | None, _stamp: int) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = check_hostname and verify
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    return context


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
