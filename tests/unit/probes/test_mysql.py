"""The mysql kind's options and how a server's error code becomes an error type (pure logic:
the wire is in tests/integration/test_mysql.py, against MariaDB)."""

from __future__ import annotations

from asyncmy import errors

from otel_health.errors import ErrorType
from otel_health.probes import ProbeSettings
from otel_health.probes.mysql import MysqlOptions, MysqlProbe, _ssl
from tests.harness.checks import options_of


def _options(fields: str) -> MysqlOptions:
    return options_of(MysqlOptions, f"kind: mysql, host: db.internal, user: monitor, {fields}")


def test_each_ssl_mode_verifies_what_its_name_says() -> None:
    assert _ssl(_options("ssl_mode: disabled")) is None
    for mode, verified, named in (("preferred", False, False), ("required", False, False),
                                  ("verify_ca", True, False), ("verify_identity", True, True)):
        context = _ssl(_options(f"ssl_mode: {mode}"))
        assert (context.verify_mode.name == "CERT_REQUIRED", context.check_hostname) == (verified, named), mode


def test_a_server_code_becomes_its_error_type_and_the_server_words() -> None:
    probe = MysqlProbe(ProbeSettings())
    for code, words, expected, said in (
            (1045, "Access denied for user 'monitor'@'10.0.0.5' (using password: YES)", ErrorType.AUTH,
             "access denied"),
            (1049, "Unknown database 'shop'", ErrorType.DATABASE_MISSING, "the database does not exist"),
            (1040, "Too many connections", ErrorType.TOO_MANY_CONNECTIONS, "the server has no free connection"),
            (1969, "Query execution was interrupted (max_statement_time exceeded)", ErrorType.TIMEOUT,
             "max_statement_time"),
            (1146, "Table 'shop.orders' doesn't exist", ErrorType.ASSERTION, "the query failed (1146: Table")):
        error_type, detail = probe._classify(errors.OperationalError(code, words))
        assert error_type is expected and said in detail and str(code) in detail, (code, detail)
    error_type, detail = probe._classify(errors.OperationalError(2013, "Lost connection to server during query"))
    assert error_type is ErrorType.CONNECTION_RESET
    assert probe._classify(errors.InternalError("Packet sequence number wrong"))[0] is ErrorType.PROTOCOL
