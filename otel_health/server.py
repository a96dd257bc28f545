"""The HTTP face of the collector.

``/`` (the status page), ``/metrics`` (Prometheus bridge), ``/health`` (the stack,
application/health+json), ``/-/healthy`` (the collector itself), ``/api/v1/targets`` (settings
without secrets, state and recent history), ``/api/v1/maintenance`` (windows: list, open, end),
``/api/v1/heartbeat/{name}`` (a job reports in) and ``POST /-/reload``. Who may use which is in
the README's "Who can do what". A large render never stalls the scheduler; requests that
arrive during one share it.

A render has two parts. Collecting the SDK's data cannot be split, so it runs on a worker
thread, and while it does the interpreter switches threads more often than every 5 ms
(``tuning.fine_switching``: otherwise checks falling due during a scrape started seconds late).
Formatting runs on the event loop itself in steps of a few milliseconds, between checks.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hmac
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from aiohttp import web
from opentelemetry.sdk.metrics.export import MetricsData

from . import status
from .clock import WALL, Clock
from .config import Target, format_seconds, parse_duration
from .logs import iso_time
from .sharding import Shard, elsewhere
from .state import HistoryEntry, StateStore, TargetState
from .suppression import NotKept, Recurring, Suppressed, Window, gap_hint, instant, zone
from .telemetry import CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, BridgeReader
from .tuning import Pacer, fine_switching, no_cyclic_gc, release_freed_memory

__all__ = ["HEAD_TIMEOUT", "HEALTH_CONTENT_TYPE", "MAX_BODY", "GuardedSite", "MaintenanceApi", "cross_site",
           "health_document", "host_allowed", "make_app", "make_runner", "targets_document",
           "window_document"]

HEALTH_CONTENT_TYPE = "application/health+json"

Reload = Callable[[], Awaitable[list[str]]]


class Kind(Protocol):
    """What ``/health`` reads of a probe kind (attributes of its ``Probe`` class)."""

    @property
    def component_type(self) -> str: ...

    @property
    def check_name(self) -> str: ...


Kinds = Mapping[str, Kind]


class MaintenanceApi(Protocol):
    """What the maintenance endpoints read and change (``collector.Maintenance``)."""

    @property
    def limit(self) -> float: ...

    def targets(self) -> list[Target]: ...

    def windows(self) -> list[Window]: ...

    async def open(self, targets: list[tuple[str, str]], start: float, end: float, comment: str) -> Window: ...

    async def end(self, window_id: str) -> bool: ...


def _collect_finely(reader: BridgeReader) -> MetricsData | None:
    with fine_switching():  # the loop must not wait 5 ms for the GIL at every callback
        return reader.collect_sdk(Pacer().pause)  # nor for a third of a second at a time


class _OneAtATime:
    """At most one computation of each kind in flight: a request that comes while one runs gets
    its answer. A flood of reads then costs one render at a time, however many ask."""

    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}

    async def run(self, key: Hashable, start: Callable[[], Awaitable[Any]]) -> Any:
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(start())
            self._inflight[key] = future
            future.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(future)


class _MetricsRenderer:
    def __init__(self, reader: BridgeReader) -> None:
        self._reader = reader
        self._once = _OneAtATime()

    async def render(self, openmetrics: bool) -> list[bytes]:
        """The body in pieces (at 10,000 targets, joining them would double the peak memory)."""
        body: list[bytes] = await self._once.run(openmetrics, lambda: self._render(openmetrics))
        return body

    async def _render(self, openmetrics: bool) -> list[bytes]:
        out: list[bytes] = []
        with no_cyclic_gc():  # the SDK's points live until the last step
            data = await asyncio.to_thread(_collect_finely, self._reader)
            for _ in self._reader.render_steps(data, out, openmetrics=openmetrics):
                await asyncio.sleep(0)
            del data
        await asyncio.to_thread(release_freed_memory)
        return out


GUESS_WINDOW = 60.0  # seconds
GUESS_LIMIT = 20  # wrong tokens for one heartbeat target within the window, then 429 until it passes


class _Guesses:
    """Wrong heartbeat tokens by target: past :data:`GUESS_LIMIT` in :data:`GUESS_WINDOW`
    seconds, a target's endpoint refuses every report (429) until the window has passed, so a
    token cannot be guessed at the rate a network allows. A job with its own token rarely
    reports more than once a minute; it is refused only while someone guesses."""

    def __init__(self) -> None:
        self._wrong: dict[tuple[str, str], collections.deque[float]] = {}

    def barred(self, key: tuple[str, str]) -> bool:
        wrong = self._wrong.get(key)
        if wrong is None:
            return False
        cutoff = time.monotonic() - GUESS_WINDOW
        while wrong and wrong[0] < cutoff:
            wrong.popleft()
        if not wrong:
            del self._wrong[key]
        return len(wrong) >= GUESS_LIMIT

    def failed(self, key: tuple[str, str]) -> None:
        if len(self._wrong) > 100_000:  # bounded: keys are configured heartbeat targets
            self._wrong.clear()
        self._wrong.setdefault(key, collections.deque(maxlen=GUESS_LIMIT)).append(time.monotonic())


def window_document(window: Window, now: float) -> dict[str, Any]:
    """A maintenance window as the API shows it: configured ones by name, the API's by id."""
    schedule = window.schedule
    doc: dict[str, Any] = {
        "id" if window.source == "api" else "name": window.name,
        "source": window.source,
        "active": schedule.active(now),
        "targets": None if window.targets is None else
        [{"name": n, "environment": e} for n, e in sorted(window.targets)],
        "comment": window.comment or None,
        **(schedule.as_written() if isinstance(schedule, Recurring) else
           {"start": iso_time(schedule.start), "end": iso_time(schedule.end)}),
    }
    if window.source == "api":
        doc["created"] = iso_time(window.created)
    return doc


