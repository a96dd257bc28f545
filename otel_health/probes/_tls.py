"""TLS for every probe kind: the client context, and a peer certificate's expiry.

:func:`client_context` is the one place a client ``SSLContext`` is built: loading the trust
store costs milliseconds, so contexts are cached by what they depend on, the modification
times of the CA file and of a client certificate and key included (a rotated file is picked
up by the next check).
``presented_chain`` reads the chain a peer sent (with verification off too).
"""

from __future__ import annotations

import _ssl
import functools
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TLS_VERSIONS", "ClientCertificate", "Resuming", "certificate_problem", "client_context",
           "presented_chain", "transport_chain"]

_ENCODING_DER = getattr(_ssl, "ENCODING_DER", 2)  # what _ssl.Certificate.public_bytes writes DER for
_MAX_SESSIONS = 10_000  # sessions a Resuming context keeps, a few KB each


class Resuming(ssl.SSLContext):
    """A client context that offers each server the session of its last connection, so the
    server may resume it (``tls_resume: true``). The event loop's TLS calls ``wrap_bio``
    without a session: the one kept for the server name is offered here."""

    def __init__(self, protocol: int = ssl.PROTOCOL_TLS_CLIENT) -> None:
        self.sessions: dict[str, ssl.SSLSession] = {}  # by server name, the longest unused first

    def keep(self, server_hostname: str, session: ssl.SSLSession | None) -> None:
        """Keep ``session`` (read once the answer is in: TLS 1.3 tickets come after the handshake)."""
        self.sessions.pop(server_hostname, None)
        if session is not None:
            if len(self.sessions) >= _MAX_SESSIONS:
                del self.sessions[next(iter(self.sessions))]
            self.sessions[server_hostname] = session

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
                 server_hostname: str | bytes | None = None, session: ssl.SSLSession | None = None) -> ssl.SSLObject:
        if session is None and isinstance(server_hostname, str):
            session = self.sessions.get(server_hostname)
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)


TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A certificate the client presents, with its key (and the key's password)."""

    cert_file: Path
    key_file: Path | None = None  # None: the key is in cert_file
    password: str | None = field(default=None, repr=False)

    def stamps(self) -> tuple[int, int]:
        return _stamp(self.cert_file), _stamp(self.key_file)


def client_context(*, verify: bool = True, check_hostname: bool | None = None, ca_file: Path | None = None,
                   client_cert: ClientCertificate | None = None, min_version: str | None = None,
                   max_version: str | None = None, alpn: tuple[str, ...] = (), resume: bool = False
                   ) -> ssl.SSLContext:
    """A client context: the system's trust store or ``ca_file``; ``verify=False`` accepts
    any certificate; ``check_hostname`` defaults to ``verify``; a client certificate, TLS
    versions (``TLS12``...) and the protocols offered by ALPN (``("h2", "http/1.1")``) when
    given; ``resume``: a :class:`Resuming` context. Shared: never change its settings (a
    Resuming context keeps the sessions it is given)."""
    return _context(verify, verify if check_hostname is None else check_hostname,
                    str(ca_file) if ca_file is not None else None, _stamp(ca_file),
                    client_cert, client_cert.stamps() if client_cert is not None else (0, 0),
                    min_version, max_version, alpn, resume)


def load_client_certificate(context: ssl.SSLContext, cert: ClientCertificate) -> None:
    """Raises ssl.SSLError or OSError; :func:`certificate_problem` says what in a sentence."""
    context.load_cert_chain(cert.cert_file, cert.key_file,
                            password=(lambda: cert.password or "") if cert.password is not None else _no_password)


def certificate_problem(cert: ClientCertificate) -> tuple[str, str] | None:
    """(field, why) when the certificate and key cannot be used, or None when they can."""
    key_field = "key_file" if cert.key_file is not None else "cert_file"
    try:
        cert_text = cert.cert_file.read_bytes()[:1 << 20]
        key_text = cert.key_file.read_bytes()[:1 << 20] if cert.key_file is not None else cert_text
    except OSError as exc:
        return "cert_file" if exc.filename == str(cert.cert_file) else key_field, f"cannot be read: {exc.strerror}"
    if b"-----BEGIN CERTIFICATE-----" not in cert_text:
        return "cert_file", "holds no PEM certificate"
    if b"PRIVATE KEY-----" not in key_text:
        return key_field, "holds no PEM private key"
    encrypted = b"ENCRYPTED" in key_text
    if encrypted and cert.password is None:
        return "key_password", "is required: the key is encrypted; give it by reference"
    try:
        load_client_certificate(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), cert)
    except _NoPassword:
        return "key_password", "is required: the key is encrypted; give it by reference"
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc.reason or ""):
            return key_field, "the key does not belong to the certificate in cert_file"
        if encrypted:
            return "key_password", "does not decrypt the key"
        return key_field, "the certificate and key cannot be loaded together; give PEM files of one pair"
    except OSError as exc:
        return key_field, f"cannot be read: {exc.strerror or exc}"
    return None


class _NoPassword(Exception):
    pass


def _no_password() -> str:
    raise _NoPassword


def _stamp(path: Path | None) -> int:
    # The file's modification time: a rotated file is picked up by the next check.
    if path is None:
        return 0
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1  # building the context raises the reason


@functools.lru_cache(maxsize=64)
def _context(verify: bool, check_hostname: bool, ca_file: str | None, _stamp: int,
             client_cert: ClientCertificate | None, _cert_stamps: tuple[int, int],
             min_version: str | None, max_version: str | None, alpn: tuple[str, ...], resume: bool) -> ssl.SSLContext:
    if resume:  # as create_default_context makes one, of the class that offers a session
        context: ssl.SSLContext = Resuming(ssl.PROTOCOL_TLS_CLIENT)
        if ca_file is not None:
            context.load_verify_locations(cafile=ca_file)
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        context = ssl.create_default_context(cafile=ca_file)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    context.check_hostname = check_hostname and verify
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    if min_version is not None:
        context.minimum_version = TLS_VERSIONS[min_version]
    if max_version is not None:
        context.maximum_version = TLS_VERSIONS[max_version]
    if client_cert is not None:
        load_client_certificate(context, client_cert)
    return context


def presented_chain(ssl_object: Any) -> tuple[bytes, ...]:
    """The chain the peer sent in the handshake, DER, leaf first (also with verification off);
    () without TLS. Python 3.13 names it ``get_unverified_chain``; before, the object under
    the ``SSLObject`` has it (since 3.10), else the leaf alone is read."""
    if ssl_object is None:
        return ()
    public = getattr(ssl_object, "get_unverified_chain", None)
    if public is not None:
        return tuple(bytes(c) for c in public() or ())
    inner = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if inner is not None:
        chain = inner()
        if chain:
            return tuple(c.public_bytes(_ENCODING_DER) for c in chain)
    leaf = ssl_object.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


def transport_chain(transport: Any) -> tuple[bytes, ...]:
    """The chain of a TLS connection's peer (see :func:`presented_chain`): ``transport`` is
    anything with ``get_extra_info`` (a transport, a stream writer)."""
    return presented_chain(transport.get_extra_info("ssl_object"))
