"""The PostgreSQL kind's error table: asyncpg's exceptions and SQLSTATEs, the server's reasons
kept. (The protocol itself is proven against a real PostgreSQL in tests/integration.)"""

from __future__ import annotations

import asyncpg
import pytest

from otel_health.errors import ErrorType
from otel_health.probes import ProbeSettings
from otel_health.probes.postgres import PostgresProbe


@pytest.mark.parametrize(("exc", "expected"), [
    (asyncpg.InvalidPasswordError("password authentication failed"), ErrorType.AUTH),
    (asyncpg.InvalidAuthorizationSpecificationError('role "x" is not permitted to log in'), ErrorType.AUTH),
    (asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"), ErrorType.TIMEOUT),
    (asyncpg.exceptions.LockNotAvailableError("canceling statement due to lock timeout"), ErrorType.TIMEOUT),
    (asyncpg.InvalidCatalogNameError('database "x" does not exist'), ErrorType.DATABASE_MISSING),
    (asyncpg.TooManyConnectionsError("too many"), ErrorType.TOO_MANY_CONNECTIONS),
    (asyncpg.CannotConnectNowError("starting up"), ErrorType.LOADING),
    (asyncpg.exceptions.ConnectionDoesNotExistError("closed"), ErrorType.CONNECTION_RESET),
    (asyncpg.exceptions.UndefinedTableError("no table"), ErrorType.ASSERTION),
    (asyncpg.exceptions.InterfaceError("odd"), ErrorType.PROTOCOL),
    (ConnectionResetError(), ErrorType.CONNECTION_RESET),
    (ConnectionRefusedError(), ErrorType.CONNECTION_REFUSED),
])
def test_postgres_errors_by_class(exc: BaseException, expected: ErrorType) -> None:
    assert PostgresProbe(ProbeSettings())._classify(exc)[0] is expected


def test_postgres_refusals_keep_the_servers_reason() -> None:
    probe = PostgresProbe(ProbeSettings())
    refused = asyncpg.InvalidAuthorizationSpecificationError(
        'pg_hba.conf rejects connection for host "127.0.0.1", user "blocked", database "postgres", no encryption')
    assert probe._classify(refused) == (ErrorType.AUTH, f"login refused: {refused}")
    wrong = asyncpg.InvalidPasswordError('password authentication failed for user "postgres"')
    assert probe._classify(wrong) == (ErrorType.AUTH, f"authentication failed: {wrong}")


def test_postgres_query_errors_name_their_sqlstate() -> None:
    exc = asyncpg.exceptions.UndefinedTableError("relation does not exist")
    exc.sqlstate = "42P01"
    assert PostgresProbe(ProbeSettings())._classify(exc) == (
        ErrorType.ASSERTION, "query failed: UndefinedTableError (SQLSTATE 42P01)")
