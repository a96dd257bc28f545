"""PostgreSQL probe: connect (and authenticate), run a query, read the version, role and read-only state.

The checker must never be what takes a database down. Every query carries server-side limits
below the check's timeout (``statement_timeout`` and ``lock_timeout``, set when connecting),
so a slow query or a lock wait is ended by the server itself; and a check that ends while
its query still runs closes its connection politely in the background, which makes asyncpg
send the server a cancel request first (closing abruptly would drop it and leave the query
running).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

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
    host_port,
    server_words,
)
from ._kept import Kept
from ._tls import client_context

__all__ = ["PostgresOptions", "PostgresProbe"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]_/]{1,253}$")
# Server-side limits, as shares of the check's timeout: a lock wait ends first with its own reason.
_STATEMENT_SHARE = 0.9
_LOCK_SHARE = 0.8
_GOODBYE = 2.0  # seconds a polite close (with its cancel request) may take, in the background
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True, slots=True)
class PostgresOptions(PasswordOptions):
    host: str
    port: int = 5432
    database: str = "postgres"
    user: str = "postgres"
    password: Secret | None = None
    sslmode: str = "prefer"
    ca_file: Path | None = None
    query: str = "SELECT 1"
    expect: str | None = None
    reuse_connection: bool = False

    @classmethod
    def parse(cls, f: Fields) -> PostgresOptions | None:
        host = f.text("host", required=True, pattern=_HOST_RE, hint="use a host name, an IP address or a socket dir")
        sslmode = f.text("sslmode", "prefer", choices=_SSLMODES)
        ca_file = f.path("ca_file")  # verify-ca / verify-full without it use the system's trust store
        options = cls(
            host=host or "",
            port=f.whole("port", 5432, minimum=1, maximum=65535),
            database=f.text("database", "postgres"),
            user=f.text("user", "postgres"),
            password=f.secret("password"),
            sslmode=sslmode,
            ca_file=ca_file,
            query=f.text("query", "SELECT 1"),
            expect=f.text("expect"),
            reuse_connection=f.flag("reuse_connection", False),
        )
        return options if host else None

    def where(self) -> str:
        return f"{host_port(self.host, self.port)}/{self.database}"

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "database": self.database, "user": self.user,
                "password": self.password.source if self.password else None, "sslmode": self.sslmode,
                "query": self.query, "expect": self.expect, "reuse_connection": self.reuse_connection}


def _ssl(o: PostgresOptions) -> Any:
    if o.sslmode in ("disable", "allow", "prefer"):
        return o.sslmode if o.sslmode != "disable" else False
    return client_context(verify=o.sslmode != "require", check_hostname=o.sslmode == "verify-full",
                          ca_file=o.ca_file)


async def _terminate(conn: asyncpg.Connection) -> None:
    # close() says goodbye politely but waits on the server; terminate() never waits.
    conn.terminate()


async def _close_politely(conn: asyncpg.Connection) -> None:
    try:
        await conn.close(timeout=_GOODBYE)  # first delivers the cancel request of a query cut short
    except Exception:  # noqa: BLE001 - close() aborted the connection itself; nothing is left to do
        conn.terminate()


def _limit(timeout: float, share: float) -> str:
    return f"{max(1, int(timeout * share * 1000))}ms"


class PostgresProbe(Probe):
    kind = "postgres"
    component_type = "datastore"
    check_name = "connectivity"
    info_labels = ("role", "read_only")
    options_type = PostgresOptions
    schemes = ("postgres", "postgresql")

    def __init__(self, settings: ProbeSettings) -> None:
        super().__init__(settings)
        self._closing: set[asyncio.Task[None]] = set()
        self._kept: Kept[asyncpg.Connection] = Kept(_terminate, usable=lambda conn: not conn.is_closed(),
                                                    close_after_failure=self._let_go)

    async def _let_go(self, conn: asyncpg.Connection) -> None:
        """After a failed check: close in the background, so the check costs its timeout only."""
        if conn.is_closed():
            return
        task = asyncio.get_running_loop().create_task(_close_politely(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @classmethod
    def options_from_url(cls, url: str) -> PostgresOptions:
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError("a PostgreSQL URL needs a host: postgresql://[USER:PASSWORD@]HOST[:PORT][/DATABASE]")
        query = parse_qs(parts.query)
        sslmode = query.get("sslmode", ["prefer"])[0]
        if sslmode not in _SSLMODES:
            raise ValueError(f"sslmode must be one of {', '.join(_SSLMODES)}")
        return PostgresOptions(
            host=parts.hostname, port=parts.port or 5432, database=unquote(parts.path.strip("/")) or "postgres",
            user=unquote(parts.username) if parts.username else "postgres",
            password=Secret(unquote(parts.password), "url") if parts.password else None, sslmode=sslmode,
        )

    async def _check(self, target: Target, attempt: Attempt) -> None:
        o: PostgresOptions = target.options
        attributes: dict[str, str | int] = {"db.system.name": "postgresql", "server.address": o.host,
                                            "server.port": o.port, "db.namespace": o.database}
        # The server-side limits are set when connecting: a kept connection is for one timeout.
        async with self._kept.session(target.key, (o, target.timeout), keep=o.reuse_connection) as held:
            if held.conn is None:
                with self.step(attempt, "connect", "connect", attributes):
                    held.conn = await self._connect(o, target.timeout)
            conn = held.conn
            operation = o.query.split(None, 1)[0].upper() if o.query.strip() else "SELECT"
            with self.step(attempt, "query", operation, {**attributes, "db.operation.name": operation}):
                value = await conn.fetchval(o.query)
                version, in_recovery, read_only = await conn.fetchrow(
                    "SELECT current_setting('server_version'), pg_is_in_recovery(),"
                    " current_setting('default_transaction_read_only')")
            if o.expect is not None and str(value) != o.expect:
                raise ProbeFailure(ErrorType.ASSERTION, f"query returned {str(value)[:80]!r}, expected {o.expect!r}")
            attempt.version = str(version).split(" ", 1)[0]
            attempt.info["role"] = "replica" if in_recovery else "primary"
            attempt.info["read_only"] = "true" if in_recovery or read_only == "on" else "false"

    async def _connect(self, o: PostgresOptions, timeout: float) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(
                host=o.host, port=o.port, user=o.user, database=o.database,
                password=o.password.reveal() if o.password else None, ssl=_ssl(o),
                timeout=timeout, command_timeout=timeout, statement_cache_size=0,
                server_settings={"application_name": "otel-health",
                                 "statement_timeout": _limit(timeout, _STATEMENT_SHARE),
                                 "lock_timeout": _limit(timeout, _LOCK_SHARE)},
            )
        except asyncpg.exceptions.ConnectionDoesNotExistError:
            raise ProbeFailure(ErrorType.PROTOCOL, "the server closed the connection during the PostgreSQL "
                                                   "handshake; is it a PostgreSQL server?") from None

    async def retain(self, live: set[tuple[str, str]]) -> None:
        await self._kept.retain(live)

    async def close(self) -> None:
        await self._kept.close()
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=_GOODBYE + 0.5)

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        return classify(exc, _RULES) or classify_os_error(exc)


_NOT_POSTGRES = "the peer does not speak the PostgreSQL protocol"
_RULES: tuple[Rule, ...] = (
    (asyncpg.InvalidPasswordError, ErrorType.AUTH, lambda e: f"authentication failed: {server_words(str(e))}"),
    # pg_hba.conf rejects the connection (host, user, database, SSL), or the role may not log in
    (asyncpg.InvalidAuthorizationSpecificationError, ErrorType.AUTH,
     lambda e: f"login refused: {server_words(str(e))}"),
    (asyncpg.exceptions.QueryCanceledError, ErrorType.TIMEOUT,
     lambda e: "the server ended the query at its statement_timeout, below the check's timeout "
               f"({server_words(str(e))})"),
    (asyncpg.exceptions.LockNotAvailableError, ErrorType.TIMEOUT,
     lambda e: f"the query waited for a lock past its lock_timeout ({server_words(str(e))})"),
    (asyncpg.InvalidCatalogNameError, ErrorType.DATABASE_MISSING, "the database does not exist"),
    (asyncpg.TooManyConnectionsError, ErrorType.TOO_MANY_CONNECTIONS, "the server has no free connection slots"),
    (asyncpg.CannotConnectNowError, ErrorType.LOADING, "the server is starting up or shutting down"),
    ((asyncpg.exceptions.ConnectionDoesNotExistError, ConnectionResetError), ErrorType.CONNECTION_RESET,
     "the server closed the connection"),
    (asyncpg.PostgresError, ErrorType.ASSERTION, lambda e: f"query failed: {type(e).__name__} (SQLSTATE {e.sqlstate})"),
    ((asyncpg.exceptions.InterfaceError, asyncpg.exceptions.ProtocolError), ErrorType.PROTOCOL,
     lambda e: f"{_NOT_POSTGRES} ({type(e).__name__})"),
)
