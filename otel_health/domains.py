"""When a domain's registration expires, from its registry's RDAP service (RFC 9082, 9083).

The registry is found in IANA's bootstrap file (RFC 9224): the service of the longest suffix of
the name that the file lists. The registered domain is the longest of the name's parents (the
name itself first) that the registry knows: ``api.eu.example.co.uk`` asks for itself, then
``eu.example.co.uk``, then ``example.co.uk``, stopping at the first answer that is not 404, so
no public suffix list is needed. Each name is looked up once a day (an hour after a failure),
never per check; the bootstrap file is read again daily. No WHOIS.

Nothing here runs on a check's path: the collector refreshes what is due in the background,
and the expiry is served as ``tta_service_domain_expiry_timestamp_seconds``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .logs import event

log = logging.getLogger("otel_health")

__all__ = ["BOOTSTRAP_URL", "Domains", "Lookup", "expiration", "parents", "service_for"]

BOOTSTRAP_URL = "https://data.iana.org/rdap/dns.json"
TICK = 60.0             # seconds between looks for names due a lookup
REFRESH = 86400.0        # a name's registration, looked up again after a day
RETRY = 3600.0           # after a failed lookup, an hour
_TIMEOUT = 10.0          # seconds one request may take
_MAX_ANSWER = 1 << 20    # bytes of an answer read, at most
_MAX_PARENTS = 5         # names asked for before the registry is said to know none of them
_AT_ONCE = 4             # lookups in flight


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the registry said of a name: when its registration expires (Unix time), the
    domain it is registered as, or why nothing is known."""

    name: str
    expires: float | None = None
    domain: str | None = None
    error: str | None = None


def service_for(name: str, bootstrap: dict[str, str]) -> tuple[str, str] | None:
    """(suffix, RDAP base URL) of the longest suffix of ``name`` the bootstrap lists."""
    labels = name.lower().rstrip(".").split(".")
    for i in range(len(labels)):
        suffix = ".".join(labels[i:])
        if suffix in bootstrap:
            return suffix, bootstrap[suffix]
    return None


def parents(name: str, suffix: str) -> list[str]:
    """``name`` and its parents above ``suffix``, the longest first, at most ``_MAX_PARENTS``
    (the shortest kept: a registry's domains are the names one label above its suffix)."""
    labels = name.lower().rstrip(".").split(".")
    above = len(labels) - len(suffix.split("."))
    names = [".".join(labels[i:]) for i in range(above)]
    return names[-_MAX_PARENTS:]


def read_bootstrap(document: Any) -> dict[str, str]:
    """suffix -> base URL (ending in '/') from IANA's dns.json, the https URL where there is one."""
    table: dict[str, str] = {}
    services = document.get("services") if isinstance(document, dict) else None
    for entry in services if isinstance(services, list) else ():
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(p, list) for p in entry)):
            continue
        urls = [u for u in entry[1] if isinstance(u, str) and u.startswith(("https://", "http://"))]
        if not urls:
            continue
        url = next((u for u in urls if u.startswith("https://")), urls[0])
        for suffix in entry[0]:
            if isinstance(suffix, str) and suffix:
                table[suffix.lower().rstrip(".")] = url if url.endswith("/") else url + "/"
    return table


def expiration(answer: Any) -> tuple[float | None, str | None]:
    """(the Unix time of the domain object's 'expiration' event, its ldhName) of an RDAP answer."""
    if not isinstance(answer, dict):
        return None, None
    domain = answer.get("ldhName") if isinstance(answer.get("ldhName"), str) else None
    for happened in answer.get("events") or ():
        if isinstance(happened, dict) and happened.get("eventAction") == "expiration":
            try:
                when = datetime.fromisoformat(str(happened.get("eventDate")))
            except ValueError:
                return None, domain
            return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp(), domain
    return None, domain


