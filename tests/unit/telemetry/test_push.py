"""The periodic OTLP reader: SDK counters and histograms plus the state families, one export."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import Counter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    Sum,
)

from otel_health.telemetry import SCOPE, BridgeReader, PushReader
from otel_health.telemetry.families import Merged
from tests.harness.pipeline import Pipeline


class _Recording(MetricExporter):
    def __init__(self) -> None:
        super().__init__(preferred_temporality={})
        self.exports: list[MetricsData] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self.exports.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def _pipeline(exporter: MetricExporter) -> tuple[Pipeline, PushReader]:
    """As the collector wires it: the families, the resource and the meter's scope handed to the reader."""
    pipeline = Pipeline(lambda families, resource: [
        PushReader(exporter, families=families, resource=resource, scope=SCOPE, interval_s=3600)])
    reader = pipeline.readers[0]
    assert isinstance(reader, PushReader)
    return pipeline, reader


def _points(data: MetricsData) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out.setdefault(metric.name, []).extend((dict(p.attributes), metric.data, p)
                                                       for p in metric.data.data_points)
    return out


def test_one_export_carries_state_families_and_sdk_data_under_our_resource(make_target, make_result) -> None:
    exporter = _Recording()
    pipeline, reader = _pipeline(exporter)
    up, down = make_target("up", labels=(("team", "core"),)), make_target("down")
    pipeline.set_targets([up, down])
    pipeline.record(up, make_result(up=True, duration=0.02, version="2.1", status_code=200))
    pipeline.record(down, make_result(up=False, duration=0.5))
    try:
        reader.force_flush()
    finally:
        reader.shutdown()
    data = exporter.exports[0]
    assert len(data.resource_metrics) == 1
    assert data.resource_metrics[0].resource is pipeline.resource
    scopes = [sm.scope.name for sm in data.resource_metrics[0].scope_metrics]
    assert scopes.count("otel_health") == 1  # state families joined the meter's own scope
    points = _points(data)
    assert {(a["service"], p.value) for a, _, p in points["tta_service_up"]} == {("up", 1), ("down", 0)}
    assert {"service": "up", "environment": "test", "kind": "http", "team": "core"} in [
        a for a, _, _ in points["tta_service_up"]]
    info = next(a for a, _, _ in points["tta_service_info"] if a["service"] == "up")
    assert info["version"] == "2.1" and info["status_code"] == "200"
    skipped = points["otel_health_checks_skipped"]
    assert all(isinstance(d, Sum) and d.is_monotonic and d.aggregation_temporality is AggregationTemporality.CUMULATIVE
               and p.start_time_unix_nano > 0 for _, d, p in skipped)
    # Counters and histograms still come from the SDK's aggregation.
    assert {a["service"] for a, _, _ in points["tta_service_checks"]} == {"up", "down"}
    assert sum(p.count for _, _, p in points["tta_service_check_duration_seconds"]) == 2
    assert not reader._thread.is_alive()
    assert len(exporter.exports) == 2  # the flush, and the final export at shutdown


def test_a_large_export_goes_out_in_bounded_requests_with_every_point_once(make_target, make_result) -> None:
    from otel_health.telemetry.push import _chunks

    exporter = _Recording()
    pipeline, reader = _pipeline(exporter)
    targets = [make_target(f"svc-{i}") for i in range(60)]
    pipeline.set_targets(targets)
    for t in targets:
        pipeline.record(t, make_result())
    try:
        reader.force_flush()
    finally:
        reader.shutdown()
    whole = exporter.exports[0]  # 60 targets: well under one request's limit
    chunks = list(_chunks(whole, 25))
    assert len(chunks) > 10
    sizes = [sum(len(m.data.data_points) for rm in c.resource_metrics for sm in rm.scope_metrics for m in sm.metrics)
             for c in chunks]
    assert max(sizes) <= 25

    def flat(datas: list[MetricsData]) -> list[tuple[str, str, Any]]:
        return [(m.name, type(m.data).__name__, sorted(p.attributes.items()))
                for d in datas for rm in d.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                for p in m.data.data_points]

    assert flat(chunks) == flat([whole])
    assert all(rm.resource is pipeline.resource for c in chunks for rm in c.resource_metrics)


