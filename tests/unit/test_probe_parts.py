"""The pure parts of the probes: error tables, the OS error under an exception, TLS contexts,
kept connections, and what each kind tells /health. (Each protocol is proven against its real
server in tests/integration.)"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
import pytest
from neo4j import exceptions as nexc
from redis import exceptions as rexc

from otel_health.errors import ErrorType, ProbeFailure
from otel_health.probes import PROBES, Probe, ProbeSettings
from otel_health.probes import dns as dns_probe
from otel_health.probes import grpc as grpc_probe
from otel_health.probes._base import classify, classify_os_error, close_within, closes_finished, os_cause
from otel_health.probes._kept import Kept
from otel_health.probes._match import Pattern
from otel_health.probes._tls import client_context
from otel_health.probes.neo4j import Neo4jProbe
from otel_health.probes.postgres import PostgresProbe
from otel_health.probes.redis import RedisProbe
from otel_health.result import DETAIL_LIMIT, VALUE_LIMIT, said


def _raised_from(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(("exc", "expected"), [
    (ProbeFailure(ErrorType.ASSERTION, "body does not match"), (ErrorType.ASSERTION, "body does not match")),
    (ConnectionRefusedError(), (ErrorType.CONNECTION_REFUSED, "connection refused")),
    (BrokenPipeError(), (ErrorType.CONNECTION_RESET, "connection reset by peer")),
    (socket.gaierror(-2, "Name or service not known"),
     (ErrorType.DNS, "name resolution failed: Name or service not known")),
    (TimeoutError(), (ErrorType.TIMEOUT, "timed out")),
    (OSError(111, "refused"), (ErrorType.CONNECTION_REFUSED, "connection refused")),
    (OSError(113, "No route to host"), (ErrorType.UNKNOWN, "EHOSTUNREACH: No route to host")),
    (ValueError("odd"), (ErrorType.UNKNOWN, "ValueError: odd")),
])
def test_os_errors_map_to_the_closed_set(exc: BaseException, expected: tuple[ErrorType, str]) -> None:
    assert classify_os_error(exc) == expected


def test_tls_errors_keep_their_reason() -> None:
    assert classify_os_error(ssl.SSLError(1, "[SSL] wrong version number")) == (
        ErrorType.TLS, "TLS handshake failed: SSLError")  # made by hand: no reason attribute
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="example.test")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    incoming.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")  # a plain HTTP server on a TLS port
    with pytest.raises(ssl.SSLError) as info:
        tls.do_handshake()
    assert classify_os_error(info.value) == (ErrorType.TLS, f"TLS handshake failed: {info.value.reason}")
    assert info.value.reason  # the real one names it, e.g. WRONG_VERSION_NUMBER


def test_the_os_error_under_a_library_error_is_found_a_few_links_down() -> None:
    refused = ConnectionRefusedError(111, "refused")
    middle = _raised_from(RuntimeError("middle"), refused)
    outer = _raised_from(rexc.ConnectionError("Error connecting"), middle)
    assert os_cause(outer) is refused
    assert os_cause(rexc.ConnectionError("no cause")) is None
    assert os_cause(outer, depth=1) is None


def test_the_os_error_is_found_inside_an_exception_group() -> None:
    tls = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
    group = ExceptionGroup("All routing table requests failed", [_raised_from(RuntimeError("bolt"), tls)])
    outer = _raised_from(nexc.ServiceUnavailable("Unable to retrieve routing information"), group)
    assert os_cause(outer) is tls
    assert Neo4jProbe(ProbeSettings())._classify(outer)[0] is ErrorType.TLS


def test_the_first_matching_rule_wins() -> None:
    rules = ((KeyError, ErrorType.PROTOCOL, "key"), (LookupError, ErrorType.ASSERTION, lambda e: f"lookup {e}"))
    assert classify(KeyError("k"), rules) == (ErrorType.PROTOCOL, "key")
    assert classify(IndexError("i"), rules) == (ErrorType.ASSERTION, "lookup i")
    assert classify(ValueError(), rules) is None


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
    (_raised_from(rexc.ConnectionError("Error 111"), ConnectionRefusedError()), ErrorType.CONNECTION_REFUSED),
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


@pytest.mark.parametrize(("exc", "expected"), [
    (nexc.AuthError("unauthorized"), ErrorType.AUTH),
    (nexc.ClientError._hydrate_neo4j(code="Neo.ClientError.Security.AuthenticationRateLimit",
                                     message="The client has provided incorrect authentication details too many "
                                             "times in a row."), ErrorType.AUTH),
    (nexc.DatabaseUnavailable("offline"), ErrorType.LOADING),
    (nexc.ServiceUnavailable("no Bolt"), ErrorType.PROTOCOL),
    (_raised_from(nexc.ServiceUnavailable("down"), ConnectionRefusedError()), ErrorType.CONNECTION_REFUSED),
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


def test_every_kind_names_its_health_check() -> None:
    names = {kind: (cls.component_type, cls.check_name) for kind, cls in PROBES.items()}
    assert names == {"http": ("http", "responseTime"), "tcp": ("tcp", "connectivity"),
                     "redis": ("datastore", "connectivity"), "postgres": ("datastore", "connectivity"),
                     "neo4j": ("datastore", "connectivity"), "heartbeat": ("component", "heartbeat"),
                     "grpc": ("grpc", "health"), "dns": ("dns", "resolution"), "suite": ("component", "suite")}


class _Conn:
    def __init__(self, name: str, usable: bool = True) -> None:
        self.name, self.usable, self.closed = name, usable, False


async def _close(conn: _Conn) -> None:
    conn.closed = True


async def test_a_kept_connection_goes_back_only_after_success() -> None:
    kept: Kept[_Conn] = Kept(_close)
    key = ("db", "prod")
    async with kept.session(key, "opts", keep=True) as held:
        assert held.conn is None
        first = held.conn = _Conn("first")
    async with kept.session(key, "opts", keep=True) as held:
        assert held.conn is first  # taken back out
    with pytest.raises(RuntimeError):
        async with kept.session(key, "opts", keep=True) as held:
            assert held.conn is first
            raise RuntimeError("check failed")
    assert first.closed  # a failure closes it
    async with kept.session(key, "opts", keep=True) as held:
        assert held.conn is None


async def test_a_connection_not_kept_changed_or_unusable_is_closed() -> None:
    kept: Kept[_Conn] = Kept(_close, usable=lambda c: c.usable)
    key = ("db", "prod")
    async with kept.session(key, "opts", keep=False) as held:
        once = held.conn = _Conn("once")
    assert once.closed  # the target does not keep connections
    async with kept.session(key, "v1", keep=True) as held:
        v1 = held.conn = _Conn("v1")
    async with kept.session(key, "v2", keep=True) as held:
        assert held.conn is None and v1.closed  # options changed by a reload
        v2 = held.conn = _Conn("v2", usable=False)
    async with kept.session(key, "v2", keep=True) as held:
        assert held.conn is None and v2.closed  # the server closed it meanwhile
        held.conn = _Conn("v3")
    await kept.retain(set())
    await asyncio.sleep(0)
    async with kept.session(key, "v2", keep=True) as held:
        assert held.conn is None  # removed by a reload


async def test_a_close_goes_on_when_the_check_that_began_it_is_cancelled() -> None:
    # A check that fails just before its timeout closes its connection as the timeout
    # expires: the close must still happen, not be cut short before it began.
    closing_started, may_finish = asyncio.Event(), asyncio.Event()
    conn = _Conn("near-deadline")

    async def slow_close(c: _Conn) -> None:
        closing_started.set()
        await may_finish.wait()
        c.closed = True

    kept: Kept[_Conn] = Kept(lambda c: close_within(slow_close(c)))

    async def check() -> None:
        async with kept.session(("db", "prod"), "opts", keep=False) as held:
            held.conn = conn

    task = asyncio.create_task(check())
    await asyncio.sleep(0)  # the check is now waiting on the close, which has not begun
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not conn.closed
    may_finish.set()
    await asyncio.wait_for(closing_started.wait(), 2)
    await closes_finished()
    assert conn.closed


async def test_a_stuck_close_is_given_up_after_its_bound() -> None:
    never = asyncio.Event()
    started = asyncio.get_running_loop().time()
    await close_within(never.wait(), 0.05)
    await closes_finished()
    assert asyncio.get_running_loop().time() - started < 2


def test_client_contexts_are_shared_and_follow_the_ca_file(tmp_path: Path) -> None:
    default = client_context()
    assert client_context() is default
    assert default.verify_mode is ssl.CERT_REQUIRED and default.check_hostname
    lax = client_context(verify=False)
    assert lax is not default and lax.verify_mode is ssl.CERT_NONE and not lax.check_hostname
    no_host = client_context(check_hostname=False)
    assert no_host.verify_mode is ssl.CERT_REQUIRED and not no_host.check_hostname

    from tests.harness.tls import self_signed

    ca, _ = self_signed(tmp_path)
    first = client_context(ca_file=ca)
    assert client_context(ca_file=ca) is first
    stat = os.stat(ca)
    os.utime(ca, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert client_context(ca_file=ca) is not first  # a rotated CA file is read again
    with pytest.raises(FileNotFoundError):
        client_context(ca_file=tmp_path / "missing.pem")


class _Talkative(Probe):
    """A target that says what it likes: lone surrogates, escape sequences, a megabyte."""

    kind = "talkative"
    options_type = object
    says: ClassVar[dict[str, str]] = {}

    async def _check(self, target: Any, attempt: Any) -> None:
        attempt.version = self.says["version"]
        attempt.info["role"] = self.says["role"]
        if "detail" in self.says:
            raise ProbeFailure(ErrorType.PROTOCOL, self.says["detail"])


@pytest.mark.parametrize("said_text", ["\ud800x", "\x1b[31mred\x1b[0m\r\nnext", "v" * 1_000_000, "Zürich ✓ 日本"])
async def test_what_a_target_says_enters_the_result_as_valid_bounded_utf8(make_target, said_text: str) -> None:
    _Talkative.says = {"version": said_text, "role": said_text}
    up = await _Talkative(ProbeSettings()).run(make_target("t"))
    _Talkative.says = {"version": said_text, "role": said_text, "detail": said_text}
    down = await _Talkative(ProbeSettings()).run(make_target("t"))
    for value, limit in ((up.version, VALUE_LIMIT), (up.info["role"], VALUE_LIMIT), (down.detail, DETAIL_LIMIT)):
        assert value is not None and len(value) <= limit
        value.encode("utf-8")  # never raises
        assert value.isprintable()
    if said_text.isprintable() and len(said_text) <= VALUE_LIMIT:
        assert up.version == said_text  # honest text passes unchanged
    assert said("\ud800x", 10) == "\ufffdx" and said("a\x1bb", 10) == "a\\x1bb" and said("abcdefgh", 5) == "ab..."


async def test_a_classifier_that_fails_does_not_lose_the_result(make_target) -> None:
    class Broken(_Talkative):
        def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
            raise KeyError("bug")

    Broken.says = {"version": "1", "role": "r", "detail": "boom"}
    result = await Broken(ProbeSettings()).run(make_target("t"))
    assert (result.up, result.error_type) == (False, ErrorType.UNKNOWN)
    assert result.detail == "http://127.0.0.1/t: ProbeFailure (not classified: KeyError)"


def test_query_values_that_carry_credentials_are_hidden() -> None:
    from otel_health._redact import redact_url

    url = ("https://h/cb?code=oauth-code-1&state=s1&session_id=sess-1&X-Amz-Signature=sig-1&sid=sid-1"
           "&api_key=k-1&page=2&q=find")
    shown = redact_url(url)
    for secret in ("oauth-code-1", "s1", "sess-1", "sig-1", "sid-1", "k-1"):
        assert f"={secret}" not in shown, secret
    assert "page=2" in shown and "q=find" in shown


# grpcio's own words for a connection that failed (UNAVAILABLE), as grpcio 1.85 writes them.
@pytest.mark.parametrize(("details", "expected"), [
    ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50559: Failed to connect to remote "
     "host: Connection refused", (ErrorType.CONNECTION_REFUSED, "connection refused")),
    ("errors resolving no-such-host.invalid:50559: [field:hostname lookup error:address lookup failed for "
     "no-such-host.invalid:50559: Domain name not found]", (ErrorType.DNS, "the name could not be resolved")),
    ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50551: Tls handshake failed "
     "(TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER",
     (ErrorType.TLS, "the server does not speak TLS on this port")),
    ("last error: UNKNOWN: ipv4:127.0.0.1:50552: Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: "
     "error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: self signed certificate",
     (ErrorType.TLS, "certificate verify failed: self-signed certificate")),
    ("last error: UNKNOWN: ipv4:127.0.0.1:50552: Custom verification check failed with error: UNAUTHENTICATED: "
     "Hostname Verification Check failed.", (ErrorType.TLS, "the certificate does not match the server name")),
    ("failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:50552: Socket closed",
     (ErrorType.CONNECTION_RESET, "the server closed the connection (is it a gRPC server, and does it speak TLS "
                                  "as configured?)")),
    ("something grpcio has not said before", (ErrorType.UNAVAILABLE, "the server is unavailable")),
])
def test_grpc_connection_failures_are_read_from_grpcio_words(details: str, expected: tuple[ErrorType, str]) -> None:
    assert grpc_probe._unavailable(details) == expected


def test_every_grpc_status_code_maps_into_the_closed_set() -> None:
    grpc = grpc_probe.grpc_modules()[0]
    probe = grpc_probe.GrpcProbe(ProbeSettings())

    class _Failed(grpc.aio.AioRpcError):  # type: ignore[misc]
        def __init__(self, code: Any) -> None:
            super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="server words")

    for code in grpc.StatusCode:
        if code is grpc.StatusCode.OK:
            continue
        error_type, detail = probe._classify(_Failed(code))
        assert error_type in ErrorType and error_type is not ErrorType.UNKNOWN, code
        assert f"({code.name})" in detail, detail


def test_dns_record_checks_read_as_blackbox_reads_them() -> None:
    records = ["www.example.test. 300 IN A 192.0.2.10", "www.example.test. 300 IN A 192.0.2.11"]

    def checks(**kw: list[str]) -> dns_probe.RecordChecks:
        return dns_probe.RecordChecks(**{k: tuple(Pattern(p) for p in v) for k, v in kw.items()})

    assert checks(fail_if_matches_regexp=[r"\.11$"]).problem("answer", records) == (
        "answer record 'www.example.test. 300 IN A 192.0.2.11' matches /\\.11$/")
    assert checks(fail_if_not_matches_regexp=[r"\.10$"]).problem("answer", records) is not None
    assert checks(fail_if_all_match_regexp=["192"]).problem("answer", records) == "every answer record matches /192/"
    assert checks(fail_if_all_match_regexp=["192"]).problem("answer", []) is None  # nothing to match: no failure
    assert checks(fail_if_none_matches_regexp=["AAAA"]).problem("answer", records) == (
        "no answer record matches /AAAA/")
    assert checks(fail_if_none_matches_regexp=["AAAA"]).problem("answer", []) is not None
    assert checks(fail_if_not_matches_regexp=[r"IN A "]).problem("answer", records) is None
