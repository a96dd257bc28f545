"""The Grafana dashboards, as code: ``python monitoring/grafana/dashboards.py`` writes the JSON.

Built with Grafana's foundation SDK. The SDK has no Jaeger query builder, so the small
Jaeger query model Grafana's Jaeger data source understands is defined here; it is
registered with the SDK's runtime so dashboards read back from JSON keep their queries.

Every query here is run by the tests against a real Prometheus and Jaeger.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Self

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

OUT = Path(__file__).parent / "dashboards"
PROMETHEUS = model.DataSourceRef(type_val="prometheus", uid="prometheus")
JAEGER = model.DataSourceRef(type_val="jaeger", uid="jaeger")
# The label filter every tta_service_* query carries.
SEL = 'environment=~"$environment", service=~"$service", location=~"$location"'


class JaegerQuery(cogvariants.Dataquery):
    """Grafana's Jaeger data source query: a trace search by service, operation and tags."""

    def __init__(self, ref_id: str = "A", query_type: str = "search", service: str = "", operation: str = "",
                 tags: str = "", limit: int = 20, min_duration: str = "", max_duration: str = "") -> None:
        self.ref_id = ref_id
        self.query_type = query_type
        self.service = service
        self.operation = operation
        self.tags = tags
        self.limit = limit
        self.min_duration = min_duration
        self.max_duration = max_duration

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {"datasource": JAEGER.to_json(), "refId": self.ref_id,
                                      "queryType": self.query_type, "service": self.service, "limit": self.limit}
        for key, value in (("operation", self.operation), ("tags", self.tags), ("minDuration", self.min_duration),
                           ("maxDuration", self.max_duration)):
            if value:
                payload[key] = value
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(ref_id=data.get("refId", "A"), query_type=data.get("queryType", "search"),
                   service=data.get("service", ""), operation=data.get("operation", ""), tags=data.get("tags", ""),
                   limit=data.get("limit", 20), min_duration=data.get("minDuration", ""),
                   max_duration=data.get("maxDuration", ""))


class JaegerSearch(cogbuilder.Builder[JaegerQuery]):
    def __init__(self) -> None:
        self._internal = JaegerQuery()

    def build(self) -> JaegerQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def service(self, service: str) -> Self:
        self._internal.service = service
        return self

    def tags(self, tags: str) -> Self:
        """logfmt, as Grafana writes it: ``key=value key2=value2``."""
        self._internal.tags = tags
        return self

    def limit(self, limit: int) -> Self:
        self._internal.limit = limit
        return self


cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(identifier="jaeger",
                                                                 from_json_hook=JaegerQuery.from_json))


def _prom(expr: str, legend: str = "", *, ref: str = "A", exemplar: bool = False,
          instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref).legend_format(legend or "__auto")
    if exemplar:
        query = query.exemplar(True)
    return query.instant() if instant else query.range()


def _variables(board: dash.Dashboard) -> dash.Dashboard:
    refresh = model.VariableRefresh.ON_TIME_RANGE_CHANGED
    return (board
            .with_variable(dash.QueryVariable("environment").label("Environment").datasource(PROMETHEUS)
                           .query("label_values(tta_service_up, environment)").refresh(refresh)
                           .multi(True).include_all(True).all_value(".*"))
            .with_variable(dash.QueryVariable("service").label("Service").datasource(PROMETHEUS)
                           .query('label_values(tta_service_up{environment=~"$environment"}, service)')
                           .refresh(refresh).multi(True).include_all(True).all_value(".*"))
            # where the checks are made from (an instance's location:); All includes series without one
            .with_variable(dash.QueryVariable("location").label("Location").datasource(PROMETHEUS)
                           .query('label_values(tta_service_up{environment=~"$environment"}, location)')
                           .refresh(refresh).multi(True).include_all(True).all_value(".*"))
            .with_variable(dash.TextBoxVariable("trace_service").label("Traces of (service.name)")
                           .default_value("otel-health")))


