"""MySQL and MariaDB probe: connect (TLS as ``ssl_mode`` says, and authenticate), run a query,
read the version and the read-only state, on the asyncmy driver.

The checker must never be what takes a database down: every statement of a check carries a
server-side limit below the check's timeout (MariaDB's ``max_statement_time``, MySQL's
``max_execution_time``, which ends a SELECT), so a slow query is ended by the server itself;
and the connection says goodbye (COM_QUIT) rather than leaving the server to log an aborted
one. A refusal is classified by the server's error code (1045 access denied, 1049 unknown
database, 1040 too many connections…) and shown in the server's own words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import (
    Attempt,
    PasswordOptions,
    Probe,
    classify_os_error,
    close_within,
    host_port,
    os_cause,
    server_words,
)
from ._tls import client_context

__all__ = ["MysqlOptions", "MysqlProbe"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]_]{1,253}$")
_SSL_MODES = ("disabled", "preferred", "required", "verify_ca", "verify_identity")
_STATEMENT_SHARE = 0.9  # the server-side limit of each statement, as a share of the check's timeout


@dataclass(frozen=True, slots=True)
class MysqlOptions(PasswordOptions):
    host: str
    user: str
    port: int = 3306
    database: str | None = None
    password: Secret | None = None
    ssl_mode: str = "preferred"
    ca_file: Path | None = None
    query: str = "SELECT 1"
    expect: str | None = None

    @classmethod
    def parse(cls, f: Fields) -> MysqlOptions | None:
        host = f.text("host", required=True, pattern=_HOST_RE, hint="use a host name or an IP address")
        user = f.text("user", required=True)
        options = cls(
            host=host or "", user=user or "",
            port=f.whole("port", 3306, minimum=1, maximum=65535),
            database=f.text("database"),
            password=f.secret("password"),
            ssl_mode=f.text("ssl_mode", "preferred", choices=_SSL_MODES) or "preferred",
            ca_file=f.path("ca_file"),
            query=f.text("query", "SELECT 1") or "SELECT 1",
            expect=f.text("expect"),
        )
        if options.ca_file is not None and options.ssl_mode not in ("verify_ca", "verify_identity"):
            f.problem("ca_file", f"verifies the server's certificate, which ssl_mode {options.ssl_mode} does not; "
                                 "set ssl_mode: verify_ca or verify_identity")
        return options if host and user else None

    def where(self) -> str:
        address = host_port(self.host, self.port)
        return f"{address}/{self.database}" if self.database else address

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "database": self.database, "user": self.user,
                "password": self.password.source if self.password else None, "ssl_mode": self.ssl_mode,
                "query": self.query, "expect": self.expect}


class MysqlProbe(Probe):
    kind = "mysql"
    component_type = "datastore"
    check_name = "connectivity"
    info_labels = ("read_only", "flavor")
    options_type = MysqlOptions

    def _load(self) -> None:
        import asyncmy  # noqa: F401 - imported once, off the loop, before the first check

    async def _check(self, target: Target, attempt: Attempt) -> None:
        import asyncmy

        o: MysqlOptions = target.options
        attributes: dict[str, str | int] = {"db.system.name": "mysql", "server.address": o.host,
                                            "server.port": o.port}
        if o.database:
            attributes["db.namespace"] = o.database
        with self.step(attempt, "connect", "connect", attributes):
            conn = await asyncmy.connect(
                host=o.host, port=o.port, user=o.user, password=o.password.reveal() if o.password else "",
                database=o.database, ssl=_ssl(o), connect_timeout=target.timeout, autocommit=True,
                program_name="otel-health")
        try:
            said = str(conn.get_server_info())
            mariadb = "mariadb" in said.lower()
            if o.ssl_mode not in ("disabled", "preferred"):
                await _secured(conn)
            operation = o.query.split(None, 1)[0].upper() if o.query.strip() else "SELECT"
            with self.step(attempt, "query", operation, {**attributes, "db.operation.name": operation}):
                async with conn.cursor() as cursor:
                    limit = max(1, int(target.timeout * _STATEMENT_SHARE * 1000))
                    await cursor.execute(f"SET SESSION max_statement_time = {limit / 1000:.3f}" if mariadb
                                         else f"SET SESSION max_execution_time = {limit}")
                    await cursor.execute(o.query)
                    row = await cursor.fetchone()
                    await cursor.execute("SELECT @@global.read_only")
                    (read_only,) = await cursor.fetchone()
        finally:
            await close_within(conn.ensure_closed())
        value = row[0] if row else None
        if o.expect is not None and str(value) != o.expect:
            raise ProbeFailure(ErrorType.ASSERTION, f"query returned {str(value)[:80]!r}, expected {o.expect!r}")
        # MariaDB's handshake says 5.5.5- first, for old MySQL clients
        attempt.version = said.removeprefix("5.5.5-").split("-", 1)[0]
        attempt.info["flavor"] = "mariadb" if mariadb else "mysql"
        attempt.info["read_only"] = "true" if str(read_only) in ("1", "ON") else "false"

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        from asyncmy import errors

        if isinstance(exc, errors.MySQLError) and exc.args and isinstance(exc.args[0], int):
            code, message = exc.args[0], server_words(str(exc.args[1]) if len(exc.args) > 1 else "")
            found = _CODES.get(code)
            if found is not None:
                return found[0], f"{found[1]} ({code}: {message})"
            if code >= 2000:  # the client's own: the connection failed, as the socket said
                cause = os_cause(exc)
                return classify_os_error(cause) if cause is not None else \
                    (ErrorType.CONNECTION_RESET, f"the connection failed ({code}: {message})")
            return ErrorType.ASSERTION, f"the query failed ({code}: {message})"
        if isinstance(exc, errors.MySQLError):
            return ErrorType.PROTOCOL, f"the peer does not speak the MySQL protocol ({type(exc).__name__})"
        return classify_os_error(exc)


async def _secured(conn: Any) -> None:
    """The server's word that the connection is TLS (a server without TLS would be spoken to in
    the clear: the driver upgrades only when the server offers it)."""
    async with conn.cursor() as cursor:
        await cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        row = await cursor.fetchone()
    if not row or not row[1]:
        raise ProbeFailure(ErrorType.TLS, "the server does not offer TLS, which ssl_mode requires")


def _ssl(o: MysqlOptions) -> Any:
    if o.ssl_mode == "disabled":
        return None
    verify = o.ssl_mode in ("verify_ca", "verify_identity")
    return client_context(verify=verify, check_hostname=o.ssl_mode == "verify_identity", ca_file=o.ca_file)


_CODES: dict[int, tuple[ErrorType, str]] = {
    1045: (ErrorType.AUTH, "access denied"),
    1044: (ErrorType.AUTH, "access to the database denied"),
    1130: (ErrorType.AUTH, "this host may not connect"),
    1698: (ErrorType.AUTH, "access denied"),
    1049: (ErrorType.DATABASE_MISSING, "the database does not exist"),
    1040: (ErrorType.TOO_MANY_CONNECTIONS, "the server has no free connection"),
    1203: (ErrorType.TOO_MANY_CONNECTIONS, "the user has all the connections it may have"),
    1226: (ErrorType.TOO_MANY_CONNECTIONS, "the user has reached a limit"),
    1053: (ErrorType.UNAVAILABLE, "the server is shutting down"),
    1129: (ErrorType.UNAVAILABLE, "this host is blocked after too many connection errors (FLUSH HOSTS)"),
    1969: (ErrorType.TIMEOUT, "the server ended the query at its max_statement_time, below the check's timeout"),
    3024: (ErrorType.TIMEOUT, "the server ended the query at its max_execution_time, below the check's timeout"),
    2013: (ErrorType.CONNECTION_RESET, "the server closed the connection"),
    2006: (ErrorType.CONNECTION_RESET, "the server closed the connection"),
}
