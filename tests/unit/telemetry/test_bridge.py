"""The bridge's renderer says what the OpenTelemetry Prometheus exporter says, faster."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from otel_health.telemetry import CHECK_DURATION_BUCKETS, BridgeReader, cardinality_limits
from tests.harness.pipeline import Pipeline


def _pipeline_with_both_readers(*, traced: bool = True) -> tuple[Pipeline, BridgeReader, CollectorRegistry]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    registry = CollectorRegistry()
    reference = PrometheusMetricReader(disable_target_info=True, scope_info_enabled=False, registry=registry)
    processors = [SimpleSpanProcessor(InMemorySpanExporter())] if traced else []
    # as the collector wires it: the bridge renders the state families straight from the store
    pipeline = Pipeline(lambda families, _: [BridgeReader(families=families, cardinality_limits=cardinality_limits()),
                                          reference], span_processors=processors)
    bridge = pipeline.readers[0]
    assert isinstance(bridge, BridgeReader)
    return pipeline, bridge, registry


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            # Prometheus treats an empty label as an absent one (the reference exporter fills
            # labels some points lack with "").
            out[(s.name, frozenset((k, v) for k, v in s.labels.items() if v))] = s.value
    return out


def _types(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def test_render_matches_the_opentelemetry_prometheus_exporter(make_target, make_result) -> None:
    pipeline, bridge, registry = _pipeline_with_both_readers()
    targets = [make_target(f"svc-{i}", labels=(("team", "core"),) if i % 2 else ()) for i in range(50)]
    pipeline.set_targets(targets)
    for i, t in enumerate(targets):
        pipeline.record(t, make_result(up=i % 3 != 0, duration=0.001 * (i + 1), version=f"1.{i}",
                                        status_code=200 if i % 3 else 503))
    ours = bridge.render().decode()
    reference = generate_latest(registry).decode()  # the SDK's observable instruments, collected
    assert _samples(ours) == _samples(reference)
    assert _types(ours) == _types(reference)
    assert len(_samples(ours)) > 50 * 10
    # The bridge's render silenced the callbacks on its own thread only, and only while it ran.
    assert _samples(generate_latest(registry).decode()) == _samples(reference)
    assert 'tta_service_up{service="svc-1",environment="test",kind="http",team="core"} 1' in ours


def test_histogram_buckets_are_the_configured_seconds(make_target, make_result) -> None:
    pipeline, bridge, _ = _pipeline_with_both_readers()
    target = make_target("api")
    pipeline.set_targets([target])
    pipeline.record(target, make_result(duration=0.3))
    text = bridge.render().decode()
    bounds = [float(s.labels["le"]) for f in text_string_to_metric_families(text)
              if f.name == "tta_service_check_duration_seconds" for s in f.samples if s.name.endswith("_bucket")]
    assert bounds == [*CHECK_DURATION_BUCKETS, float("inf")]


def test_removed_target_series_disappear(make_target, make_result) -> None:
    pipeline, bridge, _ = _pipeline_with_both_readers()
    keep, gone = make_target("keep"), make_target("gone")
    pipeline.set_targets([keep, gone])
    pipeline.record(keep, make_result())
    pipeline.record(gone, make_result())
    assert 'service="gone"' in bridge.render().decode()
    pipeline.set_targets([keep])
    text = bridge.render().decode()
    assert 'service="gone"' not in text
    assert 'tta_service_checks_total{service="keep"' in text


def test_openmetrics_output_parses_and_carries_exemplars_of_failed_checks(make_target, make_result) -> None:
    pipeline, bridge, _ = _pipeline_with_both_readers()
    target = make_target("api")
    pipeline.set_targets([target])
    with pipeline.telemetry.check_span(target) as failed_span:
        pipeline.record(target, make_result(up=False, duration=0.2), failed_span)
    with pipeline.telemetry.check_span(target) as ok_span:
        pipeline.record(target, make_result(up=True, duration=0.002), ok_span)
    text = bridge.render(openmetrics=True).decode()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(text)}
    samples = families["tta_service_check_duration_seconds"].samples
    exemplars = [s.exemplar for s in samples if s.exemplar is not None]
    assert len(exemplars) == 1  # only the failed check's
    assert exemplars[0].labels["trace_id"] == format(failed_span.get_span_context().trace_id, "032x")
    assert families["tta_service_checks"].type == "counter"


def test_without_a_trace_destination_spans_are_not_recorded_nor_exemplars_kept(make_target, make_result) -> None:
    pipeline, bridge, _ = _pipeline_with_both_readers(traced=False)
    target = make_target("api")
    pipeline.set_targets([target])
    with pipeline.telemetry.check_span(target) as span:
        pipeline.record(target, make_result(up=False, duration=0.2), span)
    assert not span.is_recording()
    assert span.get_span_context().is_valid  # a trace id for traceparent all the same
    assert "# {trace_id" not in bridge.render(openmetrics=True).decode()
    assert pipeline.store.get(target.key).history[-1].trace_id is None


def test_label_values_are_escaped(make_target, make_result) -> None:
    pipeline, bridge, _ = _pipeline_with_both_readers()
    target = make_target("api")
    pipeline.set_targets([target])
    pipeline.record(target, make_result(version='1.0 "beta"\\x\nnext'))
    families = list(text_string_to_metric_families(bridge.render().decode()))
    info = next(f for f in families if f.name == "tta_service_info")
    assert info.samples[0].labels["version"] == '1.0 "beta"\\x\nnext'


def test_a_reload_that_changes_only_labels_moves_every_series(make_target, make_result) -> None:
    import dataclasses

    pipeline, bridge, _ = _pipeline_with_both_readers()
    old = make_target("api", labels=(("team", "core"),))
    pipeline.set_targets([old])
    pipeline.record(old, make_result(duration=0.02))
    assert 'team="core"' in bridge.render().decode()
    new = dataclasses.replace(old, labels=(("team", "edge"),))
    pipeline.set_targets([new])
    pipeline.record(new, make_result(duration=0.02))
    text = bridge.render().decode()
    assert 'team="core"' not in text  # neither the counter, nor the histogram, nor a state family
    assert [line for line in text.splitlines() if line.startswith("tta_service_checks_total{")] == [
        'tta_service_checks_total{service="api",environment="test",kind="http",team="edge",outcome="up",'
        'error_type=""} 1']
    assert 'tta_service_check_duration_seconds_count{service="api",environment="test",kind="http",team="edge"} 1' \
        in text
