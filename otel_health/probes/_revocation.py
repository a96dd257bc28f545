"""Whether a TLS peer's certificate is revoked, for every TLS kind: by OCSP (``_ocsp``) or by
the issuer's CRL (``_crl``).

``check_revocation``: ``stapled`` reads the OCSP response the server staples, asked for in a
handshake of its own (Python's ssl module cannot ask for one in the check's handshake;
pyOpenSSL, over the event loop, does); ``ocsp`` also asks the OCSP responder the certificate
names when nothing usable is stapled (or none can be asked for: after STARTTLS, through a
proxy, over QUIC); ``crl`` reads the CRL the certificate names; ``auto`` tries the staple,
the responder, then the CRL, and takes the first that says something usable.

What is learned is kept per certificate until the response's (or the CRL's) nextUpdate, an
hour at most (five minutes when nothing could be learned), so checks every few seconds cost
the server one more handshake, and the responder one request, an hour. Learning it may take
:data:`_SHARE` of the time the check has left. A revoked certificate fails the check
(``revoked``); a status that could not be learned fails it only with ``revocation_unknown:
down`` (``tls``): by default it is a warning, the ``tls_revocation="unknown"`` label of
``tta_service_info``, as browsers soft-fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from ..config import Fields
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, Probe, classify_os_error
from ._chain import ChainReport
from ._crl import Crls, crl_of
from ._messages import Request, Timings
from ._ocsp import KEEP, Revocation, StapleAt, Unusable, judged_response, responder_of, stapled
from ._tls import client_context

if TYPE_CHECKING:
    from cryptography import x509

    from ..clock import Clock
    from ._client import HttpClient
    from ._proxy import Proxies

__all__ = ["MODES", "UNKNOWN_MODES", "Revocation", "Revocations", "StapleAt", "TlsProbe", "parse_revocation"]

MODES = ("off", "stapled", "ocsp", "crl", "auto")
UNKNOWN_MODES = ("warn", "down")
KEEP_UNKNOWN = 300.0   # a status none could be learned of is asked again after five minutes
MAX_RESPONSE = 64 * 1024
_MAX_KNOWN = 10_000    # certificates remembered, a few hundred bytes each
_SHARE = 0.8           # of the check's time left, what learning a status may take


class _Step(Protocol):
    def __call__(self, attempt: Attempt, phase: str, span_name: str,
                 attributes: Mapping[str, str | int]) -> AbstractContextManager[Any]: ...


def parse_revocation(f: Fields, tls: bool, fix: str) -> tuple[str, str]:
    """``check_revocation`` and ``revocation_unknown`` of a TLS kind's options; ``tls``: whether
    the target speaks TLS, ``fix``: how to make it when it does not."""
    mode = f.text("check_revocation", "off", choices=MODES) or "off"
    unknown = f.text("revocation_unknown", "warn", choices=UNKNOWN_MODES) or "warn"
    if mode != "off" and not tls:
        f.problem("check_revocation", f"needs TLS: {fix}")
    if f.has("revocation_unknown") and mode == "off":
        f.problem("revocation_unknown", "says what an unknown revocation status does, but check_revocation is "
                                        "off; set check_revocation (auto, ocsp, stapled or crl), or remove it")
    return mode, unknown


class TlsProbe(Probe):
    """A kind that speaks TLS: the revocation statuses its checks learned, kept and closed with it."""

    _revocations: Revocations | None = None

    async def judge_revocation(self, attempt: Attempt, chain: ChainReport, mode: str, unknown: str, *,
                               staple_at: StapleAt | None, proxies: Proxies | None,
                               attributes: Mapping[str, str | int]) -> None:
        """The leaf's revocation status (see :meth:`Revocations.judge`), in the check's time."""
        if self._revocations is None:
            self._revocations = Revocations(self.settings.clock, self.settings.user_agent)
        await self._revocations.judge(self.step, attempt, chain, mode, unknown, staple_at=staple_at, proxies=proxies,
                                      attributes=attributes, deadline=attempt.deadline)

    async def close(self) -> None:
        if self._revocations is not None:
            await self._revocations.close()
            self._revocations = None
        await super().close()


class Revocations:
    """What a probe learned of each certificate's revocation (by its DER and the way asked),
    until due again."""

    def __init__(self, clock: Clock, user_agent: str) -> None:
        self._clock = clock
        self._user_agent = user_agent
        self._known: dict[tuple[bytes, str], Revocation] = {}
        self._client: HttpClient | None = None
        self._crls: Crls | None = None

    async def close(self) -> None:
        if self._crls is not None:
            await self._crls.close()
            self._crls = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def judge(self, step: _Step, attempt: Attempt, report: ChainReport, mode: str, unknown: str, *,
                    staple_at: StapleAt | None, proxies: Proxies | None, attributes: Mapping[str, str | int],
                    deadline: float) -> None:
        """Learn (or recall) the leaf's status; a revoked one raises ``revoked``, an unknown one
        ``tls`` when ``unknown`` is "down". ``deadline``: the check's, on ``time.perf_counter``."""
        key = (report.chain[0], mode)
        known, now = self._known.get(key), self._clock()
        # due again, or learned at a time the clock has since been set back from
        if known is None or not 0 < known.until - now <= KEEP:
            with step(attempt, "revocation", "revocation", {**attributes, "tta.tls.revocation.mode": mode}) as span:
                budget = (deadline - time.perf_counter()) * _SHARE
                known = await self._learn(report, mode, staple_at, proxies, budget)
                span.set_attribute("tta.tls.revocation.status", known.state)
                span.set_attribute("tta.tls.revocation.detail", known.detail)
            self._known.pop(key, None)
            if len(self._known) >= _MAX_KNOWN:
                del self._known[next(iter(self._known))]
            self._known[key] = known
        attempt.info["tls_revocation"] = known.state
        if known.state == "revoked":
            raise ProbeFailure(ErrorType.REVOKED, known.detail)
        if known.state == "unknown" and unknown == "down":
            raise ProbeFailure(ErrorType.TLS, f"revocation status unknown: {known.detail}")

    async def _learn(self, report: ChainReport, mode: str, staple_at: StapleAt | None, proxies: Proxies | None,
                     budget: float) -> Revocation:
        now = self._clock()
        leaf, issuer = report.leaf, report.leaf_issuer
        if leaf is None or issuer is None:
            return _unknown(now, f"the chain presented holds no certificate of the leaf's issuer ({report.issuer}), "
                                 "which a revocation check needs")
        if budget <= 0.01:
            return _unknown(now, "the check had no time left to learn it")
        why: list[str] = []  # what each way tried said, when it said nothing usable
        source = ""
        try:
            async with asyncio.timeout(budget):
                if mode in ("stapled", "ocsp", "auto"):
                    if staple_at is None:
                        why.append("no stapled response can be asked for here (STARTTLS, a proxy or QUIC)")
                    else:
                        source = "the handshake asking for a stapled response"
                        with _said(why, source):
                            der = await stapled(staple_at)
                            if der:
                                return judged_response(der, leaf, issuer, now, "the stapled OCSP response")
                            why.append("the server staples no OCSP response")
                if mode in ("ocsp", "auto"):
                    url = responder_of(leaf)
                    if url is None:
                        why.append("the certificate names no OCSP responder")
                    else:
                        source = f"the OCSP responder {url}"
                        with _said(why, source):
                            return judged_response(await self._ask(url, leaf, issuer, proxies, source), leaf,
                                                   issuer, now, source)
                if mode in ("crl", "auto"):
                    url = crl_of(leaf)
                    if url is None:
                        why.append("the certificate names no CRL")
                    else:
                        source = f"the CRL {url}"
                        with _said(why, source):
                            return await self._crl_list().status(url, leaf, issuer, proxies, now)
        except TimeoutError:
            why.append(f"{source}: no answer within {budget:.2g}s")
        return _unknown(now, "; ".join(why))

    def _http(self) -> HttpClient:
        if self._client is None:
            from ._client import HttpClient

            self._client = HttpClient()
        return self._client

    def _crl_list(self) -> Crls:
        if self._crls is None:
            self._crls = Crls(self._http(), self._user_agent)
        return self._crls

    async def _ask(self, url: str, leaf: x509.Certificate, issuer: x509.Certificate, proxies: Proxies | None,
                   source: str) -> bytes:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509 import ocsp

        # SHA-1 names the certificate (RFC 6960's CertID), as every client does: responders expect it
        asked = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()  # noqa: S303
        request = Request(url=url, method="POST", body=asked.public_bytes(serialization.Encoding.DER),
                          headers=(("User-Agent", self._user_agent), ("Content-Type", "application/ocsp-request"),
                                   ("Accept", "application/ocsp-response")),
                          context=functools.partial(client_context), max_body=MAX_RESPONSE, proxies=proxies)
        response = await self._http().fetch(request, Timings())
        if response.status != 200:
            raise Unusable(f"{source} answered HTTP {response.status}")
        if response.truncated:
            raise Unusable(f"{source} answered more than {MAX_RESPONSE // 1024} KiB")
        return response.body


@contextlib.contextmanager
def _said(why: list[str], source: str) -> Iterator[None]:
    """What a way of learning the status said, when it failed: appended to ``why``."""
    try:
        yield
    except Unusable as exc:
        why.append(str(exc))
    except (ProbeFailure, OSError) as exc:
        why.append(f"{source}: {classify_os_error(exc)[1]}")


def _unknown(now: float, detail: str) -> Revocation:
    return Revocation("unknown", detail, now + KEEP_UNKNOWN)