def health_document(states: list[TargetState], kinds: Kinds) -> tuple[int, dict[str, Any]]:
    """The stack's health in the IETF health-check response format, and the HTTP status.

    It follows the debounced state, as ``tta_service_state_up`` and the alerts do: a critical
    target that is down (past its ``failure_threshold``) makes ``fail`` (503); a non-critical
    one ``warn`` (200), and so does a down target whose alerts are suppressed (maintenance, a
    dependency down), with the reason; a check that failed while the target is not down yet
    (or passed while it is not up yet) is ``warn`` and says how far it is. Targets not checked
    yet are left out. Each check is named ``{service}:{check name}`` with the component type of
    its kind.
    """
    checks: dict[str, list[dict[str, Any]]] = {}
    worst = "pass"
    for state in states:
        target, result = state.target, state.result
        if result is None:
            continue
        kind = kinds.get(target.kind)
        suppressed = state.suppressed
        down = state.debounced_up is False
        if down:
            status = "fail" if target.critical and suppressed is None else "warn"
        else:
            status = "pass" if result.up else "warn"
        if status == "fail" or (status == "warn" and worst == "pass"):
            worst = status
        item: dict[str, Any] = {
            "componentId": target.name,
            "componentType": kind.component_type if kind is not None else "component",
            "status": status,
            "observedValue": round(result.duration, 6),
            "observedUnit": "s",
            "time": iso_time(result.started_at + result.duration),
            "environment": target.environment,
        }
        if not result.up:
            item["output"] = f"{result.error_type}: {result.detail}" if result.detail else str(result.error_type)
            if not down:
                item["output"] += (f" (failure {state.consecutive_failures} of the {target.failure_threshold} "
                                   "that make it down)")
            elif suppressed is not None:
                item["output"] += f" (suppressed: {suppressed.describe()})"
        elif down:
            item["output"] = (f"up again, {state.consecutive_successes} of the {target.success_threshold} passing "
                              "checks that make it up")
        if suppressed is not None:
            item["suppressedBy"] = suppressed.sources()
        check_name = kind.check_name if kind is not None else "connectivity"
        checks.setdefault(f"{target.name}:{check_name}", []).append(item)
    doc = {"status": worst, "description": "health of the checked services", "checks": checks}
    return (503 if worst == "fail" else 200), doc