def test_exports_run_without_cyclic_gc_and_share_the_targets_attribute_sets(make_target, make_result) -> None:
    import gc

    seen_enabled: list[bool] = []

    class Watching(_Recording):
        def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kw: Any) -> MetricExportResult:
            seen_enabled.append(gc.isenabled())
            return super().export(metrics_data, timeout_millis, **kw)

    exporter = Watching()
    pipeline, reader = _pipeline(exporter)
    target = make_target("svc", labels=(("team", "core"),))
    pipeline.set_targets([target])
    pipeline.record(target, make_result(up=True, duration=0.02, version="2.1", status_code=200))
    assert gc.isenabled()
    try:
        reader.force_flush()
        reader.force_flush()
    finally:
        reader.shutdown()
    assert seen_enabled and not any(seen_enabled)  # no cyclic collection while points exist
    assert gc.isenabled()  # and back on after
    # an attribute set with extra labels (the info series' version) is the target's own mapping
    # with the extra pairs after it, not a copy: in both exports
    first, second = (_points(d) for d in exporter.exports[:2])
    info = [name for name in first if name.endswith("_info")]
    up = [name for name in first if name.endswith("_service_up")]
    assert info and up
    a, b = first[info[0]][0][2].attributes, second[info[0]][0][2].attributes
    assert isinstance(a, Merged) and isinstance(b, Merged)
    assert a.base is b.base is first[up[0]][0][2].attributes
    assert dict(a) == {**a.base, "version": "2.1", "status_code": "200"} and a["team"] == "core"
    assert list(a) == [*a.base, "version", "status_code"]


def test_removed_targets_and_old_labels_are_not_sent(make_target, make_result) -> None:
    import dataclasses

    exporter = _Recording()
    pipeline, reader = _pipeline(exporter)
    old, gone = make_target("api", labels=(("team", "core"),)), make_target("gone")
    pipeline.set_targets([old, gone])
    pipeline.record(old, make_result())
    pipeline.record(gone, make_result())
    new = dataclasses.replace(old, labels=(("team", "edge"),))
    pipeline.set_targets([new])
    pipeline.record(new, make_result())
    try:
        reader.force_flush()
    finally:
        reader.shutdown()
    points = _points(exporter.exports[0])
    for name in ("tta_service_checks", "tta_service_check_duration_seconds", "tta_service_up"):
        assert [(a["service"], a.get("team")) for a, _, _ in points[name]] == [("api", "edge")], name


def test_a_reader_over_the_bridges_storage_exports_what_a_reader_of_its_own_would(make_target, make_result) -> None:
    """With OTLP on, the push reader reads the bridge's cumulative storage instead of being a
    second SDK reader (each measurement aggregated once): the export must not change."""
    own, shared = _Recording(), _Recording()
    holder: list[PushReader] = []

    def readers(families: Any, resource: Any) -> list[Any]:
        bridge = BridgeReader(families=families)
        holder.append(PushReader(shared, families=families, resource=resource, scope=SCOPE, interval_s=3600,
                                 source=bridge.collect_sdk))
        return [bridge, PushReader(own, families=families, resource=resource, scope=SCOPE, interval_s=3600)]

    pipeline = Pipeline(readers)
    reader, over_bridge = pipeline.readers[1], holder[0]
    assert isinstance(reader, PushReader) and over_bridge.shared and PushReader.can_share(_Recording())
    up, down = make_target("up"), make_target("down")
    pipeline.set_targets([up, down])
    for _ in range(3):
        pipeline.record(up, make_result(up=True, duration=0.02))
        pipeline.record(down, make_result(up=False, duration=0.5))
    try:
        reader.force_flush()
        over_bridge.force_flush()
    finally:
        reader.shutdown()
        over_bridge.shutdown()

    def comparable(data: MetricsData) -> dict[str, list[Any]]:
        return {name: sorted((sorted(a.items()), getattr(p, "value", None), getattr(p, "count", None),
                              getattr(p, "sum", None), tuple(getattr(p, "bucket_counts", ()) or ()))
                             for a, _, p in points)
                for name, points in _points(data).items()}

    assert comparable(shared.exports[0]) == comparable(own.exports[0])
    assert len(shared.exports) == 2  # the last one at shutdown, through the bridge still


