"""Traces the Collector drops although otel-health sent them to be kept.

otel-health alone decides which checks' traces are kept and sends only those, each root
marked ``tta.check.kept``; otel-collector.yaml's tail sampling keeps what is so marked. A
Collector with other policies (an older file, a share of its own) would drop some of them
silently, so when ``otlp.collector_metrics`` names the Collector's own metrics, the tail
sampling processor's count of traces it did not keep is read every
``collector_metrics_interval``: each increase is counted in
``otel_health_collector_dropped_traces_total`` and said in a log line (at most once every
ten minutes). The read is bounded in time and size and runs beside the checks, never in
their way."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..config import OtlpSettings
from ..logs import event

__all__ = ["FAMILY", "MAX_BYTES", "CollectorDrops", "not_kept"]

log = logging.getLogger("otel_health.collector")

# The tail sampling processor's final decision per trace (sampled="false": not kept or dropped).
FAMILY = "otelcol_processor_tail_sampling_global_count_traces_sampled"
MAX_BYTES = 4 * 1024 * 1024  # a Collector's own /metrics is tens of KiB
LOG_EVERY = 600.0
FIX = ("otel-health sends only the traces it keeps, each root marked tta.check.kept=true; give the Collector's "
       "tail_sampling the policy of otel-collector.yaml (boolean_attribute tta.check.kept: true) and set the "
       "share in otel-health (otlp.keep_percent)")


def not_kept(text: str) -> int | None:
    """The traces the tail sampling processor did not keep, summed over its series, in the
    Prometheus text ``text``; None when the Collector reports no such family (no tail sampling)."""
    total: int | None = None
    for line in text.splitlines():
        if not line.startswith(FAMILY):
            continue
        name, brace, rest = line.partition("{")
        if name not in (FAMILY, f"{FAMILY}_total"):
            continue
        labels, _, value = rest.rpartition("}") if brace else ("", "", name.partition(" ")[2])
        total = total or 0
        if 'sampled="false"' not in labels:
            continue
        try:
            total += int(float(value.split()[0]))
        except (ValueError, IndexError, OverflowError):
            continue
    return total


class CollectorDrops:
    """Reads the Collector's count of traces it did not keep and reports each increase."""

    def __init__(self, settings: Callable[[], OtlpSettings], *, user_agent: str,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._user_agent = user_agent
        self._monotonic = monotonic
        self.dropped = 0  # since this process started: otel_health_collector_dropped_traces_total
        self._last: int | None = None
        self._logged_at = -LOG_EVERY
        self._state = ""  # the last condition logged: "" or "unreadable"

    def seen(self, url: str, count: int | None) -> int:
        """Account a read ``count`` (None: no tail sampling reported yet, nothing dropped);
        return how many more traces were dropped since the last read."""
        count = count or 0
        if self._state:
            self._say("", logging.INFO, "collector_metrics_read", collector=url)
        last, self._last = self._last, count
        if last is None:
            # The first read: what the Collector dropped before is counted when it was running
            # with another otel-health; only increases from now on are this one's traces.
            return 0
        more = count - last if count >= last else count  # a restarted Collector counts from zero
        if more > 0:
            self.dropped += more
            now = self._monotonic()
            if now - self._logged_at >= LOG_EVERY:
                self._logged_at = now
                event(log, logging.WARNING, "collector_drops_kept_traces", collector=url, dropped=more,
                      dropped_since_start=self.dropped, fix=FIX)
        return more

    def unreadable(self, url: str, reason: str) -> None:
        self._say("unreadable", logging.WARNING, "collector_metrics_unreadable", collector=url, reason=reason,
                  meaning="traces the Collector drops are not noticed until it can be read")

    def _say(self, state: str, level: int, name: str, **fields: Any) -> None:
        if state != self._state:
            self._state = state
            event(log, level, name, **fields)

    async def watch(self, session: Any) -> None:
        """Read the Collector's metrics every interval, for as long as the collector runs."""
        import aiohttp

        while True:
            settings = self._settings()
            url = settings.collector_metrics
            if url is not None:
                timeout = min(10.0, settings.collector_metrics_interval)
                try:
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False,
                                           headers={"User-Agent": self._user_agent}) as response:
                        if response.status != 200:
                            raise ValueError(f"it answered {response.status}")
                        body = await response.content.read(MAX_BYTES + 1)
                        if len(body) > MAX_BYTES:
                            raise ValueError(f"its answer is over {MAX_BYTES} bytes")
                    text = await asyncio.to_thread(body.decode, "utf-8", "replace")
                    self.seen(url, await asyncio.to_thread(not_kept, text))
                except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
                    self.unreadable(url, str(exc) or type(exc).__name__)
            await asyncio.sleep(settings.collector_metrics_interval)