def _result_doc(entry: HistoryEntry) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "time": iso_time(entry.started_at),
        "outcome": "up" if entry.up else "down",
        "duration_seconds": round(entry.duration, 6),
        "error_type": entry.error_type,
        "detail": entry.detail or None,
        "status_code": entry.status_code,
        "attempts": entry.attempts,
        "slow": entry.slow,
        "debounced_up": entry.debounced_up,
        "lag_seconds": round(entry.lag, 6),
    }
    if entry.trace_id is not None:
        doc["trace_id"] = entry.trace_id
    return doc


def _suppression_doc(suppressed: Suppressed | None, windows: Mapping[str, Window]) -> list[dict[str, Any]] | None:
    if suppressed is None:
        return None
    out: list[dict[str, Any]] = []
    for name in suppressed.maintenance:
        window = windows.get(name)
        item = {"reason": "maintenance", "window": name, "source": window.source if window else "config"}
        if window is not None and window.comment:
            item["comment"] = window.comment
        out.append(item)
    out += [{"reason": "dependency", "depends_on": name} for name in suppressed.dependency]
    return out


def targets_document(states: list[TargetState], windows: Collection[Window] = ()) -> dict[str, Any]:
    """Every target: its settings without secrets, its raw and debounced state, what suppresses
    its alerts and why, recent history."""
    by_name = {w.name: w for w in windows}
    out = []
    for state in states:
        t, result = state.target, state.result
        out.append({
            "name": t.name,
            "environment": t.environment,
            "kind": t.kind,
            "critical": t.critical,
            "labels": dict(t.labels),
            "interval_seconds": t.interval,
            "timeout_seconds": t.timeout,
            "retries": t.retries,
            "slow_threshold_seconds": t.slow_threshold,
            "failure_threshold": t.failure_threshold,
            "success_threshold": t.success_threshold,
            "depends_on": list(t.depends_on),
            "settings": t.options.public(),
            "state": {
                "up": result.up if result is not None else None,
                "debounced_up": state.debounced_up,
                "consecutive_failures": state.consecutive_failures,
                "consecutive_successes": state.consecutive_successes,
                "version": result.version if result is not None else None,
                "info": dict(result.info) if result is not None else {},
                "tls_cert_expiry": iso_time(state.tls_expiry) if state.tls_expiry is not None else None,
                "suppressed": _suppression_doc(state.suppressed, by_name),
            },
            "history": [_result_doc(entry) for entry in reversed(state.history)],
        })
    return {"targets": out}


def host_allowed(host: str | None, allowed: Collection[str], *, strict: bool = False) -> bool:
    """Whether a request's ``Host`` names this collector: a name in ``allowed`` (a browser tricked
    by DNS rebinding sends the attacker's name), or an IP literal. ``strict`` (the operator listed
    ``allowed_hosts``): an IP literal only if loopback or in ``allowed``, and a request without a
    Host is refused; otherwise any IP literal, and no Host (not a browser) passes."""
    if not host:
        return not strict
    host = host.lower()  # the HTTP parser has taken the white space around it off already
    if host.startswith("["):
        name = host[1:host.find("]")] if "]" in host else host[1:]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name.rstrip(".") in allowed
    return not strict or address.is_loopback or str(address) in allowed


def _basic_password_is(request: web.BaseRequest, token: str | None) -> bool:
    """Whether the request's Basic credentials carry ``token`` as the password (any user name)."""
    given = request.headers.get("Authorization", "")
    if token is None or given[:6].lower() != "basic ":
        return False
    try:
        _, _, password = base64.b64decode(given[6:].strip(), validate=True).partition(b":")
    except ValueError:
        return False
    return hmac.compare_digest(password, token.encode())


