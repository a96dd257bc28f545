"""The one ``run()`` every probe shares: timeout, retries, timing and error capture.

A protocol module implements only :meth:`Probe._check`, the protocol step. It fills the
:class:`Attempt` it is given (phases, status code, version) and raises
:class:`~otel_health.errors.ProbeFailure` for a failed assertion; any other exception is
classified by the probe's :meth:`Probe._classify`, most often through a table of
:data:`Rule` rows (:func:`classify`). Errors never escape ``run()``: they become a down
:class:`CheckResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from opentelemetry import trace

from .._redact import REDACTED, scrub
from ..clock import WALL, Clock
from ..config import Secret, Target
from ..errors import ErrorType, NoVerdict, ProbeFailure
from ..result import DETAIL_LIMIT, VALUE_LIMIT, CheckResult, said
from ._inbox import Inbox

__all__ = [
    "ANSWER_SHARE",
    "Attempt",
    "PasswordOptions",
    "Probe",
    "ProbeSettings",
    "Rule",
    "answer_by",
    "classify",
    "classify_os_error",
    "close_within",
    "closes_finished",
    "host_port",
    "os_cause",
    "pair_secrets",
    "server_words",
    "shown_pairs",
]


# A kind that names what did not come (an echo request lost, a message never matched, a close
# never answered) stops waiting at this share of the check's timeout: the rest is the verdict's.
ANSWER_SHARE = 0.9
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 2.0


@dataclass(slots=True)
class ProbeSettings:
    """What probes share, set once per process."""

    max_body_bytes: int = 1024 * 1024
    user_agent: str = "otel-health"
    # Where what a push kind was told (a job's report) is kept across restarts; a reload
    # moves it through the kind's inbox.
    state_dir: Path | None = None
    # Child spans (connect, request, query) come from the collector's own provider.
    tracer: trace.Tracer = field(default_factory=lambda: trace.NoOpTracer())
    # The wall clock: when a check started, how many days a certificate has left.
    clock: Clock = WALL


@dataclass(slots=True)
class Attempt:
    """What one attempt learned; the protocol step fills it in as it goes."""

    phases: dict[str, float] = field(default_factory=dict)
    status_code: int | None = None
    version: str | None = None
    info: dict[str, str] = field(default_factory=dict)
    tls_expiry: float | None = None
    loss_ratio: float | None = None  # the share of echo requests unanswered (ICMP)
    dnssec_expiry: float | None = None  # the first RRSIG of a validated answer's chain to expire (DNS)
    deadline: float = 0.0  # the check's end, on time.perf_counter(): its timeout from its start


def answer_by(timeout: float) -> float:
    """The ``time.perf_counter()`` time by which a check of ``timeout`` stops waiting for an
    answer it will name as missing (:data:`ANSWER_SHARE` of the timeout from now)."""
    return time.perf_counter() + timeout * ANSWER_SHARE


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _at(where: str, detail: str) -> str:
    """``detail`` said of ``where`` (once: a detail that names it already is left as it is)."""
    return f"{where}: {detail}" if where and where not in detail else detail


def _drop_frames(exc: BaseException) -> None:
    """Clear the frames a failure's traceback (and its causes') passed through. Inside a
    library the exception and those frames can make a cycle (asyncpg's and redis-py's connects
    do when the password is refused) that holds the check's own frames too, until the cyclic
    garbage collector comes by."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        traceback.clear_frames(cause.__traceback__)
        cause = cause.__cause__ or cause.__context__


def pair_secrets(pairs: Sequence[tuple[str, str | Secret]]) -> Iterator[Secret]:
    """The credentials among ``(name, value)`` pairs (headers, gRPC metadata, a program's env)."""
    return (value for _, value in pairs if isinstance(value, Secret))


def shown_pairs(pairs: Sequence[tuple[str, str | Secret]]) -> dict[str, str]:
    """``(name, value)`` pairs as the API shows them: a credential by where it comes from only."""
    return {name: f"{REDACTED} ({value.source})" if isinstance(value, Secret) else value for name, value in pairs}


