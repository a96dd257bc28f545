"""The Redis kind's error table: redis-py's exceptions and the server's replies, by class then
by code. (The protocol itself is proven against a real Redis in tests/integration.)"""

from __future__ import annotations

import pytest
from redis import exceptions as rexc

from otel_health.errors import ErrorType
from otel_health.probes import ProbeSettings
from otel_health.probes.redis import RedisProbe
from tests.harness.checks import raised_from


@pytest.mark.parametrize(("exc", "expected"), [
    (rexc.BusyLoadingError("LOADING"), ErrorType.LOADING),
    (rexc.AuthenticationError("invalid"), ErrorType.AUTH),
    (rexc.AuthenticationWrongNumberOfArgsError("wrong number"), ErrorType.AUTH),
    (rexc.ResponseError("WRONGPASS invalid username-password pair"), ErrorType.AUTH),
    (rexc.ResponseError("LOADING Redis is loading"), ErrorType.LOADING),
    (rexc.ResponseError("ERR unknown command"), ErrorType.PROTOCOL),
    (rexc.InvalidResponse("Protocol Error: b'H'"), ErrorType.PROTOCOL),
    (rexc.TimeoutError("Timeout reading"), ErrorType.TIMEOUT),
    (rexc.ConnectionError("Connection closed by server."), ErrorType.CONNECTION_RESET),
    (rexc.ConnectionError("Protocol error, got 'H'"), ErrorType.PROTOCOL),
    (raised_from(rexc.ConnectionError("Error 111"), ConnectionRefusedError()), ErrorType.CONNECTION_REFUSED),
])
def test_redis_errors_by_class_then_by_code(exc: BaseException, expected: ErrorType) -> None:
    assert RedisProbe(ProbeSettings())._classify(exc)[0] is expected


@pytest.mark.parametrize(("reply", "expected", "detail"), [
    ("WRONGPASS invalid username-password pair or user is disabled.", ErrorType.AUTH,
     "authentication failed: WRONGPASS invalid username-password pair or user is disabled."),
    ("NOPERM this user has no permissions to run the 'info' command", ErrorType.AUTH,
     "the user may not run a command the check needs (+ping +info): "
     "NOPERM this user has no permissions to run the 'info' command"),
    ("ERR max number of clients reached", ErrorType.TOO_MANY_CONNECTIONS,
     "Redis refused: ERR max number of clients reached"),
    ("LOADING Redis is loading the dataset in memory", ErrorType.LOADING,
     "Redis refused: LOADING Redis is loading the dataset in memory"),
    ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", ErrorType.UNAVAILABLE,
     "Redis refused: MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
    ("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
     ErrorType.UNAVAILABLE, "Redis refused: MISCONF Redis is configured to save RDB snapshots, but it's "
                            "currently unable to persist to disk."),
    ("CLUSTERDOWN The cluster is down", ErrorType.UNAVAILABLE, "Redis refused: CLUSTERDOWN The cluster is down"),
    ("ERR unknown command 'FOO'", ErrorType.PROTOCOL, "Redis answered with an error: ERR unknown command 'FOO'"),
])
def test_redis_error_replies_by_code_in_the_servers_words(reply: str, expected: ErrorType, detail: str) -> None:
    from redis._parsers.base import BaseParser

    exc = BaseParser.parse_error(reply)  # as redis-py turns the reply into an exception
    assert RedisProbe(ProbeSettings())._classify(exc) == (expected, detail)


def test_a_long_redis_error_is_cut() -> None:
    from redis._parsers.base import BaseParser

    error_type, detail = RedisProbe(ProbeSettings())._classify(BaseParser.parse_error("ERR " + "x" * 5000))
    assert error_type is ErrorType.PROTOCOL and len(detail) < 400 and detail.endswith("...")
