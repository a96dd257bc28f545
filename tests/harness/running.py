"""Running a real collector inside a test, with in-memory span capture."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import aiohttp
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_health.clock import WALL, Clock
from otel_health.collector import Collector
from otel_health.config import Config
from otel_health.config.loader import load_text
from otel_health.discovery import Found
from otel_health.probes import PROBES
from otel_health.result import CheckResult
from otel_health.state import TargetState
from tests.harness.clock import reads_the_date


class Running:
    def __init__(self, collector: Collector, spans: InMemorySpanExporter, metrics: InMemoryMetricReader) -> None:
        self.collector = collector
        self.spans = spans
        self.metrics = metrics

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.collector.port}"

    def state(self, name: str) -> TargetState:
        state = next((s for s in self.collector.store.snapshot() if s.target.name == name), None)
        assert state is not None, f"no target {name!r}"
        return state

    def result(self, name: str) -> CheckResult | None:
        return self.state(name).result

    def checks(self, name: str) -> int:
        """Checks of ``name`` recorded so far, as ``tta_service_checks_total`` counts them."""
        data = self.metrics.get_metrics_data()
        return int(sum(point.value for rm in (data.resource_metrics if data else ()) for sm in rm.scope_metrics
                       for metric in sm.metrics if metric.name == "tta_service_checks"
                       for point in metric.data.data_points if point.attributes.get("service") == name))

    async def get(self, path: str) -> tuple[int, str, str]:
        """GET a path of the collector's server: (status, content type, body)."""
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}{path}",
                                                                   timeout=aiohttp.ClientTimeout(total=10)) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), await resp.text()

    async def wait_for(self, predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not true after {timeout:g}s")
            await asyncio.sleep(0.02)

    async def cycles_left_by_checks(self, names: Sequence[str], *, checks: int = 3, timeout: float = 20.0,
                                    modules: tuple[str, ...] = ("otel_health", "httptools")) -> list[str]:
        """The types from ``modules`` of what only the cyclic garbage collector would have freed
        while each of ``names`` was checked ``checks`` more times (collection off meanwhile)."""
        for name in names:
            await self.wait_result(name, timeout=timeout)
        gc.collect()
        was_enabled = gc.isenabled()  # a render or an export may hold collection off already
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds goes to gc.garbage
        try:
            before = {name: self.checks(name) for name in names}
            await self.wait_for(lambda: all(self.checks(n) >= before[n] + checks for n in names), timeout=timeout,
                                what=f"{checks} more checks of each target")
            gc.collect()
            return sorted({f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage
                           if type(o).__module__.startswith(modules)})
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            if was_enabled:
                gc.enable()

    async def wait_result(self, name: str, *, timeout: float = 10.0) -> CheckResult:
        await self.wait_for(lambda: self.result(name) is not None, timeout=timeout, what=f"a result for {name}")
        result = self.result(name)
        assert result is not None
        return result


def config_from(text: str, base_dir: Path | None = None) -> Config:
    return load_text(text, "test.yaml", PROBES, base_dir=base_dir)


def keeping_every_trace(config: Config, text: str) -> Config:
    """``config`` with every trace kept, unless ``text`` sets ``keep_percent``: tests read the
    spans of healthy checks too."""
    if "keep_percent" in text:
        return config
    return dataclasses.replace(config, otlp=dataclasses.replace(config.otlp, keep_percent=100.0))


@contextlib.asynccontextmanager
async def running(text: str, *, base_dir: Path | None = None, clock: Clock | None = None) -> AsyncIterator[Running]:
    """A collector on a free port running ``text`` (YAML; 'listen' defaults to a free port), every
    trace kept unless ``text`` sets ``keep_percent``."""
    if "listen:" not in text:
        text = "listen: 127.0.0.1:0\n" + text
    async with running_config(keeping_every_trace(config_from(text, base_dir), text), clock=clock) as r:
        yield r


@contextlib.asynccontextmanager
async def running_config(config: Config, *, source: Callable[[Found], Config] | None = None,
                         clock: Clock | None = None) -> AsyncIterator[Running]:
    """A collector running ``config`` with in-memory span and metric capture; ``source`` re-reads
    the configuration for a reload.

    ``clock``: the wall clock it reads. A config whose suppression depends on the date or the time
    of day (a recurring window) must be given one: a :class:`~tests.harness.clock.SetClock`
    at an instant the test chooses, or ``WALL`` where a real server beside it (Alertmanager)
    reads the real clock too and the test is written for any instant."""
    if clock is None:
        if reads_the_date(config):
            raise AssertionError("this configuration has a recurring maintenance window: run its collector on a "
                                 "clock the test sets (running_config(..., clock=SetClock(...))) so that the test "
                                 "does not pass on some days and fail on others")
        clock = WALL
    spans = InMemorySpanExporter()
    metrics = InMemoryMetricReader()
    collector = Collector(config, source=source, metric_readers=[metrics], span_processors=[SimpleSpanProcessor(spans)],
                          otlp=False, clock=clock)
    await collector.start()
    try:
        yield Running(collector, spans, metrics)
    finally:
        await collector.stop(grace=2.0)