class Domains:
    """The registrations of the names asked for, each refreshed when due."""

    def __init__(self, bootstrap_url: str = BOOTSTRAP_URL, *, user_agent: str = "otel-health",
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.bootstrap_url = bootstrap_url
        self._user_agent = user_agent
        self._monotonic = monotonic
        self._bootstrap: dict[str, str] | None = None
        self._bootstrap_due = 0.0
        self._known: dict[str, Lookup] = {}
        self._due: dict[str, float] = {}

    def known(self, name: str) -> Lookup | None:
        return self._known.get(name)

    @property
    def watching(self) -> bool:
        """Whether any name is held (a reload that removed the last one lets them go)."""
        return bool(self._known)

    def point_to(self, bootstrap_url: str) -> None:
        """Read the registries from ``bootstrap_url`` from now on (a reload may change it)."""
        if bootstrap_url != self.bootstrap_url:
            self.bootstrap_url, self._bootstrap, self._bootstrap_due = bootstrap_url, None, 0.0
            self._due.clear()

    async def watch(self, config: Callable[[], Any], session: Callable[[], Any],
                    states: Callable[[], Iterable[Any]]) -> None:
        """Forever: look up the names the configuration's targets watch when they are due, and
        give each target state its domain's expiry."""
        while True:
            names = {t.domain_expiry for t in config().targets if t.domain_expiry is not None}
            if names or self.watching:
                self.point_to(config().rdap_bootstrap_url)
                for lookup in await self.refresh(names, session()):
                    if lookup.error is not None:
                        event(log, logging.WARNING, "domain_lookup_failed", domain=lookup.name, reason=lookup.error)
                self.fill(states())
            await asyncio.sleep(TICK)

    def fill(self, states: Iterable[Any]) -> None:
        """Each target state's domain registration expiry and registered domain, as last looked up."""
        for state in states:
            name = state.target.domain_expiry
            lookup = self._known.get(name) if name is not None else None
            state.domain_expiry = lookup.expires if lookup is not None else None
            state.domain = lookup.domain.lower() if lookup is not None and lookup.domain else name

    async def refresh(self, names: Collection[str], session: Any) -> list[Lookup]:
        """Look up the names that are due (at most ``_AT_ONCE`` at a time); forget the others.
        Returns the lookups made."""
        for gone in set(self._known) - set(names):
            self._known.pop(gone, None)
            self._due.pop(gone, None)
        now = self._monotonic()
        due = sorted(name for name in names if self._due.get(name, 0.0) <= now)
        if not due:
            return []
        bootstrap = await self._read_bootstrap(session, now)
        gate = asyncio.Semaphore(_AT_ONCE)
        asked: dict[str, asyncio.Future[tuple[int | str, Any]]] = {}  # a URL is asked once a round

        async def get(url: str) -> tuple[int | str, Any]:
            if url not in asked:
                asked[url] = asyncio.ensure_future(self._get(session, url))
            return await asked[url]

        async def one(name: str) -> Lookup:
            async with gate:
                lookup = await self._lookup(name, bootstrap, get)
            old = self._known.get(name)
            if lookup.error is not None and old is not None and old.expires is not None:
                lookup = Lookup(name, old.expires, old.domain, lookup.error)  # the last known date stays
            self._known[name] = lookup
            self._due[name] = self._monotonic() + (RETRY if lookup.error is not None else REFRESH)
            return lookup

        return list(await asyncio.gather(*(one(name) for name in due)))

    async def _read_bootstrap(self, session: Any, now: float) -> dict[str, str] | str:
        if self._bootstrap is not None and now < self._bootstrap_due:
            return self._bootstrap
        status, document = await self._get(session, self.bootstrap_url)
        table = read_bootstrap(document) if status == 200 else {}
        if not table:
            self._bootstrap_due = now + RETRY
            why = f"answered {status}" if isinstance(status, int) and status != 200 else (
                status if isinstance(status, str) else "lists no services")
            return self._bootstrap or f"the RDAP bootstrap {self.bootstrap_url} {why}"
        self._bootstrap, self._bootstrap_due = table, now + REFRESH
        return table

    async def _lookup(self, name: str, bootstrap: dict[str, str] | str,
                      get: Callable[[str], Awaitable[tuple[int | str, Any]]]) -> Lookup:
        if isinstance(bootstrap, str):
            return Lookup(name, error=bootstrap)
        found = service_for(name, bootstrap)
        if found is None:
            return Lookup(name, error=f"no RDAP service for {name} in the bootstrap (its TLD has none)")
        suffix, base = found
        for candidate in parents(name, suffix):
            status, answer = await get(f"{base}domain/{candidate}")
            if status == 404:
                continue
            if status != 200:
                said = status if isinstance(status, str) else f"answered {status}"
                return Lookup(name, error=f"the RDAP service for .{suffix} ({base}) {said} for {candidate}")
            expires, domain = expiration(answer)
            if expires is None:
                return Lookup(name, domain=domain or candidate,
                              error=f"the registry of .{suffix} gives no expiration date for {domain or candidate}")
            return Lookup(name, expires, domain or candidate)
        return Lookup(name, error=f"the registry of .{suffix} knows no domain {name} is in")

    async def _get(self, session: Any, url: str) -> tuple[int | str, Any]:
        """(status, parsed JSON or None), or (why, None) when nothing usable came."""
        import aiohttp

        try:
            async with asyncio.timeout(_TIMEOUT):
                async with session.get(url, headers={"Accept": "application/rdap+json, application/json",
                                                     "User-Agent": self._user_agent},
                                       allow_redirects=True, max_redirects=3) as response:
                    if response.status != 200:
                        return response.status, None
                    body = await response.content.read(_MAX_ANSWER + 1)
        except TimeoutError:
            return f"did not answer within {_TIMEOUT:g}s", None
        except (aiohttp.ClientError, OSError) as exc:
            return f"could not be reached ({type(exc).__name__})", None
        if len(body) > _MAX_ANSWER:
            return f"answered over {_MAX_ANSWER} bytes", None
        try:
            return 200, json.loads(body)
        except ValueError:
            return "answered what is not JSON", None