class PasswordOptions:
    """Mixin for a kind's options whose one secret is ``password``."""

    __slots__ = ()
    password: Secret | None

    def secrets(self) -> Iterator[Secret]:
        if self.password is not None:
            yield self.password


class Probe(ABC):
    """One kind of target. Subclasses set the class attributes and implement :meth:`_check`."""

    kind: ClassVar[str]
    options_type: ClassVar[type[Any]]
    # How /health (application/health+json) names this kind's check: "{service}:{check_name}"
    # with this componentType.
    component_type: ClassVar[str] = "component"
    check_name: ClassVar[str] = "connectivity"
    # The keys this kind reports in ``Attempt.info`` (labels of tta_service_info): a target's
    # own labels may not use them.
    info_labels: ClassVar[tuple[str, ...]] = ()
    # URL schemes ``otel-health probe URL`` maps to this kind, read by ``options_from_url``.
    schemes: ClassVar[tuple[str, ...]] = ()
    # Whether a discovery source's target_template may make targets of this kind (not a kind
    # whose target runs something on this host).
    discoverable: ClassVar[bool] = True

    @classmethod
    def options_from_url(cls, url: str) -> Any:
        """Options for an ad hoc check of ``url``; raise ValueError with a one-line reason."""
        raise ValueError(f"{cls.kind} targets cannot be given as a URL")

    def __init__(self, settings: ProbeSettings) -> None:
        self.settings = settings
        # A push kind's reports (see ``_inbox``): set by a kind that takes them, None for the others.
        self.inbox: Inbox | None = None
        self._loaded = type(self)._load is Probe._load
        self._loading: asyncio.Future[None] | None = None  # the one _load the first checks wait for

    def _load(self) -> None:
        """Import what the kind needs and a process without such targets should not carry (a
        heavy library): called once, on a thread, before the first check's clock starts, so that
        check neither blocks the event loop for the import nor counts it as its own time."""
        return None

    async def _ready(self) -> None:
        """Start what the kind keeps across checks (a browser) before the check's clock starts,
        so no check counts it as its own time; it must not raise: what failed here, the check
        meets again and names."""
        return None

    async def run(self, target: Target) -> CheckResult:
        """Check ``target`` once (with its retries), never raising but for cancellation."""
        if not self._loaded:
            if self._loading is None:  # the first checks of a kind start side by side: one load for all
                self._loading = asyncio.ensure_future(asyncio.to_thread(self._load))
            try:
                await asyncio.shield(self._loading)
            except Exception:
                self._loading = None  # a later check tries again
                raise
            self._loaded = True
        await self._ready()
        started_at = self.settings.clock()
        start = time.perf_counter()
        deadline = start + target.timeout
        attempts = 0
        attempt = Attempt()
        failure: tuple[ErrorType, str] | None = None
        known = True
        try:
            async with asyncio.timeout(target.timeout):
                while True:
                    attempts += 1
                    attempt = Attempt(deadline=deadline)
                    try:
                        await self._check(target, attempt)
                        failure = None
                        break
                    except asyncio.CancelledError:
                        raise
                    except NoVerdict:
                        known = False
                        break
                    except Exception as exc:  # noqa: BLE001 - every failure becomes a result
                        failure = self._classified(exc)
                        _drop_frames(exc)
                    remaining = deadline - time.perf_counter()
                    backoff = min(_BACKOFF_FIRST * 2 ** (attempts - 1), _BACKOFF_MAX)
                    if attempts > target.retries or backoff >= remaining:
                        break
                    trace.get_current_span().add_event(
                        "retry", {"tta.check.attempt": attempts, "error.type": str(failure[0])}
                    )
                    await asyncio.sleep(backoff)
        except TimeoutError:
            failure = (ErrorType.TIMEOUT, f"no answer within the {target.timeout:g}s timeout")
        duration = time.perf_counter() - start
        error_type, detail = failure if failure is not None else (None, "")
        # What the target said (versions, roles, server messages) enters the result here, once:
        # valid, bounded UTF-8 that no renderer, encoder or log line can choke on.
        return CheckResult(
            up=failure is None,
            duration=duration,
            started_at=started_at,
            error_type=error_type,
            detail=said(scrub(_at(self.where(target), detail), target.secrets()), DETAIL_LIMIT) if detail else "",
            status_code=attempt.status_code,
            version=said(attempt.version, VALUE_LIMIT) if attempt.version else attempt.version,
            phases=attempt.phases,
            info={key: said(value, VALUE_LIMIT) for key, value in attempt.info.items()} if attempt.info else {},
            attempts=attempts,
            slow=duration > target.slow_threshold,
            tls_expiry=attempt.tls_expiry,
            loss_ratio=attempt.loss_ratio,
            dnssec_expiry=attempt.dnssec_expiry,
            known=known,
        )

    @contextlib.contextmanager
    def step(self, attempt: Attempt, phase: str, span_name: str,
             attributes: Mapping[str, str | int]) -> Iterator[trace.Span]:
        """One protocol step: a CLIENT child span, timed into ``attempt.phases[phase]``.

        A failing step marks its span ERROR with ``error.type``; the check's outcome is
        still decided by ``run()`` (an expected failure of a step may be fine).
        """
        start = time.perf_counter()
        with self.settings.tracer.start_as_current_span(
            span_name, kind=trace.SpanKind.CLIENT, attributes=attributes, record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except Exception as exc:
                span.set_status(trace.Status(trace.StatusCode.ERROR))
                span.set_attribute("error.type", str(self._classified(exc)[0]))
                raise
            finally:
                attempt.phases[phase] = time.perf_counter() - start

    def where(self, target: Target) -> str:
        """What a failure is about, without credentials: the address (and database) the target's
        options name, put before every detail of a failure; '' for a kind whose detail names it
        (a suite's step, a heartbeat's job)."""
        where = getattr(target.options, "where", None)
        return str(where()) if callable(where) else ""

    async def retain(self, live: set[tuple[str, str]]) -> None:
        """Drop what is held for targets no longer configured (called after a reload)."""
        return None

    @abstractmethod
    async def _check(self, target: Target, attempt: Attempt) -> None:
        """Run the protocol step once; raise on failure."""

    async def close(self) -> None:
        """Release what the probe holds across checks (sessions, pools)."""
        return None

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        """Map an exception to an error type and a detail; probes extend this for their libraries."""
        return classify_os_error(exc)

    def _classified(self, exc: BaseException) -> tuple[ErrorType, str]:
        try:
            return self._classify(exc)
        except Exception as bug:  # noqa: BLE001 - a classifier that fails must not lose the result
            return ErrorType.UNKNOWN, f"{type(exc).__name__} (not classified: {type(bug).__name__})"


async def close_within(closing: Awaitable[Any], seconds: float = 1.0) -> None:
    """Close a connection, giving up after ``seconds``: a stuck peer must not hold a check
    past its timeout (a check that timed out closes its connection after the fact).

    The close runs to its end even when the caller is cancelled meanwhile (its check's
    timeout expiring, or a stop): cut short before it began, as ``asyncio.wait_for`` would
    cut it, the connection would stay open until the garbage collector found it.
    """
    task = asyncio.ensure_future(_bounded(closing, seconds))
    _closing.add(task)
    task.add_done_callback(_closing.discard)
    await asyncio.shield(task)


async def closes_finished(seconds: float = 2.0) -> None:
    """Wait (at most ``seconds``) for the closes :func:`close_within` left running when their
    callers were cancelled: a probe's ``close()`` returns with nothing of its own still open."""
    loop = asyncio.get_running_loop()
    mine = {task for task in _closing if task.get_loop() is loop}
    if mine:
        await asyncio.wait(mine, timeout=seconds)


async def _bounded(closing: Awaitable[Any], seconds: float) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(seconds):
            await closing


_closing: set[asyncio.Task[None]] = set()


# (exception types, error type, detail: text, or made from the exception); the first match wins.
Rule = tuple[type[BaseException] | tuple[type[BaseException], ...], ErrorType, str | Callable[[Any], str]]


def classify(exc: BaseException, rules: Sequence[Rule]) -> tuple[ErrorType, str] | None:
    """The first of ``rules`` that ``exc`` is an instance of, as (error type, detail)."""
    for types, error_type, detail in rules:
        if isinstance(exc, types):
            return error_type, detail(exc) if callable(detail) else detail
    return None


SERVER_WORDS = 300  # characters of a server's own message in a failure's detail


def server_words(text: str) -> str:
    """A server's own message, for a failure's detail: one line, at most :data:`SERVER_WORDS`
    characters (the whole detail is bounded again where it enters the result)."""
    return said(text.replace("\r", " ").replace("\n", " "), SERVER_WORDS)


def os_cause(exc: BaseException, depth: int = 5) -> OSError | None:
    """The operating-system error under an exception a library raised, if any: following
    ``__cause__``, then ``__context__``, and into exception groups (a driver that tried
    several servers), at most ``depth`` links down."""
    level: list[BaseException] = [exc]
    for _ in range(depth):
        below: list[BaseException] = []
        for seen in level:
            for nested in (seen.__cause__ or seen.__context__,
                           *(seen.exceptions if isinstance(seen, BaseExceptionGroup) else ())):
                if isinstance(nested, OSError):
                    return nested
                if nested is not None:
                    below.append(nested)
        if not below:
            return None
        level = below
    return None


def _errno_detail(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    return f"{name}: {exc.strerror or exc}"


# TLS alerts a server sends, and what they tell an operator.
_TLS_ALERTS = (
    (frozenset({"TLSV13_ALERT_CERTIFICATE_REQUIRED"}), "the server requires a client certificate"),
    (frozenset({"TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
                "SSLV3_ALERT_CERTIFICATE_EXPIRED", "SSLV3_ALERT_CERTIFICATE_REVOKED", "TLSV1_ALERT_ACCESS_DENIED",
                "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE"}), "the server refused the client certificate"),
    (frozenset({"TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE",
                "WRONG_SSL_VERSION", "TLSV1_ALERT_INSUFFICIENT_SECURITY"}),
     "no TLS version both sides accept (see the TLS version limits)"),
)


def _tls_detail(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None) or type(exc).__name__
    for reasons, meaning in _TLS_ALERTS:
        if reason in reasons:
            return f"{meaning} ({reason})"
    return f"TLS handshake failed: {reason}"


_OS_RULES: tuple[Rule, ...] = (
    (ssl.SSLCertVerificationError, ErrorType.TLS,
     lambda e: f"certificate not accepted: {getattr(e, 'verify_message', None) or getattr(e, 'reason', None)}"),
    (ssl.SSLError, ErrorType.TLS, _tls_detail),
    (socket.gaierror, ErrorType.DNS, lambda e: f"name resolution failed: {e.strerror or e}"),
    (ConnectionRefusedError, ErrorType.CONNECTION_REFUSED, "connection refused"),
    ((ConnectionResetError, BrokenPipeError, ConnectionAbortedError), ErrorType.CONNECTION_RESET,
     "connection reset by peer"),
    (TimeoutError, ErrorType.TIMEOUT, "timed out"),
)


def classify_os_error(exc: BaseException) -> tuple[ErrorType, str]:
    """The classification every probe falls back on: our own failures, TLS, DNS and socket
    errors; anything else is ``unknown`` with the exception's name."""
    if isinstance(exc, ProbeFailure):
        return exc.error_type, exc.detail
    found = classify(exc, _OS_RULES)
    if found is not None:
        return found
    if isinstance(exc, OSError):
        if exc.errno == errno.ECONNREFUSED:
            return ErrorType.CONNECTION_REFUSED, "connection refused"
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return ErrorType.UNREACHABLE, f"no route to the host ({_errno_detail(exc)})"
        return ErrorType.UNKNOWN, _errno_detail(exc)
    return ErrorType.UNKNOWN, f"{type(exc).__name__}: {exc}"
