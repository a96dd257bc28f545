"""The routes and their handlers over the store, the bridge and the collector's APIs."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Protocol

from aiohttp import web

from .. import badges, status
from ..announcements import Announcement, Notices, NotSaved
from ..clock import WALL, Clock
from ..history import Unreadable
from ..probes import Inbox
from ..sharding import Shard, elsewhere
from ..state import StateStore, TargetState
from ..suppression import NotKept
from ..telemetry import CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, BridgeReader
from ..telemetry.render import MetricsRenderer, OneAtATime
from .documents import (
    HEALTH_CONTENT_TYPE,
    Kinds,
    Reports,
    health_document,
    report_csv,
    report_document,
    targets_document,
    window_document,
)
from .guard import MAX_BODY, basic_password_is, bounded_body, cross_site, from_loopback, host_allowed
from .requests import BadRequest, MaintenanceApi, announcement_request, period_request, report_request, window_request

__all__ = ["PageSettings", "Reload", "make_app"]

Reload = Callable[[], Awaitable[list[str]]]


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


class History(Protocol):
    """The history store, as the report reads it (``history.Archive``)."""

    async def report(self, states: Callable[[], Sequence[TargetState]], start: float, end: float
                     ) -> Reports | None: ...


class PageSettings(Protocol):
    """What the status page reads of the running configuration."""

    @property
    def trace_url(self) -> str | None: ...

    @property
    def status_title(self) -> str: ...

    @property
    def status_public(self) -> bool: ...

    # for which instance the page speaks (status.instance_of)
    @property
    def location(self) -> str | None: ...

    @property
    def shard(self) -> Shard | None: ...

    @property
    def targets(self) -> Sequence[object]: ...

    @property
    def targets_configured(self) -> int: ...

    @property
    def announcements(self) -> Sequence[Announcement]: ...


class _Routes:
    """The handlers, over what :func:`make_app` is given (see there)."""

    def __init__(self, *, reader: BridgeReader, store: StateStore, kinds: Kinds, reload: Reload,
                 api_token: Callable[[], str | None], allowed_hosts: Callable[[], Collection[str]],
                 maintenance: MaintenanceApi | None, page: Callable[[], PageSettings] | None, inbox: Inbox | None,
                 sharding: Callable[[], tuple[Shard | None, str]], clock: Clock,
                 strict_hosts: Callable[[], bool], notices: Notices | None = None,
                 history: History | None = None) -> None:
        self.reader = reader
        self.store = store
        self.kinds = kinds
        self.reload = reload
        self.api_token = api_token
        self.allowed_hosts = allowed_hosts
        self.maintenance = maintenance
        self.page = page
        self.inbox = inbox
        self.notices = notices
        self.history = history
        self.sharding = sharding
        self.clock = clock
        self.strict_hosts = strict_hosts
        self.renderer = MetricsRenderer(reader)
        # The page and the targets' document: rendered on a thread, one of a kind at a time.
        self.renders = OneAtATime()
        self.guesses = _Guesses()

    def checked_elsewhere(self, name: str, environment: str | None) -> str:
        shard, default = self.sharding()
        return elsewhere(shard, name, environment or default)

    def authorized(self, request: web.Request) -> bool:
        token = self.api_token()
        if token is None:
            return True
        given = request.headers.get("Authorization", "")
        # Header bytes that are not UTF-8 arrive as surrogate escapes: compare them, never fail.
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), f"Bearer {token}".encode())

    def refused(self, request: web.Request, *, writes: bool) -> web.Response | None:
        """The answer that refuses ``request``, or None when it may go on."""
        if not host_allowed(request.headers.get("Host"), self.allowed_hosts(), strict=self.strict_hosts()):
            return web.json_response({"status": "error", "errors": [
                "this host name is not allowed: add it to 'allowed_hosts'"
                + ("" if self.strict_hosts() else ", or use an IP address")]}, status=421)
        if writes and cross_site(request):
            return web.json_response({"status": "error", "errors": ["a cross-site request cannot change anything"]},
                                     status=403)
        if writes and self.api_token() is None and not from_loopback(request):
            return web.json_response({"status": "error", "errors": [
                "changes from another host need a credential: set 'api_token_file' (or 'api_token') in the "
                "configuration and send it as a bearer token"]}, status=403)
        if not self.authorized(request):
            return web.json_response({"status": "error", "errors": ["a bearer token is required"]}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="otel-health"'})
        return None

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        openmetrics = "application/openmetrics-text" in request.headers.get("Accept", "")
        pieces = await self.renderer.render(openmetrics)
        response = web.StreamResponse()
        response.headers["Content-Type"] = CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT
        response.content_length = sum(len(piece) for piece in pieces)
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
        await response.write_eof()
        return response

    async def health(self, _: web.Request) -> web.Response:
        code, doc = health_document(self.store.snapshot(), self.kinds)
        return web.Response(status=code, text=json.dumps(doc), content_type=HEALTH_CONTENT_TYPE)

    def page_refused(self, request: web.Request) -> web.Response | None:
        """The status page's (and the badges') guard: with a token, and the page not public, the
        token is asked for; a browser asks for it with any user name and the token as the password."""
        settings = self.page() if self.page is not None else None
        if self.api_token() is not None and not (settings is not None and settings.status_public) \
                and not self.authorized(request) and not basic_password_is(request, self.api_token()):
            return web.Response(status=401, text="the status page needs the API token (as the password)\n",
                                headers={"WWW-Authenticate": 'Basic realm="otel-health", charset="UTF-8"'})
        return None

    async def status_page(self, request: web.Request) -> web.Response:
        settings = self.page() if self.page is not None else None
        if (refusal := self.page_refused(request)) is not None:
            return refusal
        group = request.query.get("group") or ""
        every = request.query.get("all") == "1"

        states = self.store.snapshot()  # on the loop, where the store changes; the rest on a thread
        notes = self.announcements()

        def render() -> str:  # thousands of rows: off the event loop, one render of a kind at a time
            shown = [s for s in states if status.group_of(s) == group] if group else states
            return status.render(shown, now=self.clock(), trace_url=settings.trace_url if settings else None,
                                 title=settings.status_title if settings else "Service status", every=every,
                                 instance=_instance(settings), announcements=notes)

        text = await self.renders.run(("page", group[:200], every), lambda: asyncio.to_thread(render))
        return web.Response(text=text, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                                     "Content-Security-Policy": status.CSP})

    async def badge(self, request: web.Request) -> web.Response:
        """A badge: /badge/service/NAME/WHAT.svg or .json (?environment= where the name is in
        several), /badge/group/GROUP/WHAT.svg or .json; cacheable for a minute, by its ETag."""
        if (refusal := self.page_refused(request)) is not None:
            return refusal
        of, name, what, form = (request.match_info[k] for k in ("of", "name", "what", "form"))
        if what not in badges.WHATS:
            return web.Response(status=404, text=f"no badge says {what[:40]!r}; one of {', '.join(badges.WHATS)}\n")
        states, now = self.store.snapshot(), self.clock()
        if of == "group":
            members = [s for s in states if status.group_of(s) == name]
            if not members:
                return web.Response(status=404, text="no group of that name here\n")
            made = badges.group_badge(members, name, what, now)
        else:
            environment = request.query.get("environment")
            found = [s for s in states if s.target.name == name
                     and (environment is None or s.target.environment == environment)]
            if len(found) > 1:
                return web.Response(status=400, text="that name is in several environments: add ?environment=\n")
            if not found:
                return web.Response(status=404, text="no target of that name here (checked by another shard?)\n")
            made = badges.target_badge(found[0], what, now)
        body = badges.svg(made) if form == "svg" else json.dumps(badges.endpoint(made))
        tag = '"' + hashlib.sha256(body.encode()).hexdigest()[:20] + '"'
        cache = "public" if self.api_token() is None or (self.page is not None and self.page().status_public) \
            else "private"
        headers = {"Cache-Control": f"{cache}, max-age=60", "ETag": tag, "X-Content-Type-Options": "nosniff",
                   "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}
        if tag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        return web.Response(text=body, content_type="image/svg+xml" if form == "svg" else "application/json",
                            headers=headers)

    async def report(self, request: web.Request) -> web.Response:
        """A job reports in to its push kind's target (its own token, bounded guesses)."""
        if cross_site(request):
            return self.error(403, "a cross-site request cannot change anything")
        name, environment = request.match_info["name"], request.query.get("environment")
        found = [s.target for s in self.store.snapshot() if s.target.name == name and self.inbox is not None
                 and self.inbox.takes(s.target) and environment in (None, s.target.environment)]
        if not found:
            return self.error(404, "no heartbeat target of that name; configure one with 'kind: heartbeat'"
                         + self.checked_elsewhere(name, environment))
        if len(found) > 1:
            return self.error(400, "that name is in several environments; add ?environment=NAME")
        given = request.headers.get("Authorization", "")
        token = given[7:] if given[:7].lower() == "bearer " else ""
        assert self.inbox is not None
        target = found[0]
        if self.guesses.barred(target.key):
            return web.json_response({"status": "error", "errors": [
                "too many wrong tokens for this target; try again in a minute"]}, status=429,
                headers={"Retry-After": str(int(GUESS_WINDOW))})
        if not token or not self.inbox.knows(target, token):  # before the body is read: a stranger's costs nothing
            self.guesses.failed(target.key)
            return web.json_response({"status": "error", "errors": ["the target's own token is required"]},
                                     status=401, headers={"WWW-Authenticate": 'Bearer realm="otel-health"'})
        try:
            raw = await request.read()
            ok, duration, message = report_request(request.query, json.loads(raw) if raw.strip() else None)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            reason = str(exc) if isinstance(exc, BadRequest) else "the body is not JSON; send a JSON object or nothing"
            return self.error(400, reason)
        self.inbox.accept(target, token, ok=ok, duration=duration, message=message)
        return web.json_response({"status": "success"})

    async def healthy(self, _: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    async def targets(self, request: web.Request) -> web.Response:
        if (refusal := self.refused(request, writes=False)) is not None:
            return refusal
        states, windows, now = self.store.snapshot(), self.store.windows(), self.clock()
        instance = _instance(self.page() if self.page is not None else None)
        body = await self.renders.run("targets", lambda: asyncio.to_thread(
            lambda: json.dumps({**targets_document(states, windows, now), "instance": instance})))
        return web.Response(text=body, content_type="application/json")

    async def report_period(self, request: web.Request) -> web.Response:
        """Each target's uptime, downtime, incidents, MTTR and budget spent over a period, from
        the history store (docs/http-api.md)."""
        if (refusal := self.refused(request, writes=False)) is not None:
            return refusal
        try:
            period = period_request(request.query, self.clock())
        except BadRequest as exc:
            return self.error(400, str(exc))

        def chosen() -> list[TargetState]:
            return [s for s in self.store.snapshot() if period.service in (None, s.target.name)
                    and period.environment in (None, s.target.environment)]

        if period.service is not None and not chosen():
            return self.error(404, "no target of that name here" + self.checked_elsewhere(period.service,
                                                                                          period.environment))
        try:
            reports = await self.history.report(chosen, period.start, period.end) if self.history else None
        except Unreadable as exc:
            return self.error(503, str(exc))
        if reports is None:
            return self.error(404, "reports are read from the history store: set 'state_dir' in the configuration")
        now, instance = self.clock(), _instance(self.page() if self.page is not None else None)
        if period.format == "csv":
            text = await asyncio.to_thread(report_csv, reports, period.start, period.end, now, period.rows, instance)
            return web.Response(text=text, content_type="text/csv", charset="utf-8", headers={
                "Content-Disposition": f'attachment; filename="report-{period.rows}.csv"'})
        text = await asyncio.to_thread(lambda: json.dumps(report_document(reports, period.start, period.end, now,
                                                                          instance)))
        return web.Response(text=text, content_type="application/json")

    def error(self, status: int, message: str) -> web.Response:
        return web.json_response({"status": "error", "errors": [message]}, status=status)

    def announcements(self) -> list[Announcement]:
        """The config's and the API's."""
        settings = self.page() if self.page is not None else None
        return [*(settings.announcements if settings is not None else ()),
                *(self.notices.all() if self.notices is not None else ())]

    async def list_announcements(self, request: web.Request) -> web.Response:
        if (refusal := self.refused(request, writes=False)) is not None:
            return refusal
        now = self.clock()
        return web.json_response({"announcements": [a.document(now) for a in self.announcements()]})

    async def announce(self, request: web.Request) -> web.Response:
        if (refusal := self.refused(request, writes=True)) is not None:
            return refusal
        assert self.notices is not None
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError, RecursionError):
            return self.error(400, "the body is not JSON; send a JSON object with 'message' and 'severity'")
        try:
            severity, message, start, end = announcement_request(body, self.clock())
        except BadRequest as exc:
            return self.error(400, str(exc))
        try:
            made = await self.notices.add(severity, message, start, end)
        except NotSaved as exc:
            return self.error(409 if exc.full else 503, str(exc))
        return web.json_response({"status": "success", "announcement": made.document(self.clock())}, status=201,
                                 headers={"Location": f"/api/v1/announcements/{made.id}"})

    async def end_announcement(self, request: web.Request) -> web.Response:
        if (refusal := self.refused(request, writes=True)) is not None:
            return refusal
        assert self.notices is not None
        ident = request.match_info["id"]
        settings = self.page() if self.page is not None else None
        if settings is not None and any(a.id == ident for a in settings.announcements):
            return self.error(409, "that announcement is in the configuration; remove it there and reload")
        try:
            ended = await self.notices.end(ident)
        except NotSaved as exc:
            return self.error(503, str(exc))
        return web.json_response({"status": "success"}) if ended else self.error(404, "no current announcement "
                                                                                      "with that id")

    async def list_windows(self, request: web.Request) -> web.Response:
        if (refusal := self.refused(request, writes=False)) is not None:
            return refusal
        now = self.clock()
        return web.json_response({"windows": [window_document(w, now) for w in self.store.windows()]})

    async def open_window(self, request: web.Request) -> web.Response:
        if (refusal := self.refused(request, writes=True)) is not None:
            return refusal
        assert self.maintenance is not None
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError, RecursionError):
            return self.error(400, "the body is not JSON; send a JSON object with 'targets' and 'duration'")
        try:
            keys, start, end, comment = window_request(body, self.maintenance, self.clock(), self.checked_elsewhere)
        except BadRequest as exc:
            return self.error(400, str(exc))
        try:
            window = await self.maintenance.open(keys, start, end, comment)
        except NotKept as exc:
            return self.error(409 if exc.full else 503, str(exc))
        return web.json_response({"status": "success", "window": window_document(window, self.clock())}, status=201,
                                 headers={"Location": f"/api/v1/maintenance/{window.name}"})

    async def end_window(self, request: web.Request) -> web.Response:
        if (refusal := self.refused(request, writes=True)) is not None:
            return refusal
        assert self.maintenance is not None
        window_id = request.match_info["id"]
        try:
            ended = await self.maintenance.end(window_id)
        except NotKept as exc:
            return self.error(503, str(exc))
        if ended:
            return web.json_response({"status": "success"})
        if any(w.name == window_id and w.source == "config" for w in self.store.windows()):
            return self.error(409, f"window {window_id!r} is in the configuration; change the config to end it")
        return self.error(404, "no such window; GET /api/v1/maintenance lists them")

    async def do_reload(self, request: web.Request) -> web.Response:
        if (refusal := self.refused(request, writes=True)) is not None:
            return refusal
        problems = await self.reload()
        if problems:
            return web.json_response({"status": "error", "errors": problems}, status=400)
        return web.json_response({"status": "success"})


