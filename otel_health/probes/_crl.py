"""Certificate revocation lists (RFC 5280) for the revocation check (``_revocation``): the CRL a
certificate names, fetched once for every certificate that names it and kept until its
nextUpdate (an hour at most), its signature checked with the issuer's key.

A CRL can be megabytes: it is read, verified and searched off the event loop, its size capped
(:data:`MAX_CRL`), and the CRLs kept are capped in bytes together (:data:`_MAX_KEPT`). One
fetch per URL at a time: the checks that need it meanwhile wait for that one, and a fetch is
not cancelled with the check that started it (it has its own bound, :data:`_FETCH_TIMEOUT`),
so the next check finds it done.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._messages import Request, Timings
from ._ocsp import KEEP, SKEW, Revocation, Unusable, iso
from ._tls import client_context

if TYPE_CHECKING:
    from cryptography import x509

    from ._client import HttpClient
    from ._proxy import Proxies

__all__ = ["MAX_CRL", "Crls", "crl_of", "judged", "judged_crl", "verified"]

MAX_CRL = 32 << 20       # a CRL longer is not read (the largest public ones are a few MB)
_MAX_KEPT = 64 << 20     # the CRLs kept, together
_FETCH_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class _Kept:
    crl: x509.CertificateRevocationList  # verified with the issuer's key when fetched
    size: int
    until: float  # on the probe's clock


class Crls:
    """The CRLs fetched, by URL."""

    def __init__(self, client: HttpClient, user_agent: str) -> None:
        self._client = client
        self._user_agent = user_agent
        self._kept: dict[tuple[str, x509.Certificate], _Kept] = {}  # by URL and issuer
        self._fetching: dict[str, asyncio.Task[bytes]] = {}

    async def close(self) -> None:
        for task in self._fetching.values():
            task.cancel()
        for task in list(self._fetching.values()):
            with contextlib.suppress(BaseException):
                await task

    async def status(self, url: str, leaf: x509.Certificate, issuer: x509.Certificate, proxies: Proxies | None,
                     now: float) -> Revocation:
        """What the CRL at ``url`` says of ``leaf``; raises Unusable, or what the fetch raised."""
        source = f"the CRL {url}"
        kept = self._kept.get((url, issuer))
        if kept is None or now >= kept.until:
            task = self._fetching.get(url)
            if task is None:
                task = self._fetching[url] = asyncio.get_running_loop().create_task(self._fetch(url, proxies))
                task.add_done_callback(lambda _: self._fetching.pop(url, None))
            der = await asyncio.shield(task)
            # read and checked once per fetch: its nextUpdate decides how long it is kept
            crl, until = await asyncio.to_thread(verified, der, issuer, now, source)
            kept = self._keep((url, issuer), _Kept(crl, len(der), until))
        return await asyncio.to_thread(judged, kept.crl, kept.until, leaf, now, source)

    async def _fetch(self, url: str, proxies: Proxies | None) -> bytes:
        request = Request(url=url, headers=(("User-Agent", self._user_agent),), context=functools.partial(
            client_context), max_body=MAX_CRL, proxies=proxies)
        async with asyncio.timeout(_FETCH_TIMEOUT):
            response = await self._client.fetch(request, Timings())
        if response.status != 200:
            raise Unusable(f"the CRL {url} answered HTTP {response.status}")
        if response.truncated:
            raise Unusable(f"the CRL {url} is longer than {MAX_CRL >> 20} MiB")
        return response.body

    def _keep(self, key: tuple[str, x509.Certificate], kept: _Kept) -> _Kept:
        self._kept.pop(key, None)
        total = sum(k.size for k in self._kept.values())
        while self._kept and total + kept.size > _MAX_KEPT:
            oldest = next(iter(self._kept))
            total -= self._kept.pop(oldest).size
        self._kept[key] = kept
        return kept


def crl_of(leaf: x509.Certificate) -> str | None:
    """The first http:// URL among the certificate's CRL distribution points."""
    from cryptography import x509

    try:
        points = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    for point in points:
        for name in point.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.lower().startswith("http://"):
                return str(name.value)
    return None


def _loaded(der: bytes, source: str) -> x509.CertificateRevocationList:
    from cryptography import x509

    try:
        return x509.load_der_x509_crl(der)
    except ValueError:
        try:
            return x509.load_pem_x509_crl(der)
        except ValueError:
            raise Unusable(f"{source} cannot be read as a CRL") from None


def verified(der: bytes, issuer: x509.Certificate, now: float, source: str
             ) -> tuple[x509.CertificateRevocationList, float]:
    """The CRL, and when it is due again (its nextUpdate, an hour at most); raises Unusable when it
    is not the issuer's, does not verify, or is not current."""
    crl = _loaded(der, source)
    if crl.issuer != issuer.subject:
        raise Unusable(f"{source} is issued by {crl.issuer.rfc4514_string()}, not by the leaf's issuer")
    try:
        valid = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise Unusable(f"{source}: its signature does not verify with the issuer's key")
    if crl.last_update_utc.timestamp() > now + SKEW:
        raise Unusable(f"{source} is not valid before {iso(crl.last_update_utc.timestamp())}")
    next_update = crl.next_update_utc.timestamp() if crl.next_update_utc is not None else None
    if next_update is not None and next_update < now - SKEW:
        raise Unusable(f"{source} is stale: its next update was due {iso(next_update)}")
    return crl, min(now + KEEP, next_update) if next_update is not None and next_update > now else now + KEEP


def judged_crl(der: bytes, leaf: x509.Certificate, issuer: x509.Certificate, now: float, source: str) -> Revocation:
    """What a CRL says of ``leaf``, once :func:`verified` (raises Unusable as it does)."""
    crl, until = verified(der, issuer, now, source)
    return judged(crl, until, leaf, now, source)


def judged(crl: x509.CertificateRevocationList, until: float, leaf: x509.Certificate, now: float,
           source: str) -> Revocation:
    """What a verified CRL says of ``leaf``: revoked when it lists its serial."""
    from cryptography import x509

    entry = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
    if entry is None:
        return Revocation("good", f"good, per {source}", until)
    try:
        reason = f" ({entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value})"
    except (x509.ExtensionNotFound, ValueError):
        reason = ""
    return Revocation("revoked", f"certificate {leaf.subject.rfc4514_string()} (serial {leaf.serial_number:x}) was "
                                 f"revoked at {iso(entry.revocation_date_utc.timestamp())}{reason}, per {source}",
                      now + KEEP)
