"""The keep decision taken in the process, as the Collector's tail sampling takes it, and the
light spans that become SDK spans only when their trace is kept."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanKind, StatusCode

from otel_health.telemetry.traces import (
    DEFAULT_KEEP_SALT,
    CheckTracerProvider,
    KeepPolicy,
    LightSpan,
    collector_threshold,
    fnv1a64,
)
from tests.harness.pipeline import Pipeline

VECTORS = Path(__file__).resolve().parents[2] / "testdata" / "collector-probabilistic-vectors.txt"


def _vectors(kind: str) -> list[list[str]]:
    lines = [line for line in VECTORS.read_text().splitlines() if line.startswith(f"{kind} ")]
    assert lines
    return [re.findall(r'"[^"]*"|\S+', line)[1:] for line in lines]


@pytest.mark.parametrize(("percent", "threshold"), _vectors("T"))
def test_the_threshold_is_the_collectors_to_the_last_unit(percent: str, threshold: str) -> None:
    assert collector_threshold(float(percent)) == int(threshold)


@pytest.mark.parametrize(("salt", "trace_id", "hashed"), _vectors("H"))
def test_the_hash_is_the_collectors(salt: str, trace_id: str, hashed: str) -> None:
    assert fnv1a64(bytes.fromhex(trace_id), fnv1a64(salt.strip('"').encode())) == int(hashed)


def test_an_empty_salt_is_the_collectors_default_and_shares_combine_as_the_smaller() -> None:
    assert KeepPolicy(10, "").salt == DEFAULT_KEEP_SALT
    rng = random.Random(5)
    ids = [rng.getrandbits(128) for _ in range(20_000)]
    low, high = KeepPolicy(5, "s"), KeepPolicy(40, "s")
    both = [i for i in ids if low.keeps(i) and high.keeps(i)]
    assert both == [i for i in ids if low.keeps(i)]  # kept by both tiers = kept by the smaller share
    assert 0.03 < len(both) / len(ids) < 0.07
    assert not any(KeepPolicy(0).keeps(i) for i in ids[:1000]) and all(KeepPolicy(100).keeps(i) for i in ids[:1000])


def _tracing(keep: bool) -> tuple[trace.Tracer, InMemorySpanExporter]:
    exported = InMemorySpanExporter()
    provider = CheckTracerProvider(Resource.create({"service.name": "t"}), [SimpleSpanProcessor(exported)],
                                   keep=lambda root: keep)
    return provider.get_tracer("t", "1"), exported


def test_a_kept_trace_becomes_sdk_spans_with_their_links_and_a_dropped_one_nothing() -> None:
    for keep in (True, False):
        tracer, exported = _tracing(keep)
        with tracer.start_as_current_span("root", context=None) as root:
            child = tracer.start_span("GET", kind=SpanKind.CLIENT, attributes={"a": 1, "skip": None})
            child.set_status(StatusCode.ERROR, "bad")
            child.add_event("retry", {"n": 1})
            child.end()
            late = tracer.start_span("late")
        late.end()  # after the root's decision: it follows it
        spans = exported.get_finished_spans()
        if not keep:
            assert spans == ()
            continue
        assert [s.name for s in spans] == ["GET", "root", "late"]
        assert all(isinstance(s, ReadableSpan) for s in spans)
        get, root_span, late_span = spans
        assert get.parent.span_id == root_span.context.span_id == late_span.parent.span_id
        assert get.context.trace_id == root_span.context.trace_id and root_span.parent is None
        assert dict(get.attributes) == {"a": 1} and get.status.status_code is StatusCode.ERROR
        assert get.events[0].name == "retry" and get.kind is SpanKind.CLIENT
        assert get.instrumentation_scope.name == "t" and get.end_time >= get.start_time
        assert isinstance(root, LightSpan) and root.get_span_context().trace_flags.sampled


def test_with_nowhere_to_send_nothing_is_recorded_but_ids_are_made() -> None:
    tracer = CheckTracerProvider(Resource.create({})).get_tracer("t")
    span = tracer.start_span("root")
    assert isinstance(span, NonRecordingSpan) and not span.is_recording()
    context = span.get_span_context()
    assert context.is_valid and not context.trace_flags.sampled


def test_the_trace_id_in_history_is_given_exactly_for_kept_traces(make_target, make_result) -> None:
    exported = InMemorySpanExporter()
    pipeline = Pipeline(lambda families, resource: [], span_processors=[SimpleSpanProcessor(exported)],
                        keep=KeepPolicy(30, "history"))
    target = make_target("t")
    pipeline.set_targets([target])
    random.seed(18)  # trace ids from the seeded generator: the share below is not left to chance
    given: list[str | None] = []
    for i in range(600):
        up = i % 10 != 0
        with pipeline.telemetry.check_span(target) as span:
            pipeline.record(target, make_result(up=up, duration=0.01), span)
            given.append(pipeline.store.current(target).history[-1].trace_id)  # type: ignore[union-attr]
    kept = {format(s.context.trace_id, "032x") for s in exported.get_finished_spans()}
    assert {g for g in given if g} == kept  # every id shown leads to a kept trace, and every kept one is shown
    assert all(given[i] for i in range(0, 600, 10))  # failed checks: always
    healthy = [g for i, g in enumerate(given) if i % 10]
    assert 0.24 < sum(1 for g in healthy if g) / len(healthy) < 0.36


def test_the_share_and_salt_come_from_the_config_else_the_variables_the_collector_reads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from otel_health.config import ConfigError
    from otel_health.config.loader import load_text
    from otel_health.probes import PROBES

    text = "targets:\n  - name: a\n    kind: http\n    url: http://127.0.0.1/\n"
    monkeypatch.setenv("OTEL_HEALTH_KEEP_PERCENT", "25")
    monkeypatch.setenv("OTEL_HEALTH_KEEP_SALT", "shared-salt")
    otlp = load_text(text, "c.yaml", PROBES).otlp
    assert (otlp.keep_percent, otlp.keep_salt) == (25.0, "shared-salt")
    written = load_text("otlp:\n  keep_percent: 0.5\n  keep_salt: mine\n" + text, "c.yaml", PROBES).otlp
    assert (written.keep_percent, written.keep_salt) == (0.5, "mine")
    monkeypatch.setenv("OTEL_HEALTH_KEEP_PERCENT", "lots")
    with pytest.raises(ConfigError, match="environment variable OTEL_HEALTH_KEEP_PERCENT must be a percentage"):
        load_text(text, "c.yaml", PROBES)