def make_app(*, reader: BridgeReader, store: StateStore, kinds: Kinds, reload: Reload,
             api_token: Callable[[], str | None], allowed_hosts: Callable[[], Collection[str]] = lambda: (),
             maintenance: MaintenanceApi | None = None, page: Callable[[], PageSettings] | None = None,
             inbox: Inbox | None = None, notices: Notices | None = None, history: History | None = None,
             sharding: Callable[[], tuple[Shard | None, str]] = lambda: (None, ""),
             clock: Clock = WALL, strict_hosts: Callable[[], bool] = lambda: False) -> web.Application:
    """The API. ``api_token`` guards the API and reload; without one, the writes (maintenance
    windows, reload) answer only requests from this machine's loopback. ``allowed_hosts`` are
    the host names the API and reload answer to (``strict_hosts``: and only those, see
    :func:`host_allowed`): /metrics and /health answer any name, so Prometheus can scrape by pod
    IP or service name. ``sharding``: this instance's shard and
    the configuration's default environment, to say where a target it does not have is checked.
    ``clock``: the wall clock the page and the maintenance API read. ``notices``: the
    announcements the API makes (``/api/v1/announcements``: none without it). ``history``: the
    history store the report reads (``/api/v1/report``)."""
    r = _Routes(reader=reader, store=store, kinds=kinds, reload=reload, api_token=api_token,
                allowed_hosts=allowed_hosts, maintenance=maintenance, page=page, inbox=inbox, sharding=sharding,
                clock=clock, strict_hosts=strict_hosts, notices=notices, history=history)
    app = web.Application(client_max_size=MAX_BODY, middlewares=[bounded_body])
    app.router.add_get("/", r.status_page)
    app.router.add_get("/metrics", r.metrics)
    app.router.add_get("/health", r.health)
    app.router.add_get("/-/healthy", r.healthy)
    app.router.add_get("/api/v1/targets", r.targets)
    app.router.add_get("/api/v1/report", r.report_period)
    app.router.add_get(r"/badge/{of:service|group}/{name}/{what}.{form:svg|json}", r.badge)
    app.router.add_post("/-/reload", r.do_reload)
    if maintenance is not None:
        app.router.add_get("/api/v1/maintenance", r.list_windows)
        app.router.add_post("/api/v1/maintenance", r.open_window)
        app.router.add_delete("/api/v1/maintenance/{id}", r.end_window)
    if inbox is not None:
        app.router.add_post("/api/v1/heartbeat/{name}", r.report)
    if notices is not None:
        app.router.add_get("/api/v1/announcements", r.list_announcements)
        app.router.add_post("/api/v1/announcements", r.announce)
        app.router.add_delete("/api/v1/announcements/{id}", r.end_announcement)
    return app


def _instance(config: PageSettings | None) -> str | None:
    """For which instance the page and the API speak (``status.instance_of``)."""
    if config is None:
        return None
    return status.instance_of(config.location, config.shard, len(config.targets), config.targets_configured)