def services_dashboard() -> dash.Dashboard:
    up_down = [model.ValueMap(options={"1": model.ValueMappingResult(text="UP", color="green"),
                                       "0": model.ValueMappingResult(text="DOWN", color="red")})]
    board = (dash.Dashboard("otel-health: services")
             .uid("otel-health-services")
             .tags(["otel-health"])
             .description("Every checked service: state, speed, failures and the traces that explain them.")
             .refresh("30s").time("now-1h", "now").timezone("browser").editable())
    board = _variables(board)
    return (board
            .with_row(dash.Row("Services"))
            .with_panel(stat.Panel().title("Status").description("The last check of each service (raw).")
                        .datasource(PROMETHEUS).height(6).span(24)
                        .with_target(_prom(f"max by (service, environment) (tta_service_up{{{SEL}}})",
                                           "{{service}} ({{environment}})", instant=True))
                        .mappings(up_down).color_mode("background").text_mode("value_and_name")
                        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))
            .with_panel(table.Panel().title("Suppressed now: alerts held back, checks going on")
                        .description("Services in a maintenance window or with a dependency down (reason), and "
                                     "which dependency is down. Their checks and state are unchanged.")
                        .datasource(PROMETHEUS).height(6).span(24)
                        .with_target(_prom(f"max by (service, environment, reason) (tta_service_suppressed{{{SEL}}}) "
                                           "== 1", "{{service}} ({{environment}}): {{reason}}", ref="A",
                                           instant=True))
                        .with_target(_prom("max by (service, environment, depends_on) ("
                                           f"tta_service_dependency_info{{{SEL}}} and on (environment, depends_on) "
                                           "label_replace(max by (service, environment) (tta_service_state_up) == 0, "
                                           '"depends_on", "$1", "service", "(.*)"))',
                                           "{{service}} ({{environment}}) waits on {{depends_on}}", ref="B",
                                           instant=True)))
            .with_panel(timeseries.Panel().title("Response time").unit("s").datasource(PROMETHEUS).height(8).span(12)
                        .with_target(_prom("max by (service, environment) "
                                           f"(tta_service_response_time_seconds{{{SEL}}})",
                                           "{{service}} ({{environment}})")))
            .with_panel(timeseries.Panel().title("Check duration quantiles (exemplars: failed and slow checks)")
                        .unit("s").datasource(PROMETHEUS).height(8).span(12)
                        .with_target(_prom("histogram_quantile(0.5, sum by (le, service) "
                                           f"(rate(tta_service_check_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                                           "p50 {{service}}", ref="A", exemplar=True))
                        .with_target(_prom("histogram_quantile(0.95, sum by (le, service) "
                                           f"(rate(tta_service_check_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                                           "p95 {{service}}", ref="B", exemplar=True))
                        .with_target(_prom("histogram_quantile(0.99, sum by (le, service) "
                                           f"(rate(tta_service_check_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                                           "p99 {{service}}", ref="C", exemplar=True)))
            .with_panel(timeseries.Panel().title("Failures by error type").unit("short").datasource(PROMETHEUS)
                        .height(8).span(12)
                        # one replica's count (the larger), not the sum of every instance checking it
                        .with_target(_prom("max by (service, error_type) (sum by (service, error_type, instance) "
                                           '(increase(tta_service_checks_total'
                                           f'{{outcome="down", {SEL}}}[$__rate_interval])))',
                                           "{{service}}: {{error_type}}")))
            .with_panel(timeseries.Panel().title("Raw vs debounced state").datasource(PROMETHEUS).height(8).span(12)
                        .min(0).max(1)
                        .with_target(_prom(f"max by (service, environment) (tta_service_up{{{SEL}}})",
                                           "raw {{service}}", ref="A"))
                        .with_target(_prom(f"max by (service, environment) (tta_service_state_up{{{SEL}}})",
                                           "debounced {{service}}", ref="B")))
            .with_panel(table.Panel().title("TLS certificate: days left").datasource(PROMETHEUS).height(6).span(6)
                        .unit("d").decimals(1)
                        .with_target(_prom("(min by (service, environment) (tta_service_tls_cert_expiry_timestamp_"
                                           f"seconds{{{SEL}}}) - time()) / 86400",
                                           "{{service}} ({{environment}})", instant=True)))
            .with_panel(table.Panel().title("Domain registration: days left").datasource(PROMETHEUS).height(6).span(6)
                        .unit("d").decimals(1)
                        .with_target(_prom("(min by (service, environment, registered_domain) "
                                           f"(tta_service_domain_expiry_timestamp_seconds{{{SEL}}}) - time()) / 86400",
                                           "{{registered_domain}}: {{service}} ({{environment}})", instant=True)))
            .with_panel(table.Panel().title("Recent failed and slow checks (traces)").datasource(JAEGER).height(6)
                        .span(12)
                        .with_target(JaegerSearch().ref_id("A").service("$trace_service")
                                     .tags("tta.check.outcome=down").limit(20))
                        .with_target(JaegerSearch().ref_id("B").service("$trace_service")
                                     .tags("tta.check.slow=true").limit(20)))
            .with_row(dash.Row("Objectives (otel-health rules)"))
            .with_panel(table.Panel().title("Error budget left").datasource(PROMETHEUS).height(6).span(6)
                        .unit("percentunit").decimals(1)
                        .with_target(_prom(f"min by (service, environment) (tta_service:slo_budget_remaining{{{SEL}}})",
                                           "{{service}} ({{environment}})", instant=True)))
            .with_panel(timeseries.Panel().title("Burn rate (1h), in budgets").datasource(PROMETHEUS).height(6)
                        .span(6)
                        .with_target(_prom("max by (service, environment) (tta_service:slo_error_ratio:rate1h"
                                           f"{{{SEL}}} / on (service, environment) group_left () (1 - max by "
                                           f"(service, environment) (tta_service_slo_objective{{{SEL}}})))",
                                           "{{service}} ({{environment}})")))
            .with_row(dash.Row("The collector itself"))
            .with_panel(timeseries.Panel().title("Scheduler lag p99").unit("s").datasource(PROMETHEUS).height(7)
                        .span(6)
                        .with_target(_prom("histogram_quantile(0.99, sum by (le, instance) "
                                           "(rate(otel_health_scheduler_lag_seconds_bucket[$__rate_interval])))",
                                           "{{instance}}")))
            .with_panel(timeseries.Panel().title("Checks in flight").datasource(PROMETHEUS).height(7).span(6)
                        .with_target(_prom("sum by (instance) (otel_health_checks_in_flight)", "{{instance}}")))
            .with_panel(timeseries.Panel().title("Skipped checks").datasource(PROMETHEUS).height(7).span(6)
                        .with_target(_prom("sum by (service) (increase(otel_health_checks_skipped_total"
                                           f"{{{SEL}}}[$__rate_interval]))", "{{service}}")))
            .with_panel(timeseries.Panel().title("Export failures and reloads").datasource(PROMETHEUS).height(7)
                        .span(6)
                        .with_target(_prom("sum by (signal) (increase(otel_health_export_failures_total"
                                           "[$__rate_interval]))", "export failures: {{signal}}", ref="A"))
                        .with_target(_prom("min by (instance) (otel_health_config_last_reload_successful)",
                                           "last reload ok: {{instance}}", ref="B"))))


DASHBOARDS = {"otel-health-services.json": services_dashboard}


def render(builder: dash.Dashboard) -> str:
    board = builder.build()
    for index, panel in enumerate(board.panels or [], start=1):
        panel.id_val = index  # stable ids: links and alerts can name a panel
    return json.dumps(board, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else OUT
    out.mkdir(parents=True, exist_ok=True)
    for name, make in DASHBOARDS.items():
        (out / name).write_text(render(make()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
