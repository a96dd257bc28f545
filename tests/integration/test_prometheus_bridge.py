"""A real Prometheus scrapes the bridge: the contract's names, labels, buckets and removals."""

from __future__ import annotations

import asyncio

import pytest

from otel_health.telemetry import CHECK_DURATION_BUCKETS
from tests.harness.running import config_from, running
from tests.harness.servers import HttpTargets, Prometheus

pytestmark = pytest.mark.integration


def _targets(h: HttpTargets, *, with_broken: bool = True) -> str:
    text = ("environment: bridge-test\ntargets:\n"
            f"  - name: healthy\n    kind: http\n    url: {h.url('/ok')}\n    interval: 0.5s\n    timeout: 0.5s\n"
            f"  - name: slow\n    kind: http\n    url: {h.url('/slow?ms=300')}\n    interval: 0.5s\n"
            "    timeout: 0.5s\n")
    if with_broken:
        text += (f"  - name: broken\n    kind: http\n    url: {h.url('/status/500')}\n    interval: 0.5s\n"
                 "    timeout: 0.5s\n")
    return text


async def test_prometheus_scrapes_the_contract(http_targets: HttpTargets, prometheus: Prometheus) -> None:
    async with running(_targets(http_targets)) as r:
        await r.wait_for(lambda: all(r.checks(n) >= 4 for n in ("healthy", "slow", "broken")), timeout=20,
                         what="four checks of each target")
        job = f"bridge-{r.collector.port}"
        await asyncio.to_thread(prometheus.scrape, job, r.collector.port)

        async def query(promql: str) -> list[dict]:
            return await asyncio.to_thread(prometheus.query, promql)

        # Wait for a scrape that holds every target.
        for _ in range(100):
            up = await query(f'tta_service_up{{job="{job}"}}')
            if len(up) == 3:
                break
            await asyncio.sleep(0.2)
        values = {s["metric"]["service"]: s["value"][1] for s in up}
        assert values == {"healthy": "1", "slow": "1", "broken": "0"}
        for sample in up:
            assert sample["metric"]["environment"] == "bridge-test"
            assert sample["metric"]["kind"] == "http"

        buckets = await query(f'tta_service_check_duration_seconds_bucket{{job="{job}",service="slow"}}')
        bounds = sorted(float(s["metric"]["le"]) for s in buckets)
        assert bounds == [*CHECK_DURATION_BUCKETS, float("inf")]
        median = await query(
            f'histogram_quantile(0.5, tta_service_check_duration_seconds_bucket{{job="{job}",service="slow"}})')
        assert 0.25 < float(median[0]["value"][1]) <= 0.5

        rt = await query(f'tta_service_response_time_seconds{{job="{job}",service="slow"}}')
        assert 0.29 < float(rt[0]["value"][1]) < 0.5
        checks = await query(f'tta_service_checks_total{{job="{job}",service="broken"}}')
        assert checks[0]["metric"]["outcome"] == "down" and checks[0]["metric"]["error_type"] == "http_status"
        info = await query(f'tta_service_info{{job="{job}",service="broken"}}')
        assert info[0]["metric"]["status_code"] == "500"
        threshold = await query(f'tta_service_slow_threshold_seconds{{job="{job}",service="slow"}}')
        assert threshold[0]["value"][1] == "1"
        overflow = await query(f'{{job="{job}",otel_metric_overflow="true"}}')
        assert overflow == []
        lag = await query(f'otel_health_scheduler_lag_seconds_count{{job="{job}"}}')
        assert float(lag[0]["value"][1]) >= 12

        # A target removed by config disappears from /metrics.
        r.collector.apply(config_from("listen: 127.0.0.1:0\n" + _targets(http_targets, with_broken=False)))
        _, _, text = await r.get("/metrics")
        assert 'service="broken"' not in text
        assert 'tta_service_up{service="healthy"' in text
        await asyncio.to_thread(prometheus.unscrape, job)
