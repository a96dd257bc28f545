"""The Neo4j kind's error table: the driver's exceptions and Neo4j's status codes. (The protocol
itself is proven against a real Neo4j in tests/integration.)"""

from __future__ import annotations

import pytest
from neo4j import exceptions as nexc

from otel_health.errors import ErrorType
from otel_health.probes import ProbeSettings
from otel_health.probes.neo4j import Neo4jProbe
from tests.harness.checks import raised_from


@pytest.mark.parametrize(("exc", "expected"), [
    (nexc.AuthError("unauthorized"), ErrorType.AUTH),
    (nexc.ClientError._hydrate_neo4j(code="Neo.ClientError.Security.AuthenticationRateLimit",
                                     message="The client has provided incorrect authentication details too many "
                                             "times in a row."), ErrorType.AUTH),
    (nexc.DatabaseUnavailable("offline"), ErrorType.LOADING),
    (nexc.ServiceUnavailable("no Bolt"), ErrorType.PROTOCOL),
    (raised_from(nexc.ServiceUnavailable("down"), ConnectionRefusedError()), ErrorType.CONNECTION_REFUSED),
    (nexc.ConfigurationError("bad"), ErrorType.PROTOCOL),
])
def test_neo4j_errors_by_class(exc: BaseException, expected: ErrorType) -> None:
    assert Neo4jProbe(ProbeSettings())._classify(exc)[0] is expected


def test_neo4j_unknown_database_is_database_missing() -> None:
    exc = nexc.ClientError._hydrate_neo4j(code="Neo.ClientError.Database.DatabaseNotFound", message="no such db")
    assert Neo4jProbe(ProbeSettings())._classify(exc)[0] is ErrorType.DATABASE_MISSING
    other = nexc.ClientError._hydrate_neo4j(code="Neo.ClientError.Statement.SyntaxError", message="bad")
    assert Neo4jProbe(ProbeSettings())._classify(other) == (
        ErrorType.ASSERTION, "query failed: Neo.ClientError.Statement.SyntaxError")
