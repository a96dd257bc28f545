"""Reading the Collector's count of traces it did not keep, and what is said about it."""

from __future__ import annotations

import logging

import pytest

from otel_health.config import OtlpSettings
from otel_health.telemetry.collector_drops import FAMILY, CollectorDrops, not_kept

# As the Collector's own Prometheus endpoint writes the family (v0.140, telemetry level normal).
TEXT = f"""# HELP {FAMILY}_total Global count of traces that were sampled or not by at least one policy
# TYPE {FAMILY}_total counter
{FAMILY}_total{{decision="not_sampled",otel_scope_name="x",sampled="false"}} 17
{FAMILY}_total{{decision="dropped",otel_scope_name="x",sampled="false"}} 3
{FAMILY}_total{{decision="sampled",otel_scope_name="x",sampled="true"}} 1234
{FAMILY}_other{{sampled="false"}} 99
otelcol_processor_tail_sampling_count_traces_sampled_total{{policy="p",sampled="false"}} 50
"""


def test_the_traces_not_kept_are_summed_from_the_final_decision_only() -> None:
    assert not_kept(TEXT) == 20
    assert not_kept(TEXT.replace("} 17", "} 1.7e1")) == 20
    assert not_kept(f'{FAMILY}_total{{sampled="true"}} 5\n') == 0
    assert not_kept("otelcol_receiver_accepted_spans_total 5\n") is None  # no tail sampling reported
    assert not_kept(f'{FAMILY}_total{{sampled="false"}} not-a-number\n') == 0


def test_the_sum_agrees_with_the_prometheus_clients_own_parser() -> None:
    """The one family is filtered by hand (the runtime carries no Prometheus parser); the
    reference parser of the Prometheus client reads the same number from the same text."""
    from prometheus_client.parser import text_string_to_metric_families

    text = "\n".join(line for line in TEXT.splitlines() if "_other" not in line) + "\n"
    expected = sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
                   if sample.name == f"{FAMILY}_total" and sample.labels.get("sampled") == "false")
    assert not_kept(text) == expected == 20


def test_each_increase_is_counted_and_said_once_every_ten_minutes(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    drops = CollectorDrops(OtlpSettings, user_agent="t", monotonic=lambda: now[0])
    url = "http://127.0.0.1:8888/metrics"
    caplog.set_level(logging.INFO, "otel_health.collector")
    assert drops.seen(url, 40) == 0  # the first read: what came before is not this process's
    assert drops.seen(url, 40) == 0
    assert drops.seen(url, 45) == 5
    now[0] = 300.0
    assert drops.seen(url, 47) == 2
    said = [r for r in caplog.records if r.getMessage() == "collector_drops_kept_traces"]
    assert [r.fields["dropped"] for r in said] == [5]  # type: ignore[attr-defined]
    now[0] = 601.0
    assert drops.seen(url, 3) == 3  # the Collector restarted: it counts from zero
    said = [r for r in caplog.records if r.getMessage() == "collector_drops_kept_traces"]
    assert [(r.fields["dropped"], r.fields["dropped_since_start"]) for r in said] == [(5, 5), (3, 10)]  # type: ignore[attr-defined]
    assert drops.dropped == 10


def test_an_unreadable_collector_is_said_once_until_it_reads_again(caplog: pytest.LogCaptureFixture) -> None:
    drops = CollectorDrops(OtlpSettings, user_agent="t")
    caplog.set_level(logging.INFO, "otel_health.collector")
    for _ in range(3):
        drops.unreadable("http://c/metrics", "connection refused")
    drops.seen("http://c/metrics", None)
    drops.unreadable("http://c/metrics", "connection refused")
    names = [r.getMessage() for r in caplog.records]
    assert names == ["collector_metrics_unreadable", "collector_metrics_read", "collector_metrics_unreadable"]
