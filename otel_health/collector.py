"""Wires config, probes, scheduler, state, telemetry and server into one running collector.

Built in one direction: the state store and the scheduler first, then the state families
over them, the readers and exporters with the families in hand, the instruments over the
readers, the probes with their tracer, and the server over the store and the bridge. Each
finished check is recorded twice: in the store (what is true now) and in telemetry (meters
and the check's span).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from aiohttp import web
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import SpanProcessor

from . import __version__
from .clock import WALL, Clock
from .config import Config, ConfigError, Target
from .discovery import NONE_DISCOVERED, Answer, Discovered, Found, HttpSd
from .discovery.endpoints import Endpoint, file_stamps
from .domains import Domains
from .history import Archive
from .logs import event, iso_time
from .probes import PROBES, Inboxes, Probe, ProbeSettings
from .scheduler import Scheduler, Start
from .server import GuardedSite, loopback, make_app, make_runner
from .state import StateStore
from .suppression import Book, Window
from .telemetry import (
    SCOPE,
    BridgeReader,
    ExportFailures,
    KeepPolicy,
    OtlpPlan,
    PushReader,
    StateFamilies,
    Telemetry,
    cardinality_limits,
    make_resource,
)
from .telemetry.collector_drops import CollectorDrops
from .tuning import freeze_long_lived, raise_descriptor_limit, release_freed_memory, tune_gc

__all__ = ["Collector"]

log = logging.getLogger("otel_health")

SETTLE_AFTER_MAX = 300.0  # seconds: freeze after the first round, or after this at the latest
TICK = 1.0  # seconds between looks at the windows open and the reports to write
API_CONNECTIONS = 256  # API connections open at once, at most
DISCOVERY_TICK = 1.0  # seconds between looks at the discovery files' stamps
DISCOVERY_GAP = 2.0  # seconds at least between two reloads discovery asks for: churn is batched


class Collector:
    """One running collector. ``start()``, then ``stop()``; or ``serve_forever()``.

    ``source`` re-reads the configuration for a reload (``POST /-/reload``, SIGHUP, a
    watched file changing, or discovery finding something new), given what discovery has
    found (:class:`~otel_health.discovery.Found`); a config that fails to load is rejected
    whole and the running one stays. With ``isolate_reloads`` (``source`` must then be
    picklable), the source runs in a process of its own: reading and validating thousands of
    targets takes seconds of CPU that, on a thread, would compete with the event loop for the
    interpreter and make healthy targets time out. ``metric_readers`` and ``span_processors`` are added to the
    collector's own (the bridge, and OTLP when ``otlp`` is on and the settings ask for it).
    """

    def __init__(
        self,
        config: Config,
        *,
        source: Callable[[Found], Config] | None = None,
        metric_readers: Sequence[MetricReader] = (),
        span_processors: Sequence[SpanProcessor] = (),
        probes: Mapping[str, type[Probe]] = PROBES,
        otlp: bool = True,
        isolate_reloads: bool = False,
        clock: Clock = WALL,
    ) -> None:
        self.config = config
        self.clock = clock
        self._source = source
        self._isolate_reloads = isolate_reloads
        self.store = StateStore()
        # Windows opened through the API: kept across reloads (and restarts, with state_dir)
        self.maintenance = Book(config.state_dir, clock=clock)
        # The page's history beyond the day (state_dir): loaded at start, written once a minute.
        self.archive = Archive(config.state_dir, days=config.history_days, clock=clock)
        self.scheduler = Scheduler(self._check_one, concurrency=config.concurrency)
        families = StateFamilies(self.store, self.scheduler.skipped)
        resource = make_resource(config.shard, config.location)
        limits = cardinality_limits(len(config.targets))
        failures = ExportFailures()
        self.bridge = BridgeReader(families=families, cardinality_limits=limits)
        readers: list[MetricReader] = [self.bridge, *metric_readers]
        processors = list(span_processors)
        plan = OtlpPlan.from_settings(config.otlp) if otlp else None
        pushers: list[PushReader] = []
        if plan is not None and plan.metrics:
            exporter = plan.metric_exporter(failures)
            # Cumulative, as the bridge: export what the bridge's storage holds, so each
            # measurement is aggregated once.
            from_bridge = self.bridge.collect_sdk if PushReader.can_share(exporter) else None
            push = PushReader(exporter, families=families, resource=resource, scope=SCOPE, interval_s=plan.interval,
                              cardinality_limits=limits, source=from_bridge)
            (pushers if push.shared else readers).append(push)
        if plan is not None and plan.traces:
            processors.append(plan.span_processor(failures))
        self.telemetry = Telemetry(families=families, metric_readers=readers, span_processors=processors,
                                   resource=resource, in_flight=lambda: self.scheduler.in_flight,
                                   export_failures=failures, keep=_keep_policy(config), pushers=pushers,
                                   clock=clock)
        settings = ProbeSettings(max_body_bytes=config.max_body_bytes, user_agent=f"otel-health/{__version__}",
                                 tracer=self.telemetry.tracer_provider.get_tracer("otel_health.probes", __version__),
                                 state_dir=config.state_dir, clock=clock)
        self._probes = {kind: cls(settings) for kind, cls in probes.items()}
        # What jobs report in (push kinds): the API writes through it, the tick keeps it.
        self.inboxes = Inboxes(probe.inbox for probe in self._probes.values() if probe.inbox is not None)
        self._kinds = probes
        self._runner: web.AppRunner | None = None
        self._reload_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self.port: int | None = None
        self.config_shard_at_start = config.shard
        # Discovery: each http_sd endpoint's latest answer and its poller; a reload is wanted.
        self._answers: dict[str, Answer] = {}
        self._endpoints: dict[str, tuple[HttpSd, asyncio.Task[None]]] = {}
        self._discovery_pending = False
        self._session: Any = None
        # Traces the Collector drops though they were sent to be kept: read from its own metrics.
        self.collector_drops = CollectorDrops(lambda: self.config.otlp, user_agent=f"otel-health/{__version__}")
        self.telemetry.own.collector_dropped = lambda: self.collector_drops.dropped
        self.telemetry.own.history_failures = lambda: self.archive.failures
        # Domain registrations (domain_expiry): looked up daily in the background, never by a check.
        self.domains = Domains(config.rdap_bootstrap_url, user_agent=f"otel-health/{__version__}")

    @property
    def probes(self) -> Mapping[str, Probe]:
        """The probe of each kind, as this collector runs it."""
        return self._probes

    async def start(self) -> None:
        self.store.set_targets(self.config.targets)
        self.telemetry.retain(self.store.attributes())  # what a reload compares against
        self.windows_changed()
        self.telemetry.config_loaded(True)
        self.telemetry.sharded(self.config.shard, self.config.targets_configured)
        self._discovery_changed(NONE_DISCOVERED, self.config.discovery)
        app = make_app(reader=self.bridge, store=self.store, kinds=self._kinds, reload=self.reload,
                       api_token=self._api_token, allowed_hosts=self._allowed_hosts,
                       maintenance=Maintenance(self), page=lambda: self.config,
                       inbox=self.inboxes, notices=self.archive.notices, history=self.archive,
                       sharding=lambda: (self.config.shard, self.config.environment), clock=self.clock,
                       strict_hosts=lambda: bool(self.config.allowed_hosts))
        before, descriptors = raise_descriptor_limit()
        if descriptors != before:
            event(log, logging.INFO, "descriptor_limit_raised", before=before, now=descriptors)
        # The API gets an eighth of the descriptors at most: the rest stay for the probes.
        self._runner = make_runner(app)
        await self._runner.setup()
        site = GuardedSite(self._runner, self.config.listen_host, self.config.listen_port,
                           max_connections=max(16, min(API_CONNECTIONS, descriptors // 8)))
        await site.start()
        self.port = self._runner.addresses[0][1] if self._runner.addresses else self.config.listen_port
        await self.archive.load(self.store.snapshot())  # before the first check: the day is taken whole
        self.scheduler.set_targets(self.config.targets)
        self._in_background(self.archive.keep(self.store.snapshot))
        self._in_background(self._every_second())
        self._in_background(self._discover())
        self._in_background(self._watch_collector())
        self._in_background(self._watch_domains())
        tune_gc()
        self._settle_later()
        event(log, logging.INFO, "started", listen=f"{self.config.listen_host}:{self.port}",
              targets=len(self.config.targets))
        if self.config.api_token is None and not loopback(self.config.listen_host):
            event(log, logging.WARNING, "writes_need_a_token", listen=self.config.listen_host,
                  reason="other hosts reach this address; maintenance windows and reloads are refused to them "
                         "until api_token_file (or api_token) is set")

    def _settle_later(self) -> None:
        """Freeze the long-lived objects once every target has been checked (``tuning``)."""
        if not self.config.targets:
            return
        delay = min(max(t.interval + t.timeout for t in self.config.targets), SETTLE_AFTER_MAX) + 1.0

        async def settle() -> None:
            await asyncio.sleep(delay)
            freeze_long_lived()

        self._in_background(settle())

    def windows_changed(self) -> None:
        """Give the store the windows as they are now: the configured ones and the API's."""
        self.store.set_windows([*self.config.maintenance, *self.maintenance.windows()], self.clock())

    async def _every_second(self) -> None:
        """The collector's clock: open and end maintenance windows as time passes (checks go on
        regardless), and write what jobs reported if it changed."""
        while True:
            await asyncio.sleep(TICK)
            now = self.clock()
            expired = self.maintenance.expire(now)
            for window in expired:
                self.store.remove_window(window.name)
            began, ended = self.store.tick(now)
            ended |= frozenset(w.name for w in expired)
            write = self.inboxes.pending()  # at most once a tick, whatever the rate of reports
            if write is not None:
                await asyncio.to_thread(write)
            for name in sorted(began):
                event(log, logging.INFO, "maintenance_started", window=name)
            for name in sorted(ended):
                event(log, logging.INFO, "maintenance_ended", window=name)

    def _allowed_hosts(self) -> frozenset[str]:
        return frozenset({"localhost", self.config.listen_host.lower(), *self.config.allowed_hosts})

    def _api_token(self) -> str | None:
        return self.config.api_token.reveal() if self.config.api_token is not None else None

    def apply(self, config: Config) -> None:
        """Switch to a new config's targets: unchanged targets keep their schedule and results."""
        if (config.listen_host, config.listen_port) != (self.config.listen_host, self.config.listen_port):
            event(log, logging.WARNING, "reload_listen_unchanged",
                  reason="a new listen address takes effect on restart")
        before, self.config = self.config, config
        if (config.otlp.keep_percent, config.otlp.keep_salt) != (self.telemetry.keep.percent, self.telemetry.keep.salt):
            self.telemetry.keep = _keep_policy(config)
        live = {t.key for t in config.targets}
        self.store.set_targets(config.targets)
        self.maintenance.move(config.state_dir)
        self.archive.move(config.state_dir, config.history_days)
        self.windows_changed()
        self.inboxes.move(config.state_dir)
        self.inboxes.retain(live)
        self.telemetry.retain(self.store.attributes())
        self.telemetry.sharded(config.shard, config.targets_configured)
        self._discovery_changed(before.discovery, config.discovery)
        if config.shard != self.config_shard_at_start:
            event(log, logging.WARNING, "reload_shard_changed", shard=str(config.shard),
                  reason="the targets follow the new shard; the resource's shard attributes change on restart")
        self.scheduler.set_targets(config.targets)
        self.domains.fill(self.store.snapshot())
        for probe in self._probes.values():
            self._in_background(probe.retain(live))
        if len(config.targets) < len(before.targets):
            self._in_background(asyncio.to_thread(release_freed_memory))  # what the targets that went held
        self._settle_later()

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def reload(self, cause: str = "config") -> list[str]:
        """Re-read the configuration; return its problems (empty when it was applied)."""
        async with self._reload_lock:
            if self._source is None:
                problems = ["no configuration file to reload: the collector runs on its built-in default"]
            else:
                try:
                    found = self.config.discovery.found(dict(self._answers))
                    config = await self._read_config(functools.partial(self._source, found))
                except ConfigError as exc:
                    problems = exc.problems
                except Exception as exc:  # noqa: BLE001 - a reload that fails keeps the old config, whatever failed
                    problems = [f"the configuration could not be loaded ({type(exc).__name__}: {exc}); "
                                "the running one stays"]
                else:
                    self.apply(config)
                    self.telemetry.config_loaded(True)
                    event(log, logging.INFO, "reloaded", targets=len(config.targets), cause=cause)
                    return []
            self.telemetry.config_loaded(False)
            for line in problems:
                event(log, logging.ERROR, "reload_rejected", problem=line)
            return problems

    def _discovery_changed(self, before: Discovered, now: Discovered) -> None:
        """Discovery's series as ``now`` leaves them; each new problem logged once, each
        source whose problems ended logged once; failed reads of files counted (an
        endpoint's are counted as it is polled)."""
        self.telemetry.discovered(now.status)
        files = {s.name for s in now.sources if s.file_sd is not None}
        for name, status in now.status.items():
            old = before.status.get(name)
            seen = set(old.problems) if old is not None else set()
            if name in files and status.problems:
                self.telemetry.discovery_failed(name, len(status.problems))
            for unit, problem in status.problems:
                if (unit, problem) not in seen:
                    event(log, logging.WARNING, "discovery_failed", source=name, unit=unit, problem=problem,
                          kept="the last good targets of this unit, if any")
            if old is not None and old.problems and not status.problems:
                event(log, logging.INFO, "discovery_recovered", source=name, targets=status.targets)

    async def _discover(self) -> None:
        """Notice what discovery finds: files' stamps each tick (and each ``refresh_interval``
        regardless), endpoints polled on their own; anything new reloads, at most once every
        ``DISCOVERY_GAP``, through the same off-loop path as a config file."""
        stamps = self.config.discovery.stamps  # the files as the running config read them
        refreshed = time.monotonic()
        last_reload = -DISCOVERY_GAP
        while True:
            await asyncio.sleep(DISCOVERY_TICK)
            sources = self.config.discovery.sources
            self._sync_endpoints()
            now = time.monotonic()
            if any(s.file_sd is not None for s in sources):
                seen = await asyncio.to_thread(file_stamps, sources)
                due = any(s.file_sd is not None and now - refreshed >= s.file_sd.refresh for s in sources)
                # Compared with what the last attempt saw, not with what the config holds: a
                # reload that fails (a broken config file) is not tried again every tick.
                if seen != stamps or due:
                    stamps, refreshed, self._discovery_pending = seen, now, True
            if self._discovery_pending and now - last_reload >= DISCOVERY_GAP and self._source is not None:
                self._discovery_pending, last_reload = False, now
                await self.reload(cause="discovery")

    def _sync_endpoints(self) -> None:
        """One poller per ``http_sd`` source as configured now; a changed one starts over."""
        wanted = {s.name: s for s in self.config.discovery.sources if s.http_sd is not None}
        for name, (sd, poller) in list(self._endpoints.items()):
            if name not in wanted or wanted[name].http_sd != sd:
                poller.cancel()
                del self._endpoints[name]
                self._answers.pop(name, None)
        for name, source in wanted.items():
            if name not in self._endpoints:
                assert source.http_sd is not None
                endpoint = Endpoint(source, f"otel-health/{__version__}")
                poller = asyncio.get_running_loop().create_task(self._poll(endpoint))
                self._endpoints[name] = (source.http_sd, poller)

    async def _poll(self, endpoint: Endpoint) -> None:
        while True:
            answer = await endpoint.fetch(self._http())
            if endpoint.failed:
                self.telemetry.discovery_failed(endpoint.source.name)
            if answer is not None:
                self._answers[endpoint.source.name] = answer
                self._discovery_pending = True
            await asyncio.sleep(endpoint.delay)

    async def _watch_collector(self) -> None:
        while self.config.otlp.collector_metrics is None:  # a reload may name it
            await asyncio.sleep(DISCOVERY_TICK)
        await self.collector_drops.watch(self._http())

    async def _watch_domains(self) -> None:
        await self.domains.watch(lambda: self.config, self._http, self.store.snapshot)

    def _http(self) -> Any:
        """The one aiohttp session of the background work (discovery, the Collector's metrics,
        RDAP): no proxy from the environment."""
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(trust_env=False)
        return self._session

    async def _read_config(self, source: Callable[[], Config]) -> Config:
        if not self._isolate_reloads:
            return await asyncio.to_thread(source)
        # A process for each reload (reloads are rare): nothing idle is left running, and a
        # worker that died takes nothing with it.
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, source)
        except BrokenProcessPool:
            raise ConfigError(["the process reading the configuration ended before it finished "
                               "(out of memory?); the running configuration stays"]) from None
        finally:
            pool.shutdown(wait=False)  # the worker exits by itself; the loop does not wait for it

    async def _check_one(self, target: Target, start: Start) -> None:
        lag = start.lag
        self.telemetry.scheduler_lag(lag)
        with self.telemetry.check_span(target) as span:
            result = await self._probes[target.kind].run(target)
            state = self.store.current(target)
            if state is None or not result.known:
                return  # removed or changed by a reload while it ran; or no verdict yet
            changed = self.store.update(state, result, self.telemetry.kept_trace_id(span, result), lag)
            self.telemetry.record(state.attrs, result, span, state.suppressed, state.spends)
        if len(state.history) == 1 or changed:
            if result.up:
                event(log, logging.INFO, "target_up", service=target.name, environment=target.environment,
                      duration_s=f"{result.duration:.3f}")
            else:
                event(log, logging.WARNING, "target_down", service=target.name, environment=target.environment,
                      error_type=result.error_type, detail=result.detail)

    async def stop(self, grace: float | None = None) -> None:
        """Let running checks end (bounded by the longest timeout), flush telemetry, close."""
        if grace is None:
            grace = max((t.timeout for t in self.config.targets), default=1.0) + 0.5
        await self.scheduler.stop(grace)
        for task in list(self._background):
            task.cancel()
        pollers = [poller for _, poller in self._endpoints.values()]
        for poller in pollers:
            poller.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        for probe in self._probes.values():
            await probe.close()
        self.inboxes.save()
        await self.archive.close(self.store.snapshot)
        if self._runner is not None:
            await self._runner.cleanup()
        await asyncio.to_thread(self.telemetry.shutdown, self.config.otlp.shutdown_timeout)
        event(log, logging.INFO, "stopped")

    async def serve_forever(self, *, watch_interval: float | None = None) -> None:
        """Run until SIGTERM or SIGINT; SIGHUP reloads; optionally watch the config files."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        await self.start()
        watcher = loop.create_task(self._watch(watch_interval)) if watch_interval else None
        try:
            await stop.wait()
        finally:
            if watcher is not None:
                watcher.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self.stop()

    async def _watch(self, interval: float) -> None:
        def stamp() -> tuple[tuple[str, float], ...]:
            out = []
            for name in self.config.files:
                try:
                    out.append((name, os.stat(name).st_mtime))
                except OSError:
                    out.append((name, -1.0))
            return tuple(out)

        seen = stamp()
        while True:
            await asyncio.sleep(interval)
            now = stamp()
            if now != seen:
                await self.reload()
                seen = stamp()


class Maintenance:
    """The maintenance API's view of a running collector (``server.make_app``)."""

    def __init__(self, collector: Collector) -> None:
        self._collector = collector

    @property
    def limit(self) -> float:
        return self._collector.config.max_maintenance

    def targets(self) -> list[Target]:
        return list(self._collector.config.targets)

    def windows(self) -> list[Window]:
        return self._collector.store.windows()

    async def open(self, targets: list[tuple[str, str]], start: float, end: float, comment: str) -> Window:
        window = await self._collector.maintenance.open(targets, start, end, comment)
        self._collector.store.add_window(window, self._collector.clock())
        event(log, logging.INFO, "maintenance_opened", window=window.name, targets=len(targets),
              start=iso_time(start), end=iso_time(end))
        return window

    async def end(self, window_id: str) -> bool:
        if not await self._collector.maintenance.end(window_id):
            return False
        self._collector.store.remove_window(window_id)
        event(log, logging.INFO, "maintenance_closed", window=window_id)
        return True


def _keep_policy(config: Config) -> KeepPolicy:
    return KeepPolicy(config.otlp.keep_percent, config.otlp.keep_salt)
