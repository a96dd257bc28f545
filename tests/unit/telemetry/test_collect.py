"""The paced collection of the SDK's storage, held to the SDK's own collect."""

from __future__ import annotations

import dataclasses
from typing import Any

from opentelemetry.sdk.metrics import Counter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_health.telemetry import BridgeReader
from otel_health.telemetry.collect import collect
from tests.harness.pipeline import Pipeline, sdk_series


def _without_times(data: MetricsData | None) -> Any:
    """``data`` as plain values, every timestamp zeroed (two collections never share them)."""
    def point(p: Any) -> Any:
        fields = dataclasses.asdict(p)
        fields["start_time_unix_nano"] = fields["time_unix_nano"] = 0
        fields["attributes"] = dict(p.attributes)
        fields["exemplars"] = [(dict(e.filtered_attributes or {}), e.value, e.span_id, e.trace_id)
                               for e in p.exemplars]
        return fields

    assert data is not None
    return [(rm.resource.attributes, rm.schema_url,
             [(sm.scope, sm.schema_url,
               [(m.name, m.description, m.unit, type(m.data).__name__,
                 getattr(m.data, "aggregation_temporality", None), getattr(m.data, "is_monotonic", None),
                 [point(p) for p in m.data.data_points]) for m in sm.metrics])
              for sm in rm.scope_metrics]) for rm in data.resource_metrics]


def test_the_paced_collection_hands_over_what_the_sdk_collects(make_target, make_result) -> None:
    """Two readers of one meter provider see every measurement alike: one collected by the SDK,
    the other by the paced walk. Same metrics, points, order and exemplars; pauses as asked."""
    sdk, paced = BridgeReader(), BridgeReader()
    pipeline = Pipeline(lambda families, resource: [sdk, paced],
                        span_processors=[SimpleSpanProcessor(InMemorySpanExporter())])  # exemplars need traces
    targets = [make_target(f"svc-{i:02d}", labels=(("team", "core" if i % 2 else "edge"),)) for i in range(30)]
    pipeline.set_targets(targets)
    for round_ in range(3):
        for i, target in enumerate(targets):
            up = (i + round_) % 4 != 0
            with pipeline.telemetry.check_span(target) as span:
                pipeline.record(target, make_result(up=up, duration=0.002 * (i + 1) if up else 0.3), span,
                                lag=0.001 * i)
    pauses: list[int] = []
    with pipeline.families.bypassed():
        sdk.collect()
        expected, sdk._latest = sdk._latest, None
        done, got = collect(paced, lambda: pauses.append(1), every=7)
    assert done
    assert _without_times(got) == _without_times(expected)
    series = sum(len(m.data.data_points) for rm in expected.resource_metrics for sm in rm.scope_metrics  # type: ignore[union-attr]
                 for m in sm.metrics)
    assert series > 60 and len(pauses) == series // 7
    assert any(e for rm in got.resource_metrics for sm in rm.scope_metrics for m in sm.metrics  # type: ignore[union-attr]
               for p in m.data.data_points for e in getattr(p, "exemplars", ()))  # exemplars went through


def test_storage_it_does_not_know_is_left_to_the_sdk() -> None:
    delta = InMemoryMetricReader(preferred_temporality={Counter: AggregationTemporality.DELTA})
    Pipeline(lambda families, resource: [delta])
    assert collect(delta, lambda: None) == (False, None)
    assert collect(BridgeReader(), lambda: None) == (False, None)  # not registered with a provider


def test_a_reload_forgets_the_sdk_series_of_removed_and_relabelled_targets(make_target, make_result) -> None:
    """Counters and histograms of a target a reload removed, or relabelled, leave every
    reader's storage; the live ones, and the collector's own series, stay with their values."""
    bridge, other = BridgeReader(), InMemoryMetricReader(preferred_temporality={
        Counter: AggregationTemporality.CUMULATIVE})
    pipeline = Pipeline(lambda families, resource: [bridge, other])
    keep, gone, moved = make_target("keep"), make_target("gone"), make_target("moved", labels=(("team", "a"),))
    pipeline.set_targets([keep, gone, moved])
    pipeline.telemetry.scheduler_lag(0.001)
    for target in (keep, gone, moved):
        pipeline.record(target, make_result(up=True))
        pipeline.record(target, make_result(up=False))
    relabelled = make_target("moved", labels=(("team", "b"),))
    pipeline.set_targets([keep, relabelled])
    for reader in (bridge, other):
        held = sdk_series(reader)
        services = {(a["service"], a.get("team"))
                    for name in ("tta_service_checks", "tta_service_check_duration_seconds") for a in held[name]}
        assert services == {("keep", None)}
        assert len(held["tta_service_checks"]) == 2  # keep's up and down
        assert len(held["otel_health_scheduler_lag_seconds"]) == 1  # no target in it: kept
    pipeline.record(relabelled, make_result(up=True))
    checks = [a for a in sdk_series(bridge)["tta_service_checks"] if a["service"] == "moved"]
    assert checks == [{"service": "moved", "environment": "test", "kind": "http", "team": "b",
                       "outcome": "up", "error_type": ""}]


def test_under_churn_the_sdk_holds_the_live_targets_series_only(make_target, make_result) -> None:
    """Fifty reloads, each replacing a fifth of 50 targets: the storage ends with the live
    targets' series alone, far below the cardinality limit, and no series overflows."""
    bridge = BridgeReader()
    pipeline = Pipeline(lambda families, resource: [bridge])
    generation = {i: 0 for i in range(50)}
    for round_ in range(50):
        for i in range(round_ % 5, 50, 5):
            generation[i] = round_
        targets = [make_target(f"t{i}-{g}") for i, g in generation.items()]
        pipeline.set_targets(targets)
        for target in targets:
            pipeline.record(target, make_result(up=True))
    held = sdk_series(bridge)
    assert len(held["tta_service_checks"]) == len(held["tta_service_check_duration_seconds"]) == 50
    assert not any("otel.metric.overflow" in a for series in held.values() for a in series)


def test_a_discovery_source_removed_by_a_reload_leaves_no_series(make_target, make_result) -> None:
    from otel_health.discovery import SourceStatus

    bridge = BridgeReader()
    pipeline = Pipeline(lambda families, resource: [bridge])
    pipeline.telemetry.discovered({"a": SourceStatus("a", 2, 1), "b": SourceStatus("b", 1, 1, (("f", "bad"),))})
    pipeline.telemetry.discovery_failed("b", 3)
    bridge.collect()
    assert {a["source"] for a in sdk_series(bridge)["otel_health_discovery_read_failures"]} == {"a", "b"}
    pipeline.telemetry.discovered({"a": SourceStatus("a", 2, 1)})
    bridge.collect()
    for name in ("otel_health_discovery_read_failures", "otel_health_discovery_targets"):
        assert {a["source"] for a in sdk_series(bridge)[name]} == {"a"}, name