def _from_loopback(request: web.BaseRequest) -> bool:
    try:
        address = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack socket
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def cross_site(request: web.BaseRequest) -> bool:
    """Whether a browser says the request comes from another site (a form post from any page
    the user has open): ``Sec-Fetch-Site``, else an ``Origin`` other than this host."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site.strip().lower() not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    return origin.strip().lower() == "null" or urlsplit(origin.strip()).netloc.lower() != request.host.lower()


HEAD_TIMEOUT = 10.0  # seconds a connection has to send a complete request head
MAX_BODY = 64 * 1024  # bytes of a request body: nothing the API takes is larger


SCRAPE_RESERVE = 16  # connections past the limit kept for scrapes and health checks
_SCRAPES = frozenset({(b"GET", b"/metrics"), (b"GET", b"/health"), (b"GET", b"/-/healthy"), (b"HEAD", b"/-/healthy")})
_REQUEST_LINE = 8192  # bytes of a request line a reserved connection may take to say what it wants


def _a_scrape(line: bytes) -> bool:
    method, _, rest = line.partition(b" ")
    return (method, rest.split(b" ", 1)[0].split(b"?", 1)[0]) in _SCRAPES


class _Limits:
    def __init__(self, connections: int, head_timeout: float, reserve: int = SCRAPE_RESERVE) -> None:
        self.connections = connections
        self.head_timeout = head_timeout
        self.reserve = reserve
        self.open = 0
        self.reserved = 0


class _Guard(asyncio.Protocol):
    """aiohttp's request handler behind two bounds aiohttp does not have: a complete request head
    within ``head_timeout`` (a client sending a byte a second is let go), and at most
    ``connections`` open at once, so a slow or greedy client cannot hold the descriptors the
    probes need. Past the limit, a few more connections (``reserve``) are held until their
    request line says what they want: a scrape or a health check goes on, anything else is
    closed; so clients that fill the pool cannot blank the scrape."""

    def __init__(self, inner: asyncio.Protocol, limits: _Limits) -> None:
        self._inner = inner
        self._limits = limits
        self._admitted = False
        self._reserved = False  # admitted past the limit
        self._waiting = False  # reserved, and its request line not read yet: the handler has not seen it
        self._first = b""
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # a TCP transport (asyncio's or uvloop's)
        limits = self._limits
        if limits.open >= limits.connections:
            if limits.reserved >= limits.reserve:
                stream.abort()
                return
            limits.reserved += 1
            self._reserved = self._waiting = True
        else:
            limits.open += 1
        self._admitted = True
        self._transport = stream
        self._timer = self._head_timer()
        if not self._waiting:
            self._inner.connection_made(transport)

    def _head_timer(self) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(self._limits.head_timeout, self._too_slow)

    def _too_slow(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._waiting:
            self._first += data
            if b"\n" not in self._first and len(self._first) < _REQUEST_LINE:
                return
            assert self._transport is not None
            if not _a_scrape(self._first):
                self._transport.abort()
                return
            data, self._first, self._waiting = self._first, b"", False
            self._inner.connection_made(self._transport)
        seen = self._tail + data
        if b"\r\n\r\n" in seen:  # a head is complete
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            seen = b""
        elif self._timer is None:
            self._timer = self._head_timer()  # the next request's head has begun
        self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._waiting:
            return False  # it never said what it wanted: close
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        if self._reserved:
            self._limits.reserved -= 1
        else:
            self._limits.open -= 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._waiting:  # the handler saw the connection
            self._inner.connection_lost(exc)


def make_runner(app: web.Application) -> web.AppRunner:
    """The app's runner: idle keep-alive connections go after 15 s, and a body left unread (a
    413) is drained for at most 1 s before the connection closes (aiohttp's default is 10 s)."""
    return web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=15.0, lingering_time=1.0)


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through :class:`_Guard`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, max_connections: int,
                 head_timeout: float = HEAD_TIMEOUT) -> None:
        super().__init__(runner)
        self._host, self._port = host, port
        self._limits = _Limits(max_connections, head_timeout)

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        handler = self._runner.server
        assert handler is not None
        limits = self._limits
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Guard(handler(), limits), self._host, self._port, reuse_address=True)


