"""PostgreSQL probe: connect (and authenticate), run a query, read the version and role."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, Probe, ProbeSettings, classify_os_error
from ._kept import Kept

__all__ = ["PostgresOptions", "PostgresProbe"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]_/]{1,253}$")
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True, slots=True)
class PostgresOptions:
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

    def secrets(self) -> Iterator[Secret]:
        if self.password is not None:
            yield self.password

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "database": self.database, "user": self.user,
                "password": self.password.source if self.password else None, "sslmode": self.sslmode,
                "query": self.query, "expect": self.expect, "reuse_connection": self.reuse_connection}


def _ssl(o: PostgresOptions) -> Any:
    if o.sslmode in ("disable", "allow", "prefer"):
        return o.sslmode if o.sslmode != "disable" else False
    context = ssl.create_default_context(cafile=str(o.ca_file) if o.ca_file else None)
    if o.sslmode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif o.sslmode == "verify-ca":
        context.check_hostname = False
    return context


async def _terminate(conn: asyncpg.Connection) -> None:
    conn.terminate()


class PostgresProbe(Probe):
    kind = "postgres"
    options_type = PostgresOptions
    schemes = ("postgres", "postgresql")

    def __init__(self, settings: ProbeSettings) -> None:
        super().__init__(settings)
        self._kept: Kept[asyncpg.Connection] = Kept(_terminate)

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
        conn = await self._kept.take(target.key, o) if o.reuse_connection else None
        if conn is not None and conn.is_closed():
            conn = None
        ok = False
        try:
            if conn is None:
                with self.step(attempt, "connect", "connect", attributes):
                    conn = await self._connect(o, target.timeout)
            operation = o.query.split(None, 1)[0].upper() if o.query.strip() else "SELECT"
            with self.step(attempt, "query", operation, {**attributes, "db.operation.name": operation}):
                value = await conn.fetchval(o.query)
                version, in_recovery = await conn.fetchrow(
                    "SELECT current_setting('server_version'), pg_is_in_recovery()")
            if o.expect is not None and str(value) != o.expect:
                raise ProbeFailure(ErrorType.ASSERTION, f"query returned {str(value)[:80]!r}, expected {o.expect!r}")
            attempt.version = str(version).split(" ", 1)[0]
            attempt.info["role"] = "replica" if in_recovery else "primary"
            ok = True
        finally:
            if conn is not None:
                if ok and o.reuse_connection:
                    self._kept.put(target.key, o, conn)
                else:
                    # close() says goodbye politely but waits on the server; terminate() never waits.
                    conn.terminate()

    async def _connect(self, o: PostgresOptions, timeout: float) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(
                host=o.host, port=o.port, user=o.user, database=o.database,
                password=o.password.reveal() if o.password else None, ssl=_ssl(o),
                timeout=timeout, command_timeout=timeout, statement_cache_size=0,
                server_settings={"application_name": "otel-health"},
            )
        except asyncpg.exceptions.ConnectionDoesNotExistError:
            raise ProbeFailure(ErrorType.PROTOCOL, "the server closed the connection during the PostgreSQL "
                                                   "handshake; is it a PostgreSQL server?") from None

    async def retain(self, live: set[tuple[str, str]]) -> None:
        await self._kept.retain(live)

    async def close(self) -> None:
        await self._kept.close()

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
            return ErrorType.AUTH, "authentication failed"
        if isinstance(exc, asyncpg.InvalidCatalogNameError):
            return ErrorType.DATABASE_MISSING, "the database does not exist"
        if isinstance(exc, asyncpg.TooManyConnectionsError):
            return ErrorType.TOO_MANY_CONNECTIONS, "the server has no free connection slots"
        if isinstance(exc, asyncpg.CannotConnectNowError):
            return ErrorType.LOADING, "the server is starting up or shutting down"
        if isinstance(exc, asyncpg.exceptions.ConnectionDoesNotExistError):
            return ErrorType.CONNECTION_RESET, "the server closed the connection"
        if isinstance(exc, asyncpg.PostgresError):
            return ErrorType.ASSERTION, f"query failed: {type(exc).__name__} (SQLSTATE {exc.sqlstate})"
        if isinstance(exc, asyncpg.exceptions.InterfaceError | asyncpg.exceptions.ProtocolError):
            return ErrorType.PROTOCOL, f"the peer does not speak the PostgreSQL protocol ({type(exc).__name__})"
        if isinstance(exc, ConnectionResetError | asyncpg.exceptions.ConnectionDoesNotExistError):
            return ErrorType.CONNECTION_RESET, "the server closed the connection"
        if isinstance(exc, ssl.SSLError):
            return classify_os_error(exc)
        if isinstance(exc, ConnectionError) and not isinstance(exc, OSError):
            return ErrorType.PROTOCOL, "the peer does not speak the PostgreSQL protocol"
        return classify_os_error(exc)