def test_delta_temporality_keeps_a_reader_of_its_own() -> None:
    class Delta(_Recording):
        def __init__(self) -> None:
            MetricExporter.__init__(self, preferred_temporality={Counter: AggregationTemporality.DELTA})
            self.exports = []

    assert not PushReader.can_share(Delta())


def test_a_scrape_and_a_push_over_one_storage_both_carry_the_latest_exemplar(make_target, make_result) -> None:
    """The SDK hands a sampled exemplar to one collection only; both ways out must show it."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    pushed = _Recording()
    holder: list[Any] = []

    def readers(families: Any, resource: Any) -> list[Any]:
        bridge = BridgeReader(families=families)
        holder.append(PushReader(pushed, families=families, resource=resource, scope=SCOPE, interval_s=3600,
                                 source=bridge.collect_sdk))
        return [bridge]

    pipeline = Pipeline(readers, span_processors=[SimpleSpanProcessor(InMemorySpanExporter())])
    bridge, push = pipeline.readers[0], holder[0]
    target = make_target("slow", slow=0.1)
    pipeline.set_targets([target])
    with pipeline.telemetry.check_span(target) as span:
        pipeline.record(target, make_result(up=True, duration=0.5, slow=True), span)
    trace_id = span.get_span_context().trace_id
    assert f'trace_id="{trace_id:032x}"' in bridge.render(openmetrics=True).decode()  # the scrape took it first
    try:
        push.force_flush()
    finally:
        push.shutdown()
    histogram = next(p for _, _, p in _points(pushed.exports[0])["tta_service_check_duration_seconds"])
    assert [e.trace_id for e in histogram.exemplars] == [trace_id]
    assert f'trace_id="{trace_id:032x}"' in bridge.render(openmetrics=True).decode()  # and keeps it


def test_a_periodic_export_pauses_as_it_makes_and_encodes_points_and_sends_the_same_bytes(
        make_target, make_result, monkeypatch) -> None:
    """The export thread pauses after every PACE_POINTS points it makes (the state families')
    and every PACE_POINTS it encodes; pacing changes nothing sent."""
    import threading

    from otel_health.telemetry import push, wire
    from otel_health.tuning import Pacer

    pipeline, reader = _pipeline(_Recording())
    targets = [make_target(f"svc-{i}") for i in range(40)]
    pipeline.set_targets(targets)
    for t in targets:
        pipeline.record(t, make_result())
    monkeypatch.setattr(push, "PACE_POINTS", 16)
    monkeypatch.setattr(push.time, "time_ns", lambda: 1_800_000_000_000_000_000)  # one time for both exports
    pauses: list[int] = []

    class Counting(Pacer):
        def pause(self) -> None:
            pauses.append(1)

    try:
        plain = [wire.encode_metrics(r) for r in push._requests(reader._parts(None), 100)]
        paced = [wire.encode_metrics(r) for r in push._requests(reader._parts(None), 100,
                                                                  Counting(threading.Event()))]
        made = sum(1 for _, points in reader._families.collect() for _ in points)
    finally:
        reader.shutdown()
    assert paced == plain and len(plain) > 3
    # each family point is made once and encoded once: a pause per 16 of each, and one for
    # the remainder of each metric's points and of each request's
    assert made > 200
    assert made * 2 // 16 <= len(pauses) <= made * 2 // 16 + 2 * (len(plain) + 20)


def test_a_periodic_export_does_not_pause_for_the_time_its_requests_wait_on_the_network(
        make_target, make_result) -> None:
    """During a Collector outage a request takes the exporter's retries: pausing twice that
    after it would hold the next export back for as long again."""
    import threading

    from otel_health.tuning import Pacer

    pipeline, reader = _pipeline(_Recording())
    target = make_target("svc")
    pipeline.set_targets([target])
    pipeline.record(target, make_result())
    waits: list[float] = []

    class Recording(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout or 0.0)
            return False

    class Slow(_Recording):
        def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kw: Any) -> MetricExportResult:
            threading.Event().wait(0.3)
            return super().export(metrics_data, timeout_millis, **kw)

    reader._exporter = Slow()
    try:
        reader._send(None, 1000, Pacer(Recording()))  # one request of a few points
    finally:
        reader.shutdown()
    assert waits and max(waits) < 0.3  # pauses for making and encoding points only, not the send's 0.3 s
