"""Neo4j probe: connect and authenticate over Bolt, then ``CALL dbms.components()``.

After an authentication failure, or the server's refusal to try one more login
(``AuthenticationRateLimit``), the probe backs off for that target (the longer of its
interval and 10 s, doubling up to 15 minutes) instead of trying again every interval: Neo4j
locks an account after a few failed logins, and a stale password must not keep it locked.

``ca_file`` trusts a private CA: with ``bolt://`` or ``neo4j://`` the connection is then
encrypted and verified against it (the ``+s`` schemes use the system's trust store, ``+ssc``
trusts any certificate).
"""

from __future__ import annotations

import logging
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import neo4j
from neo4j import exceptions as nexc

from .. import __version__
from .._redact import redact_url
from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import (
    Attempt,
    PasswordOptions,
    Probe,
    ProbeSettings,
    Rule,
    classify,
    classify_os_error,
    close_within,
    closes_finished,
    os_cause,
    server_words,
)
from ._kept import Kept

__all__ = ["Neo4jOptions", "Neo4jProbe"]

_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")
# Neo4j locks an account for 5 s (auth_lock_time) after a few failed logins: wait longer.
_BACKOFF_FIRST = 10.0
_BACKOFF_MAX = 900.0


@dataclass(frozen=True, slots=True)
class Neo4jOptions(PasswordOptions):
    uri: str
    user: str = "neo4j"
    password: Secret | None = None
    database: str | None = None
    reuse_connection: bool = False
    ca_file: Path | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.uri).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.uri).port or 7687

    @classmethod
    def parse(cls, f: Fields) -> Neo4jOptions | None:
        uri = f.text("uri", required=True)
        if uri is not None:
            parts = urlsplit(uri)
            if parts.scheme not in _SCHEMES or not parts.hostname:
                f.problem("uri", f"must be a Bolt URI such as bolt://HOST:7687 (schemes: {', '.join(_SCHEMES)})")
                uri = None
            elif parts.username or parts.password:
                f.problem("uri", "must not hold credentials; use 'user' and 'password: ${ENV_VAR}'")
                uri = None
        ca_file = f.path("ca_file")
        if ca_file is not None and uri and "+" in urlsplit(uri).scheme:
            f.problem("ca_file", "goes with bolt:// or neo4j:// (TLS is then on, trusting that CA); "
                                 "the +s and +ssc schemes choose their own trust")
        options = cls(
            uri=uri or "",
            user=f.text("user", "neo4j"),
            password=f.secret("password"),
            database=f.text("database"),
            reuse_connection=f.flag("reuse_connection", False),
            ca_file=ca_file,
        )
        return options if uri else None

    def where(self) -> str:
        uri = redact_url(self.uri)
        return f"{uri} database {self.database}" if self.database else uri

    def public(self) -> dict[str, Any]:
        return {"uri": self.uri, "user": self.user, "password": self.password.source if self.password else None,
                "database": self.database, "reuse_connection": self.reuse_connection,
                "ca_file": str(self.ca_file) if self.ca_file is not None else None}


@dataclass(slots=True)
class _Backoff:
    options: Neo4jOptions
    failures: int
    until: float


