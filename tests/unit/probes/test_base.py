"""The parts every kind shares (``probes/_base.py``): the error tables and the OS error under an
exception, closes bounded in time, and what a target says entering the result."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, ClassVar

import pytest
from neo4j import exceptions as nexc
from redis import exceptions as rexc

from otel_health.errors import ErrorType, ProbeFailure
from otel_health.probes import Probe, ProbeSettings
from otel_health.probes._base import classify, classify_os_error, close_within, closes_finished, os_cause
from otel_health.probes.neo4j import Neo4jProbe
from otel_health.result import DETAIL_LIMIT, VALUE_LIMIT, said
from tests.harness.checks import raised_from


@pytest.mark.parametrize(("exc", "expected"), [
    (ProbeFailure(ErrorType.ASSERTION, "body does not match"), (ErrorType.ASSERTION, "body does not match")),
    (ConnectionRefusedError(), (ErrorType.CONNECTION_REFUSED, "connection refused")),
    (BrokenPipeError(), (ErrorType.CONNECTION_RESET, "connection reset by peer")),
    (socket.gaierror(-2, "Name or service not known"),
     (ErrorType.DNS, "name resolution failed: Name or service not known")),
    (TimeoutError(), (ErrorType.TIMEOUT, "timed out")),
    (OSError(111, "refused"), (ErrorType.CONNECTION_REFUSED, "connection refused")),
    (OSError(113, "No route to host"),
     (ErrorType.UNREACHABLE, "no route to the host (EHOSTUNREACH: No route to host)")),
    (OSError(5, "Input/output error"), (ErrorType.UNKNOWN, "EIO: Input/output error")),
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
    middle = raised_from(RuntimeError("middle"), refused)
    outer = raised_from(rexc.ConnectionError("Error connecting"), middle)
    assert os_cause(outer) is refused
    assert os_cause(rexc.ConnectionError("no cause")) is None
    assert os_cause(outer, depth=1) is None


def test_the_os_error_is_found_inside_an_exception_group() -> None:
    tls = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
    group = ExceptionGroup("All routing table requests failed", [raised_from(RuntimeError("bolt"), tls)])
    outer = raised_from(nexc.ServiceUnavailable("Unable to retrieve routing information"), group)
    assert os_cause(outer) is tls
    assert Neo4jProbe(ProbeSettings())._classify(outer)[0] is ErrorType.TLS


def test_the_first_matching_rule_wins() -> None:
    rules = ((KeyError, ErrorType.PROTOCOL, "key"), (LookupError, ErrorType.ASSERTION, lambda e: f"lookup {e}"))
    assert classify(KeyError("k"), rules) == (ErrorType.PROTOCOL, "key")
    assert classify(IndexError("i"), rules) == (ErrorType.ASSERTION, "lookup i")
    assert classify(ValueError(), rules) is None


async def test_a_stuck_close_is_given_up_after_its_bound() -> None:
    never = asyncio.Event()
    started = asyncio.get_running_loop().time()
    await close_within(never.wait(), 0.05)
    await closes_finished()
    assert asyncio.get_running_loop().time() - started < 2


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
