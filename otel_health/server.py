"""The HTTP face of the collector.

``/metrics`` (Prometheus bridge), ``/health`` (the stack, application/health+json),
``/-/healthy`` (the collector itself), ``/api/v1/targets`` (settings without secrets, state
and recent history) and ``POST /-/reload``. A large ``/metrics`` render never stalls the
scheduler; scrapes that arrive during a render share it.

A render has two parts. Collecting the SDK's data cannot be split, so it runs on a worker
thread, and while it does the interpreter switches threads more often than every 5 ms
(``tuning.fine_switching``: otherwise checks falling due during a scrape started seconds late).
Formatting runs on the event loop itself in steps of a few milliseconds, between checks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from aiohttp import web
from opentelemetry.sdk.metrics.export import MetricsData

from .state import HistoryEntry, StateStore, TargetState
from .telemetry import CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, BridgeReader
from .tuning import Pacer, fine_switching, no_cyclic_gc, release_freed_memory

__all__ = ["HEAD_TIMEOUT", "HEALTH_CONTENT_TYPE", "MAX_BODY", "GuardedSite", "cross_site", "health_document",
           "host_allowed", "make_app", "make_runner", "targets_document"]

HEALTH_CONTENT_TYPE = "application/health+json"

Reload = Callable[[], Awaitable[list[str]]]


class Kind(Protocol):
    """What ``/health`` reads of a probe kind (attributes of its ``Probe`` class)."""

    @property
    def component_type(self) -> str: ...

    @property
    def check_name(self) -> str: ...


Kinds = Mapping[str, Kind]


def _collect_finely(reader: BridgeReader) -> MetricsData | None:
    with fine_switching():  # the loop must not wait 5 ms for the GIL at every callback
        return reader.collect_sdk(Pacer().pause)  # nor for a third of a second at a time


class _MetricsRenderer:
    def __init__(self, reader: BridgeReader) -> None:
        self._reader = reader
        self._inflight: dict[bool, asyncio.Future[list[bytes]]] = {}

    async def render(self, openmetrics: bool) -> list[bytes]:
        """The body in pieces (at 10,000 targets, joining them would double the peak memory)."""
        future = self._inflight.get(openmetrics)
        if future is None:
            future = asyncio.ensure_future(self._render(openmetrics))
            self._inflight[openmetrics] = future
            future.add_done_callback(lambda _: self._inflight.pop(openmetrics, None))
        return await asyncio.shield(future)

    async def _render(self, openmetrics: bool) -> list[bytes]:
        out: list[bytes] = []
        with no_cyclic_gc():  # the SDK's points live until the last step
            data = await asyncio.to_thread(_collect_finely, self._reader)
            for _ in self._reader.render_steps(data, out, openmetrics=openmetrics):
                await asyncio.sleep(0)
            del data
        await asyncio.to_thread(release_freed_memory)
        return out


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def health_document(states: list[TargetState], kinds: Kinds) -> tuple[int, dict[str, Any]]:
    """The stack's health in the IETF health-check response format, and the HTTP status.

    A failing critical target makes ``fail`` (503); a failing non-critical one ``warn`` (200).
    Targets not checked yet are left out. Each check is named ``{service}:{check name}``
    with the component type of its kind.
    """
    checks: dict[str, list[dict[str, Any]]] = {}
    worst = "pass"
    for state in states:
        target, result = state.target, state.result
        if result is None:
            continue
        kind = kinds.get(target.kind)
        status = "pass" if result.up else ("fail" if target.critical else "warn")
        if status == "fail" or (status == "warn" and worst == "pass"):
            worst = status
        item: dict[str, Any] = {
            "componentId": target.name,
            "componentType": kind.component_type if kind is not None else "component",
            "status": status,
            "observedValue": round(result.duration, 6),
            "observedUnit": "s",
            "time": _iso(result.started_at + result.duration),
            "environment": target.environment,
        }
        if not result.up:
            item["output"] = f"{result.error_type}: {result.detail}" if result.detail else str(result.error_type)
        check_name = kind.check_name if kind is not None else "connectivity"
        checks.setdefault(f"{target.name}:{check_name}", []).append(item)
    doc = {"status": worst, "description": "health of the checked services", "checks": checks}
    return (503 if worst == "fail" else 200), doc


def _result_doc(entry: HistoryEntry) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "time": _iso(entry.started_at),
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


def targets_document(states: list[TargetState]) -> dict[str, Any]:
    """Every target: its settings without secrets, its raw and debounced state, recent history."""
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
            "settings": t.options.public(),
            "state": {
                "up": result.up if result is not None else None,
                "debounced_up": state.debounced_up,
                "consecutive_failures": state.consecutive_failures,
                "consecutive_successes": state.consecutive_successes,
                "version": result.version if result is not None else None,
                "info": dict(result.info) if result is not None else {},
                "tls_cert_expiry": _iso(state.tls_expiry) if state.tls_expiry is not None else None,
            },
            "history": [_result_doc(entry) for entry in reversed(state.history)],
        })
    return {"targets": out}


def host_allowed(host: str | None, allowed: Collection[str]) -> bool:
    """Whether a request's ``Host`` names this collector: an IP literal, or a name in ``allowed``
    (a browser tricked by DNS rebinding sends the attacker's name). No Host: not a browser."""
    if not host:
        return True
    host = host.strip().lower()
    if host.startswith("["):
        name = host[1:host.find("]")] if "]" in host else host[1:]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name.rstrip(".") in allowed
    return True


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


class _Limits:
    def __init__(self, connections: int, head_timeout: float) -> None:
        self.connections = connections
        self.head_timeout = head_timeout
        self.open = 0


class _Guard(asyncio.Protocol):
    """aiohttp's request handler behind two bounds aiohttp does not have: a complete request head
    within ``head_timeout`` (a client sending a byte a second is let go), and at most
    ``connections`` open at once (the rest are closed at once), so a slow or greedy client
    cannot hold the descriptors the probes need."""

    def __init__(self, inner: asyncio.Protocol, limits: _Limits) -> None:
        self._inner = inner
        self._limits = limits
        self._admitted = False
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # a TCP transport (asyncio's or uvloop's)
        if self._limits.open >= self._limits.connections:
            stream.abort()
            return
        self._limits.open += 1
        self._admitted = True
        self._transport = stream
        self._timer = self._head_timer()
        self._inner.connection_made(transport)

    def _head_timer(self) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(self._limits.head_timeout, self._too_slow)

    def _too_slow(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
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
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._limits.open -= 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
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


def make_app(*, reader: BridgeReader, store: StateStore, kinds: Kinds, reload: Reload,
             api_token: Callable[[], str | None], allowed_hosts: Callable[[], Collection[str]] = lambda: ()
             ) -> web.Application:
    """The API. ``api_token`` guards the API and reload; ``allowed_hosts`` are the host names
    the API and reload answer to (IP literals always): /metrics and /health answer any name,
    so Prometheus can scrape by pod IP or service name."""
    renderer = _MetricsRenderer(reader)

    def authorized(request: web.Request) -> bool:
        token = api_token()
        if token is None:
            return True
        given = request.headers.get("Authorization", "")
        # Header bytes that are not UTF-8 arrive as surrogate escapes: compare them, never fail.
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), f"Bearer {token}".encode())

    def refused(request: web.Request, *, writes: bool) -> web.Response | None:
        """The answer that refuses ``request``, or None when it may go on."""
        if not host_allowed(request.headers.get("Host"), allowed_hosts()):
            return web.json_response({"status": "error", "errors": [
                "this host name is not allowed: add it to 'allowed_hosts', or use an IP address"]}, status=421)
        if writes and cross_site(request):
            return web.json_response({"status": "error", "errors": ["a cross-site request cannot change anything"]},
                                     status=403)
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

    async def healthy(_: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    async def targets(request: web.Request) -> web.Response:
        if (refusal := refused(request, writes=False)) is not None:
            return refusal
        return web.json_response(targets_document(store.snapshot()))

    async def do_reload(request: web.Request) -> web.Response:
        if (refusal := refused(request, writes=True)) is not None:
            return refusal
        problems = await reload()
        if problems:
            return web.json_response({"status": "error", "errors": problems}, status=400)
        return web.json_response({"status": "success"})

    app = web.Application(client_max_size=MAX_BODY, middlewares=[_bounded_body])
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/api/v1/targets", targets)
    app.router.add_post("/-/reload", do_reload)
    return app