@web.middleware
async def _bounded_body(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                        ) -> web.StreamResponse:
    if request.content_length is not None and request.content_length > MAX_BODY:
        refused = web.json_response({"status": "error", "errors": [f"a request body is at most {MAX_BODY} bytes"]},
                                    status=413)
        refused.force_close()  # the body is never read: the connection goes with the answer
        return refused
    return await handler(request)


MAX_COMMENT = 500  # characters of a maintenance window's comment
_WINDOW_FIELDS = ("targets", "duration", "start", "end", "location", "comment")


class BadRequest(ValueError):
    """A request the API refuses with 400: the reason, one line."""


def _window_request(body: Any, api: MaintenanceApi, now: float,
                    elsewhere: Callable[[str, str | None], str] = lambda _name, _environment: "",
                    ) -> tuple[list[tuple[str, str]], float, float, str]:
    """What ``POST /api/v1/maintenance`` asks for: targets, start, end, comment; or BadRequest."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with 'targets' and 'duration' (or 'end')")
    unknown = sorted(str(k)[:40] for k in body if k not in _WINDOW_FIELDS)
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; known fields: {', '.join(_WINDOW_FIELDS)}")
    wanted = body.get("targets")
    if not isinstance(wanted, list) or not wanted:
        raise BadRequest("'targets' must be a non-empty list of target names or {\"name\", \"environment\"} objects")
    by_name: dict[str, list[tuple[str, str]]] = {}
    for target in api.targets():
        by_name.setdefault(target.name, []).append(target.key)
    keys: list[tuple[str, str]] = []
    chosen: set[tuple[str, str]] = set()
    for entry in wanted:
        if isinstance(entry, str):
            found = sorted(by_name.get(entry, ()))
        elif isinstance(entry, dict) and set(entry) == {"name", "environment"} \
                and all(isinstance(v, str) for v in entry.values()):
            key = (entry["name"], entry["environment"])
            found = [key] if key in by_name.get(key[0], ()) else []
        else:
            raise BadRequest("each of 'targets' is a name or {\"name\": …, \"environment\": …}")
        if not found:
            name, environment = (entry, None) if isinstance(entry, str) else (entry["name"], entry["environment"])
            raise BadRequest(f"unknown target {json.dumps(entry)[:80]}; GET /api/v1/targets lists them"
                             + elsewhere(name, environment))
        for key in found:
            if key not in chosen:
                chosen.add(key)
                keys.append(key)
    location = body.get("location", "UTC")
    where = zone(location) if isinstance(location, str) else None
    if where is None:
        raise BadRequest(f"unknown time zone {json.dumps(location)[:80]}; use an IANA name such as Europe/Berlin")
    start = now
    if body.get("start") is not None:
        given = instant(body["start"], where)
        if given is None:
            raise BadRequest("'start' must be a time such as 2026-12-24T22:00:00Z" + gap_hint(body["start"], where))
        start = given
    if ("duration" in body) == ("end" in body):
        raise BadRequest("give either 'duration' (such as \"30m\") or 'end', one of them")
    if "duration" in body:
        seconds = parse_duration(body["duration"]) if not isinstance(body["duration"], bool) else None
        if seconds is None or seconds <= 0:
            raise BadRequest("'duration' must be a duration such as 30m, 2h or 900 (seconds)")
        end = start + seconds
    else:
        given = instant(body["end"], where)
        if given is None:
            raise BadRequest("'end' must be a time such as 2026-12-24T23:00:00Z" + gap_hint(body["end"], where))
        end = given
    if end <= start:
        raise BadRequest("the window ends before it starts; give an 'end' after 'start'")
    if end <= now:
        raise BadRequest("the window is already over; give an 'end' in the future")
    if end - start > api.limit:
        raise BadRequest(f"the window is {format_seconds(end - start)} long, longer than max_maintenance "
                         f"({format_seconds(api.limit)}); open a shorter one, or raise max_maintenance in the config")
    if start - now > api.limit:
        raise BadRequest(f"the window starts {format_seconds(start - now)} from now, further ahead than "
                         f"max_maintenance ({format_seconds(api.limit)}); open it nearer the time, or plan it in "
                         "the config")
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise BadRequest(f"'comment' must be text of at most {MAX_COMMENT} characters")
    return keys, start, end, comment


class Reporting(Protocol):
    """What ``POST /api/v1/heartbeat/{name}`` needs: which targets take reports, and taking one."""

    def takes(self, target: Target) -> bool: ...

    def knows(self, target: Target, token: str) -> bool: ...

    def accept(self, target: Target, token: str, *, ok: bool, duration: float | None, message: str) -> bool: ...


MAX_REPORT_MESSAGE = 2000  # characters of a job's message the API takes (500 are kept)


def _report_request(query: Mapping[str, str], body: Any) -> tuple[bool, float | None, str]:
    """A job's report from the query (``?status=fail&duration=12.5&message=...``) and/or a JSON
    object with the same fields; BadRequest with the reason."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequest("the body must be empty or a JSON object with 'status', 'duration', 'message'")
    unknown = sorted(str(k)[:40] for k in [*query, *body] if k not in ("status", "duration", "message", "environment"))
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; known fields: status, duration, message")
    fields = {**{k: v for k, v in query.items() if k != "environment"}, **body}
    status_text = fields.get("status", "ok")
    if status_text not in ("ok", "fail"):
        raise BadRequest("'status' is ok or fail")
    duration = None
    if fields.get("duration") is not None:
        raw = fields["duration"]
        duration = parse_duration(raw) if not isinstance(raw, bool) else None
        if duration is None:
            raise BadRequest("'duration' must be seconds (12.5) or a duration such as 3m")
    message = fields.get("message", "")
    if not isinstance(message, str) or len(message) > MAX_REPORT_MESSAGE:
        raise BadRequest(f"'message' must be text of at most {MAX_REPORT_MESSAGE} characters")
    return status_text == "ok", duration, message