class Neo4jProbe(Probe):
    kind = "neo4j"
    component_type = "datastore"
    check_name = "connectivity"
    info_labels = ("edition",)
    options_type = Neo4jOptions
    schemes = _SCHEMES

    def __init__(self, settings: ProbeSettings, clock: Any = time.monotonic) -> None:
        super().__init__(settings)
        # The driver logs what it then raises ("Unable to retrieve routing information"); the
        # check reports it once, as its result, and nothing reaches stderr behind our back.
        driver_log = logging.getLogger("neo4j")
        if not any(isinstance(h, logging.NullHandler) for h in driver_log.handlers):
            driver_log.addHandler(logging.NullHandler())
        driver_log.propagate = False
        self._clock = clock
        self._backoff: dict[tuple[str, str], _Backoff] = {}
        self._kept: Kept[neo4j.AsyncDriver] = Kept(lambda driver: close_within(driver.close()))

    @classmethod
    def options_from_url(cls, url: str) -> Neo4jOptions:
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError("a Neo4j URL needs a host: bolt://[USER:PASSWORD@]HOST[:PORT]")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        return Neo4jOptions(
            uri=parts._replace(netloc=netloc, path="").geturl(),
            user=unquote(parts.username) if parts.username else "neo4j",
            password=Secret(unquote(parts.password), "url") if parts.password else None,
            database=unquote(parts.path.strip("/")) or None,
        )

    def _driver(self, o: Neo4jOptions, timeout: float) -> neo4j.AsyncDriver:
        trust: dict[str, Any] = {}
        if o.ca_file is not None:
            trust = {"encrypted": True, "trusted_certificates": neo4j.TrustCustomCAs(str(o.ca_file))}
        return neo4j.AsyncGraphDatabase.driver(
            o.uri, auth=(o.user, o.password.reveal() if o.password else ""),
            connection_timeout=timeout, connection_acquisition_timeout=timeout, max_connection_pool_size=1,
            max_transaction_retry_time=0, user_agent=f"otel-health/{__version__}", **trust,
        )

    async def _check(self, target: Target, attempt: Attempt) -> None:
        o: Neo4jOptions = target.options
        backoff = self._backoff.get(target.key)
        if backoff is not None and backoff.options == o and self._clock() < backoff.until:
            wait = backoff.until - self._clock()
            raise ProbeFailure(ErrorType.AUTH, f"not tried: authentication failed before; next try in {wait:.0f}s "
                                               "(backing off so a stale password does not lock the account)")
        attributes: dict[str, str | int] = {"db.system.name": "neo4j", "server.address": o.host,
                                            "server.port": o.port}
        if o.database:
            attributes["db.namespace"] = o.database
        try:
            async with self._kept.session(target.key, o, keep=o.reuse_connection) as held:
                if held.conn is None:
                    held.conn = self._driver(o, target.timeout)
                    with self.step(attempt, "connect", "connect", attributes):
                        await held.conn.verify_connectivity()
                with self.step(attempt, "query", "CALL dbms.components",
                               {**attributes, "db.operation.name": "CALL"}):
                    records, _, _ = await held.conn.execute_query(
                        "CALL dbms.components() YIELD name, versions, edition RETURN name, versions, edition",
                        database_=o.database, routing_=neo4j.RoutingControl.READ)
        except nexc.Neo4jError as exc:
            if not _refused_login(exc):
                raise
            previous = self._backoff.get(target.key)
            failures = previous.failures + 1 if previous is not None and previous.options == o else 1
            delay = min(max(target.interval, _BACKOFF_FIRST) * 2 ** (failures - 1), _BACKOFF_MAX)
            self._backoff[target.key] = _Backoff(o, failures, self._clock() + delay)
            raise
        self._backoff.pop(target.key, None)
        for record in records:
            if record["name"] == "Neo4j Kernel":
                attempt.version = str(record["versions"][0]) if record["versions"] else None
                attempt.info["edition"] = str(record["edition"])

    async def retain(self, live: set[tuple[str, str]]) -> None:
        for key in [k for k in self._backoff if k not in live]:
            del self._backoff[key]
        await self._kept.retain(live)

    async def close(self) -> None:
        await self._kept.close()
        await closes_finished()

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        cause = os_cause(exc)
        if isinstance(cause, ssl.SSLError):  # also behind the +s routing schemes' "no routing information"
            return classify_os_error(cause)
        if isinstance(exc, nexc.Neo4jError) and exc.code == _RATE_LIMITED:
            return ErrorType.AUTH, ("the server refuses logins for now after too many failed ones "
                                    f"(AuthenticationRateLimit): {server_words(exc.message or '')}")
        if isinstance(exc, nexc.ClientError) and _is_database_missing(exc.code or ""):
            return ErrorType.DATABASE_MISSING, "the database does not exist"
        if isinstance(exc, nexc.ServiceUnavailable | nexc.SessionExpired):
            if cause is not None:
                return classify_os_error(cause)
            return ErrorType.PROTOCOL, "the peer does not answer as a Bolt server"
        return classify(exc, _RULES) or classify_os_error(exc)


_RATE_LIMITED = "Neo.ClientError.Security.AuthenticationRateLimit"


def _refused_login(exc: nexc.Neo4jError) -> bool:
    return isinstance(exc, nexc.AuthError) or exc.code == _RATE_LIMITED


def _is_database_missing(code: str) -> bool:
    code = code.lower()
    return "database" in code and "notfound" in code.replace(".", "")


_RULES: tuple[Rule, ...] = (
    (nexc.AuthError, ErrorType.AUTH, lambda e: f"authentication failed: {server_words(e.message or '')}"),
    (nexc.DatabaseUnavailable, ErrorType.LOADING, "the database is unavailable (starting, stopping or offline)"),
    (nexc.Neo4jError, ErrorType.ASSERTION, lambda e: f"query failed: {e.code or type(e).__name__}"),
    (nexc.DriverError, ErrorType.PROTOCOL, lambda e: f"Bolt error: {type(e).__name__}"),
)
