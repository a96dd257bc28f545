"""The scrape's render scheduled so it never stalls the checks: at most one render of each kind
in flight (a flood of scrapes costs one), the SDK's collect on a thread with fine GIL switching
and paced slices, the text in steps between which the event loop runs, freed memory given back.
docs/performance.md has the measured bounds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from opentelemetry.sdk.metrics.export import MetricsData

from ..tuning import Pacer, fine_switching, no_cyclic_gc, release_freed_memory
from .bridge import BridgeReader

__all__ = ["MetricsRenderer", "OneAtATime"]


def _collect_finely(reader: BridgeReader) -> MetricsData | None:
    with fine_switching():  # the loop must not wait 5 ms for the GIL at every callback
        return reader.collect_sdk(Pacer().pause)  # nor for a third of a second at a time


class OneAtATime:
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


class MetricsRenderer:
    """The bridge's /metrics body, rendered one scrape at a time: the SDK's points collected on a
    thread in paced slices, the text written in steps that yield to the loop between them."""

    def __init__(self, reader: BridgeReader) -> None:
        self._reader = reader
        self._once = OneAtATime()

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
