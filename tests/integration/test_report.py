"""GET /api/v1/report held to Prometheus: three days of a target's checks, fed through the state
store as a collector feeds them and kept by the history store, and the same days' scrapes of
``tta_service_up`` and ``tta_service_state_up`` (as the target's state gave them at each scrape,
every 15 s) backfilled into a real Prometheus with promtool. The report a collector then gives
for the period has the uptime, downtime, incidents and MTTR Prometheus computes over it, to the
resolution of a scrape.
Everything runs on a clock the test sets."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from otel_health.config.loader import load_text
from otel_health.errors import ErrorType
from otel_health.history import Archive
from otel_health.logs import iso_time
from otel_health.probes import PROBES
from otel_health.result import CheckResult
from otel_health.state import StateStore
from tests.harness import servers
from tests.harness.clock import SetClock, at
from tests.harness.running import running

pytestmark = pytest.mark.integration

START = at("2025-03-10T00:00:00Z")  # the period: three days
END = START + 3 * 86400
STEP, SCRAPE, OFFSET = 20.0, 15.0, 7.0  # a check every 20 s; a scrape every 15 s, 7 s into each
TARGET = ("  - {name: api, kind: tcp, host: 127.0.0.1, port: 1, interval: 20s, failure_threshold: 2,\n"
          "     slo: {objective: 99.5%, window: 7d}}\n")


def _failures(rng: random.Random) -> set[int]:
    """Which checks fail: eight outages of 2 to 90 checks and twenty single failures (no
    incident: failure_threshold 2)."""
    failing: set[int] = set()
    for _ in range(8):
        first = rng.randrange(100, 12_800)
        failing.update(range(first, first + rng.randrange(2, 90)))
    for _ in range(20):
        one = rng.randrange(100, 12_800)
        if one - 1 not in failing and one + 1 not in failing:
            failing.add(one)
    return failing


async def _seed(folder: Path, samples: Path) -> int:
    """The period's checks into the history store, and the scrapes of them as OpenMetrics;
    the number of checks that failed."""
    store = StateStore()
    store.set_targets(load_text("targets:\n" + TARGET, "seed.yaml", PROBES).targets)
    state = store.snapshot()[0]
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(state.attrs.items()))
    clock = SetClock(START)
    archive = Archive(folder, clock=clock)
    await archive.load(store.snapshot())
    failing = _failures(random.Random(20250310))
    raw: list[str] = []
    debounced: list[str] = []
    counted: list[str] = []
    slo_checks = {"up": 0, "down": 0}  # tta_service_slo_checks_total by outcome, as the collector counts

    def scraped(at: float) -> None:  # the series as /metrics gives them (telemetry/families.py, instruments.py)
        assert state.result is not None and state.debounced_up is not None
        raw.append(f"tta_service_up{{{labels}}} {int(state.result.up)} {at:.3f}\n")
        debounced.append(f"tta_service_state_up{{{labels}}} {int(state.debounced_up)} {at:.3f}\n")
        counted.extend(f'tta_service_slo_checks_total{{{labels},outcome="{outcome}"}} {n} {at:.3f}\n'
                       for outcome, n in slo_checks.items())

    scrape = START + OFFSET
    for i in range(int((END - START) // STEP)):
        started = START + i * STEP + 0.5
        while scrape < started and state.result is not None:
            scraped(scrape)
            scrape += SCRAPE
        up = i not in failing
        clock.set(started + 0.01)
        store.update(state, CheckResult(up=up, duration=0.01, started_at=started,
                                        error_type=None if up else ErrorType.CONNECTION_REFUSED,
                                        detail="" if up else "refused"))
        if state.spends is not None:  # what the collector hands the meters (collector.py)
            slo_checks["down" if state.spends else "up"] += 1
        if i % 180 == 0:
            await archive.write(store.snapshot)  # once an hour (the day's ring holds 24)
    while scrape < END:
        scraped(scrape)
        scrape += SCRAPE
    clock.set(END)
    await archive.close(store.snapshot)
    samples.write_text("".join(["# TYPE tta_service_up gauge\n", *raw, "# TYPE tta_service_state_up gauge\n",
                                *debounced, "# TYPE tta_service_slo_checks counter\n", *counted, "# EOF\n"]))
    return len(failing)


def _prometheus_incidents(prometheus: servers.Prometheus) -> list[tuple[float, float | None]]:
    """The down periods in the samples Prometheus holds: (first 0, first 1 after it)."""
    matrix = prometheus.query('tta_service_up{service="api"}[3d]', at=END)
    assert len(matrix) == 1
    periods: list[tuple[float, float | None]] = []
    before = 1.0
    for ts, value in matrix[0]["values"]:
        if float(value) == 0 and before == 1:
            periods.append((float(ts), None))
        elif float(value) == 1 and before == 0:
            periods[-1] = (periods[-1][0], float(ts))
        before = float(value)
    return periods


async def test_the_report_gives_the_numbers_prometheus_computes_for_the_same_period(tmp_path: Path) -> None:
    folder, work = tmp_path / "state", tmp_path / "prometheus"
    folder.mkdir()
    (work / "data").mkdir(parents=True)
    bad = await _seed(folder, tmp_path / "up.om")
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    made = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(tmp_path / "up.om"),
                           str(work / "data")], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    prometheus = servers.start_prometheus(work, "global:\n  scrape_interval: 15s\n", retention="100y")
    try:
        prom_uptime = float(prometheus.query('avg_over_time(tta_service_up{service="api"}[3d])', at=END)[0]["value"][1])
        prom_incidents = _prometheus_incidents(prometheus)
        started = float(prometheus.query('resets(tta_service_up{service="api"}[3d])', at=END)[0]["value"][1])
        confirmed = float(prometheus.query('resets(tta_service_state_up{service="api"}[3d])', at=END)[0]["value"][1])
        # the error ratio as the generated rules compute it (otel_health/slo.py), over the period
        ratio = float(prometheus.query(
            'sum(rate(tta_service_slo_checks_total{service="api",outcome="down"}[3d])) / '
            'sum(rate(tta_service_slo_checks_total{service="api"}[3d]))', at=END)[0]["value"][1])
    finally:
        prometheus.stop()

    query = urllib.parse.urlencode({"from": iso_time(START), "to": str(END)})
    text = f"state_dir: {folder}\ntargets:\n" + TARGET
    async with running(text, clock=SetClock(END + 3600)) as r:
        status, kind, body = await r.get(f"/api/v1/report?{query}")
        assert status == 200 and kind.startswith("application/json"), body
        report = json.loads(body)["targets"][0]
        status, kind, table = await r.get(f"/api/v1/report?{query}&format=csv")
        assert status == 200 and kind.startswith("text/csv"), table
        _, _, incidents_csv = await r.get(f"/api/v1/report?{query}&format=csv&rows=incidents")
        _, _, page = await r.get("/")  # the budget over 7 days: the three in the store, and this hour's checks
    spent_on_page = re.search(r"(\d+) % of the budget spent \(99.5 % over 7d\)", page)
    assert spent_on_page is not None, page
    assert int(spent_on_page.group(1)) == pytest.approx(100 * bad / (0.005 * 12_960), abs=5)  # a few checks since

    incidents = report["incidents"]
    # every run of failed checks is an incident (Prometheus sees each: a scrape every 15 s, a check
    # every 20 s); those in which the debounced state went down are confirmed
    assert len(incidents) == report["incident_count"] == len(prom_incidents) == started >= 20
    assert report["confirmed_count"] == sum(i["confirmed"] for i in incidents) == confirmed >= 6
    resolution = SCRAPE + 0.02  # Prometheus sees a change at the first scrape after the check
    for ours, theirs in zip(incidents, prom_incidents, strict=True):
        assert theirs[1] is not None and ours["end"] is not None and ours["cause"] == "connection_refused"
        assert 0 <= theirs[0] - at(ours["start"]) <= resolution
        assert 0 <= theirs[1] - at(ours["end"]) <= resolution
    tolerance = 2 * len(incidents) * resolution
    assert report["uptime"] == pytest.approx(prom_uptime, abs=tolerance / (END - START))
    assert report["downtime_minutes"] == pytest.approx((1 - prom_uptime) * (END - START) / 60, abs=tolerance / 60)
    prom_mttr = sum(end - start for start, end in prom_incidents if end is not None) / len(prom_incidents)
    assert report["mttr_minutes"] == pytest.approx(prom_mttr / 60, abs=resolution / 60)
    assert report["observed_minutes"] == 3 * 1440
    assert report["slo"] == {"objective": 0.995, "checks": 12_960, "bad": bad,
                             "budget_spent": pytest.approx(bad / (0.005 * 12_960), abs=1e-6)}
    # Prometheus's ratio is over its scrapes: the checks before the first and after the last are
    # not in it (a few of 12,960)
    assert report["slo"]["budget_spent"] == pytest.approx(ratio / 0.005, rel=2e-3)
    rows = list(csv.DictReader(io.StringIO(table)))
    assert len(rows) == 1 and float(rows[0]["uptime"]) == report["uptime"]
    assert int(rows[0]["incidents"]) == len(incidents) and rows[0]["to"] == iso_time(END)
    assert len(list(csv.DictReader(io.StringIO(incidents_csv)))) == len(incidents)


async def test_a_report_asked_wrongly_says_what_to_ask(tmp_path: Path, http_targets: servers.HttpTargets) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    text = (f"state_dir: {folder}\ntargets:\n  - {{name: api, kind: http, url: '{http_targets.url('/ok')}', "
            "interval: 1s, timeout: 1s}\n")
    async with running(text, clock=SetClock("2031-01-01T00:00:00Z")) as r:
        for query, said in (("from=yesterday", "'from' must be an ISO 8601 time"),
                            ("from=2031-01-02&to=2031-01-01", "'from' must be before 'to'"),
                            ("format=xml", "'format' is json or csv"),
                            ("since=2030-12-01", "unknown parameter 'since'"),
                            ("to=nan", "'to' is not a time")):
            status, _, body = await r.get(f"/api/v1/report?{query}")
            assert status == 400 and said in json.loads(body)["errors"][0], (query, body)
        status, _, body = await r.get("/api/v1/report?service=nope")
        assert status == 404 and "no target of that name" in body
        await r.wait_for(lambda: r.checks("api") >= 1, timeout=10, what="a check")
        status, _, body = await r.get("/api/v1/report?from=2030-12-31")  # a day: today's first check on
        assert status == 200 and json.loads(body)["targets"][0]["uptime"] == 1.0
    async with running(text.replace(f"state_dir: {folder}\n", "")) as r:
        status, _, body = await r.get("/api/v1/report")
        assert status == 404 and "set 'state_dir'" in body