class PageSettings(Protocol):
    """What the status page reads of the running configuration."""

    @property
    def trace_url(self) -> str | None: ...

    @property
    def status_title(self) -> str: ...

    @property
    def status_public(self) -> bool: ...


def make_app(*, reader: BridgeReader, store: StateStore, kinds: Kinds, reload: Reload,
             api_token: Callable[[], str | None], allowed_hosts: Callable[[], Collection[str]] = lambda: (),
             maintenance: MaintenanceApi | None = None, page: Callable[[], PageSettings] | None = None,
             heartbeats: Reporting | None = None,
             sharding: Callable[[], tuple[Shard | None, str]] = lambda: (None, ""),
             clock: Clock = WALL, strict_hosts: Callable[[], bool] = lambda: False) -> web.Application:
    """The API. ``api_token`` guards the API and reload; without one, the writes (maintenance
    windows, reload) answer only requests from this machine's loopback. ``allowed_hosts`` are
    the host names the API and reload answer to (``strict_hosts``: and only those, see
    :func:`host_allowed`): /metrics and /health answer any name, so Prometheus can scrape by pod
    IP or service name. ``sharding``: this instance's shard and
    the configuration's default environment, to say where a target it does not have is checked.
    ``clock``: the wall clock the page and the maintenance API read."""
    renderer = _MetricsRenderer(reader)
    renders = _OneAtATime()  # the page and the targets' document: rendered on a thread, one of a kind at a time
    guesses = _Guesses()

    def checked_elsewhere(name: str, environment: str | None) -> str:
        shard, default = sharding()
        return elsewhere(shard, name, environment or default)

    def authorized(request: web.Request) -> bool:
        token = api_token()
        if token is None:
            return True
        given = request.headers.get("Authorization", "")
        # Header bytes that are not UTF-8 arrive as surrogate escapes: compare them, never fail.
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), f"Bearer {token}".encode())

    def refused(request: web.Request, *, writes: bool) -> web.Response | None:
        """The answer that refuses ``request``, or None when it may go on."""
        if not host_allowed(request.headers.get("Host"), allowed_hosts(), strict=strict_hosts()):
            return web.json_response({"status": "error", "errors": [
                "this host name is not allowed: add it to 'allowed_hosts'"
                + ("" if strict_hosts() else ", or use an IP address")]}, status=421)
        if writes and cross_site(request):
            return web.json_response({"status": "error", "errors": ["a cross-site request cannot change anything"]},
                                     status=403)
        if writes and api_token() is None and not _from_loopback(request):
            return web.json_response({"status": "error", "errors": [
                "changes from another host need a credential: set 'api_token_file' (or 'api_token') in the "
                "configuration and send it as a bearer token"]}, status=403)
        if not authorized(request):
            return web.json_response({"status": "error", "errors": ["a bearer token is required"]}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="otel-health"'})
        return None

    async def metrics(request: web.Request) -> web.StreamResponse:
        openmetrics = "application/openmetrics-text" in request.headers.get("Accept", "")
        pieces = await renderer.render(openmetrics)
        response = web.StreamResponse()
        response.headers["Content-Type"] = CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT
        response.content_length = sum(len(piece) for piece in pieces)
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
        await response.write_eof()
        return response

    async def health(_: web.Request) -> web.Response:
        code, doc = health_document(store.snapshot(), kinds)
        return web.Response(status=code, text=json.dumps(doc), content_type=HEALTH_CONTENT_TYPE)

    async def status_page(request: web.Request) -> web.Response:
        settings = page() if page is not None else None
        if api_token() is not None and not (settings is not None and settings.status_public) \
                and not authorized(request) and not _basic_password_is(request, api_token()):
            # A browser asks for it: any user name, the token as the password.
            return web.Response(status=401, text="the status page needs the API token (as the password)\n",
                                headers={"WWW-Authenticate": 'Basic realm="otel-health", charset="UTF-8"'})
        group = request.query.get("group") or ""
        every = request.query.get("all") == "1"

        def render() -> str:  # thousands of rows: off the event loop, one render of a kind at a time
            states = store.snapshot()
            if group:
                states = [s for s in states if status.group_of(s) == group]
            return status.render(states, now=clock(), trace_url=settings.trace_url if settings else None,
                                 title=settings.status_title if settings else "Service status", every=every)

        text = await renders.run(("page", group[:200], every), lambda: asyncio.to_thread(render))
        return web.Response(text=text, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                                     "Content-Security-Policy": status.CSP})

    async def heartbeat(request: web.Request) -> web.Response:
        if cross_site(request):
            return error(403, "a cross-site request cannot change anything")
        name, environment = request.match_info["name"], request.query.get("environment")
        found = [s.target for s in store.snapshot() if s.target.name == name and heartbeats is not None
                 and heartbeats.takes(s.target) and environment in (None, s.target.environment)]
        if not found:
            return error(404, "no heartbeat target of that name; configure one with 'kind: heartbeat'"
                         + checked_elsewhere(name, environment))
        if len(found) > 1:
            return error(400, "that name is in several environments; add ?environment=NAME")
        given = request.headers.get("Authorization", "")
        token = given[7:] if given[:7].lower() == "bearer " else ""
        assert heartbeats is not None
        target = found[0]
        if guesses.barred(target.key):
            return web.json_response({"status": "error", "errors": [
                "too many wrong tokens for this target; try again in a minute"]}, status=429,
                headers={"Retry-After": str(int(GUESS_WINDOW))})
        if not token or not heartbeats.knows(target, token):  # before the body is read: a stranger's costs nothing
            guesses.failed(target.key)
            return web.json_response({"status": "error", "errors": ["the target's own token is required"]},
                                     status=401, headers={"WWW-Authenticate": 'Bearer realm="otel-health"'})
        try:
            raw = await request.read()
            ok, duration, message = _report_request(request.query, json.loads(raw) if raw.strip() else None)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            reason = str(exc) if isinstance(exc, BadRequest) else "the body is not JSON; send a JSON object or nothing"
            return error(400, reason)
        heartbeats.accept(target, token, ok=ok, duration=duration, message=message)
        return web.json_response({"status": "success"})

    async def healthy(_: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    async def targets(request: web.Request) -> web.Response:
        if (refusal := refused(request, writes=False)) is not None:
            return refusal
        states, windows = store.snapshot(), store.windows()
        body = await renders.run("targets", lambda: asyncio.to_thread(
            lambda: json.dumps(targets_document(states, windows))))
        return web.Response(text=body, content_type="application/json")

    def error(status: int, message: str) -> web.Response:
        return web.json_response({"status": "error", "errors": [message]}, status=status)

    async def list_windows(request: web.Request) -> web.Response:
        if (refusal := refused(request, writes=False)) is not None:
            return refusal
        now = clock()
        return web.json_response({"windows": [window_document(w, now) for w in store.windows()]})

    async def open_window(request: web.Request) -> web.Response:
        if (refusal := refused(request, writes=True)) is not None:
            return refusal
        assert maintenance is not None
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError, RecursionError):
            return error(400, "the body is not JSON; send a JSON object with 'targets' and 'duration'")
        try:
            keys, start, end, comment = _window_request(body, maintenance, clock(), checked_elsewhere)
        except BadRequest as exc:
            return error(400, str(exc))
        try:
            window = await maintenance.open(keys, start, end, comment)
        except NotKept as exc:
            return error(409 if exc.full else 503, str(exc))
        return web.json_response({"status": "success", "window": window_document(window, clock())}, status=201,
                                 headers={"Location": f"/api/v1/maintenance/{window.name}"})

    async def end_window(request: web.Request) -> web.Response:
        if (refusal := refused(request, writes=True)) is not None:
            return refusal
        assert maintenance is not None
        window_id = request.match_info["id"]
        try:
            ended = await maintenance.end(window_id)
        except NotKept as exc:
            return error(503, str(exc))
        if ended:
            return web.json_response({"status": "success"})
        if any(w.name == window_id and w.source == "config" for w in store.windows()):
            return error(409, f"window {window_id!r} is in the configuration; change the config to end it")
        return error(404, "no such window; GET /api/v1/maintenance lists them")

    async def do_reload(request: web.Request) -> web.Response:
        if (refusal := refused(request, writes=True)) is not None:
            return refusal
        problems = await reload()
        if problems:
            return web.json_response({"status": "error", "errors": problems}, status=400)
        return web.json_response({"status": "success"})

    app = web.Application(client_max_size=MAX_BODY, middlewares=[_bounded_body])
    app.router.add_get("/", status_page)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/api/v1/targets", targets)
    app.router.add_post("/-/reload", do_reload)
    if maintenance is not None:
        app.router.add_get("/api/v1/maintenance", list_windows)
        app.router.add_post("/api/v1/maintenance", open_window)
        app.router.add_delete("/api/v1/maintenance/{id}", end_window)
    if heartbeats is not None:
        app.router.add_post("/api/v1/heartbeat/{name}", heartbeat)
    return app
