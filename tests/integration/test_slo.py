"""The checks an SLO counts, through a running collector: a failed check spends the budget
(counted down), a passing one not; while a target's alerts are held back by a dependency down,
its checks are left out (``suppressed: excluded``) or counted as they went (``counted``); the
objective is a series with its window and counting."""

from __future__ import annotations

from tests.harness import servers
from tests.harness.procs import free_port
from tests.harness.running import running


async def test_the_budgets_checks_are_counted_as_each_slo_says(http_targets: servers.HttpTargets) -> None:
    h = http_targets
    closed = free_port()
    text = ("defaults:\n  interval: 0.2s\n  timeout: 0.2s\n  slo: {objective: 99.5%, window: 7d}\ntargets:\n"
            f"  - name: db\n    kind: tcp\n    host: 127.0.0.1\n    port: {closed}\n"
            f"  - name: web\n    kind: http\n    url: {h.url('/ok')}\n"
            f"  - name: api\n    kind: http\n    url: {h.url('/status/503')}\n    depends_on: [db]\n"
            f"  - name: api-counted\n    kind: http\n    url: {h.url('/status/503')}\n    depends_on: [db]\n"
            "    slo: {objective: 99%, window: 30d, suppressed: counted}\n"
            f"  - name: plain\n    kind: http\n    url: {h.url('/ok')}\n    slo: false\n")
    async with running(text) as r:
        await r.wait_for(lambda: r.state("db").debounced_up is False and r.state("api").suppressed is not None,
                         timeout=10, what="db down and api held back by it")
        before = _counted(r)
        await r.wait_for(lambda: r.checks("api") >= 10 and r.checks("web") >= 10, timeout=10, what="ten checks each")
        after = _counted(r)
        _, _, metrics = await r.get("/metrics")
    spent = {key: after.get(key, 0) - before.get(key, 0) for key in after}
    assert spent[("db", "down")] > 0 and spent.get(("db", "up"), 0) == 0
    assert spent[("web", "up")] > 0 and spent.get(("web", "down"), 0) == 0
    assert spent.get(("api", "down"), 0) == 0 and spent.get(("api", "up"), 0) == 0  # held back: not counted
    assert spent[("api-counted", "down")] > 0
    assert not any(service == "plain" for service, _ in after)
    assert ('tta_service_slo_objective{service="api-counted",environment="default",kind="http",slo_window="30d",'
            'slo_count="raw",slo_suppressed="counted"} 0.99') in metrics
    assert 'tta_service_slo_objective{service="plain"' not in metrics


def _counted(r: object) -> dict[tuple[str, str], int]:
    data = r.metrics.get_metrics_data()  # type: ignore[attr-defined]
    return {(point.attributes["service"], point.attributes["outcome"]): int(point.value)
            for rm in (data.resource_metrics if data else ()) for sm in rm.scope_metrics for metric in sm.metrics
            if metric.name == "tta_service_slo_checks" for point in metric.data.data_points}
