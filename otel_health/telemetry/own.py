"""The collector's own series (``otel_health_*``): checks in flight and the scheduler's lag,
targets and shards, the last config load, discovery by source, export failures, and traces
the Collector dropped. Apart
from the check contract (``tta_service_*``, :mod:`.instruments`): these say how the
collector itself is doing, and its alerts (``OtelHealth*``) read them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics.export import MetricReader

from ..clock import WALL, Clock
from ..discovery import SourceStatus
from ..sharding import Shard
from .collect import forget

__all__ = ["ExportFailures", "OwnSeries"]

_EMPTY: dict[str, str] = {}
# A context whose span is invalid: "no exemplar here". (An empty Context would not do: the
# SDK falls back to the current context when given an empty one.)
_NO_SPAN = trace.set_span_in_context(trace.INVALID_SPAN, otel_context.Context())


class ExportFailures:
    """Telemetry export batches that failed, by signal: counted by the exporters (on their
    own threads), reported as ``otel_health_export_failures_total``."""

    SIGNALS = ("traces", "metrics")

    def __init__(self) -> None:
        self._counts = dict.fromkeys(self.SIGNALS, 0)

    def add(self, signal: str, count: int = 1) -> None:
        self._counts[signal] = self._counts.get(signal, 0) + count

    def counts(self) -> Mapping[str, int]:
        return self._counts


class OwnSeries:
    """What the ``otel_health_*`` series read, kept up to date by the collector, and the
    instruments that read it (made on the collector's meter by :meth:`make_instruments`).
    ``targets_here`` is how many targets this instance checks now."""

    def __init__(self, *, readers: Sequence[MetricReader], targets_here: Callable[[], int],
                 in_flight: Callable[[], int] = lambda: 0, export_failures: ExportFailures | None = None,
                 clock: Clock = WALL) -> None:
        self._readers = readers
        self._targets_here = targets_here
        self._in_flight = in_flight
        self.export_failures = export_failures or ExportFailures()
        self._clock = clock
        self._reload_ok = 1
        self._reload_time = clock()
        self._configured = 0
        self._replicas = 1
        self._shard_attrs = {"shard_index": "0", "shard_count": "1"}
        self._discovery: dict[str, tuple[int, int]] = {}  # source -> (targets, last read good)
        self._discovery_time: dict[str, float] = {}
        self._discovery_failures: dict[str, int] = {}
        # Traces the Collector dropped though they were sent to be kept (``collector_drops``).
        self.collector_dropped: Callable[[], int] = lambda: 0
        # Writes of the history store (state_dir) that failed (``history``).
        self.history_failures: Callable[[], int] = lambda: 0

    def make_instruments(self, m: Meter) -> None:
        self._lag = m.create_histogram("otel_health_scheduler_lag_seconds", unit="s",
                                       description="Delay from a check's due time to its start")
        m.create_observable_gauge("otel_health_checks_in_flight", [self._observe_in_flight],
                                  description="Checks running now")
        m.create_observable_gauge("otel_health_targets", [self._observe_targets],
                                  description="Targets in the configuration, on every shard")
        m.create_observable_gauge("otel_health_shard_targets", [self._observe_shard_targets],
                                  description="Targets this instance checks: its shard of the configuration's")
        m.create_observable_gauge("otel_health_shard_replicas", [self._observe_shard_replicas],
                                  description="How many instances check each target (replicas of the shards)")
        m.create_observable_gauge("otel_health_config_last_reload_successful", [self._observe_reload_ok],
                                  description="1 if the last configuration load succeeded, else 0")
        m.create_observable_gauge("otel_health_config_last_reload_success_timestamp_seconds",
                                  [self._observe_reload_time], unit="s",
                                  description="Unix time of the last successful configuration load")
        m.create_observable_counter("otel_health_export_failures", [self._observe_export_failures], unit="",
                                    description="Telemetry export batches that failed, by signal")
        m.create_observable_counter("otel_health_collector_dropped_traces", [self._observe_collector_dropped],
                                    unit="", description="Traces the Collector's tail sampling did not keep though "
                                                         "otel-health sent them to be kept (otlp.collector_metrics)")
        m.create_observable_counter("otel_health_history_write_failures",
                                    [lambda _: iter((Observation(self.history_failures()),))], unit="",
                                    description="Writes of the history store in state_dir that failed (a full "
                                                "disk, a locked or unwritable file): checks go on")
        m.create_observable_gauge("otel_health_discovery_targets", [self._observe_discovery_targets],
                                  description="Targets a discovery source makes now (its last good groups')")
        m.create_observable_gauge("otel_health_discovery_last_read_successful", [self._observe_discovery_ok],
                                  description="1 if every file or answer of a discovery source was last read and "
                                              "valid, else 0 (its last good targets are kept)")
        m.create_observable_gauge("otel_health_discovery_last_success_timestamp_seconds",
                                  [self._observe_discovery_time], unit="s",
                                  description="Unix time a discovery source was last read whole and valid")
        m.create_observable_counter("otel_health_discovery_read_failures", [self._observe_discovery_failures],
                                    unit="", description="Reads of a discovery file or endpoint that failed "
                                                         "(unreadable, not valid, or a target that does not validate)")

    def sharded(self, shard: Shard | None, configured: int) -> None:
        """Which shard this instance is (none: 0 of 1) and how many targets all shards share."""
        self._configured = configured
        self._replicas = shard.replicas if shard else 1
        self._shard_attrs = {"shard_index": str(shard.index if shard else 0),
                             "shard_count": str(shard.count if shard else 1)}

    def discovered(self, status: Mapping[str, SourceStatus]) -> None:
        """Discovery as the last load left it, by source."""
        now = self._clock()
        removed = self._discovery.keys() - status.keys()
        if removed:  # a source a reload took away: its series go, the failures counter's too
            for reader in self._readers:
                forget(reader, lambda attributes: attributes.get("source") not in removed)
        self._discovery = {name: (st.targets, 1 if st.ok else 0) for name, st in status.items()}
        # Set once a source was read whole and valid: never for one that has not been read yet.
        self._discovery_time = {name: now if status[name].ok and status[name].read
                                else self._discovery_time.get(name, 0.0) for name in status}
        self._discovery_failures = {name: self._discovery_failures.get(name, 0) for name in status}

    def discovery_failed(self, source: str, reads: int = 1) -> None:
        if source in self._discovery_failures:
            self._discovery_failures[source] += reads

    def config_loaded(self, ok: bool) -> None:
        self._reload_ok = 1 if ok else 0
        if ok:
            self._reload_time = self._clock()

    def scheduler_lag(self, seconds: float) -> None:
        self._lag.record(seconds, _EMPTY, context=_NO_SPAN)

    def _observe_collector_dropped(self, _: CallbackOptions) -> Iterator[Observation]:
        yield Observation(self.collector_dropped())

    def _observe_in_flight(self, _: CallbackOptions) -> Iterator[Observation]:
        yield Observation(self._in_flight())

    def _observe_targets(self, _: CallbackOptions) -> Iterator[Observation]:
        yield Observation(max(self._configured, self._targets_here()))

    def _observe_shard_targets(self, _: CallbackOptions) -> Iterator[Observation]:
        yield Observation(self._targets_here(), self._shard_attrs)

    def _observe_shard_replicas(self, _: CallbackOptions) -> Iterator[Observation]:
        yield Observation(self._replicas)

    def _observe_reload_ok(self, _: CallbackOptions) -> Iterator[Observation]:
        yield Observation(self._reload_ok)

    def _observe_reload_time(self, _: CallbackOptions) -> Iterator[Observation]:
        yield Observation(self._reload_time)

    def _observe_discovery_targets(self, _: CallbackOptions) -> Iterator[Observation]:
        for name, (targets, _ok) in self._discovery.items():
            yield Observation(targets, {"source": name})

    def _observe_discovery_ok(self, _: CallbackOptions) -> Iterator[Observation]:
        for name, (_targets, ok) in self._discovery.items():
            yield Observation(ok, {"source": name})

    def _observe_discovery_time(self, _: CallbackOptions) -> Iterator[Observation]:
        for name, at in self._discovery_time.items():
            if at:
                yield Observation(at, {"source": name})

    def _observe_discovery_failures(self, _: CallbackOptions) -> Iterator[Observation]:
        for name, count in self._discovery_failures.items():
            yield Observation(count, {"source": name})

    def _observe_export_failures(self, _: CallbackOptions) -> Iterator[Observation]:
        for signal, count in self.export_failures.counts().items():
            yield Observation(count, {"signal": signal})
