"""The wall clock is read in one place and set by the tests: no verdict, and no test, depends on
the day it runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from otel_health.config.loader import load_text
from otel_health.probes import PROBES
from otel_health.state import StateStore
from tests.harness.clock import INSTANTS, Instant, SetClock, at, reads_the_date
from tests.harness.running import running_config

ROOT = Path(__file__).resolve().parents[2]

# Calls that read the date or the time of day from the machine.
WALL_READS = {("time", "time"), ("time", "localtime"), ("time", "gmtime"), ("time", "ctime"), ("time", "asctime"),
              ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
              ("dt.datetime", "now"), ("dt.datetime", "utcnow"), ("dt.datetime", "today"), ("dt.date", "today")}

# Where tests read the real clock, and why that cannot make them pass on one day and fail on another.
TESTS_ALLOWED = {
    # Alertmanager mutes by the real clock: the window is written around the real now, for any instant.
    "tests/integration/test_alerting.py",
    # Jaeger's and Prometheus' timestamps are the real clock's: a query's range around the real now.
    "tests/integration/test_pipeline.py",
    # only distinct keys for the test server's sequence, never a verdict
    "tests/integration/test_operator_surface.py",
    # span start times for the SDK's encoder, which stamps the real clock itself
    "tests/unit/telemetry/test_wire.py",
    # Prometheus evaluates the rules at the real now: a signed zone's signatures are made around it
    "tests/integration/test_monitoring_queries.py",
}


def _wall_reads(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = ast.unparse(node.func.value)
            if (owner, node.func.attr) in WALL_READS and not (node.func.attr in ("localtime", "gmtime") and node.args):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_package_reads_the_date_and_time_only_through_the_clock_it_is_given() -> None:
    reads = [line for path in sorted((ROOT / "otel_health").rglob("*.py")) for line in _wall_reads(path)]
    assert reads == [], "read the wall clock through the Clock passed in (otel_health/clock.py):\n" + "\n".join(reads)


def test_tests_read_the_real_clock_only_where_a_real_server_reads_it_too() -> None:
    reads = [line for path in sorted((ROOT / "tests").rglob("*.py")) if str(path.relative_to(ROOT)) not in
             TESTS_ALLOWED for line in _wall_reads(path)]
    assert reads == [], ("a test sets the clock it runs at (tests/harness/clock.py: SetClock, INSTANTS):\n"
                         + "\n".join(reads))


def test_the_guard_finds_each_kind_of_wall_clock_read(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import time, datetime as dt\nfrom datetime import datetime\n"
                      "a = time.time()\nb = dt.datetime.now(dt.UTC)\nc = datetime.today()\n"
                      "d = time.localtime()\ne = time.localtime(0)\nf = time.monotonic()\n")
    assert [line.split(": ", 1)[1] for line in _wall_reads(sample, tmp_path)] == [
        "time.time()", "dt.datetime.now(dt.UTC)", "datetime.today()", "time.localtime()"]


def test_a_set_clock_starts_where_it_is_set_and_runs_at_the_real_pace() -> None:
    clock = SetClock("2026-12-06T23:59:59Z")
    assert at("2026-12-06T23:59:59Z") <= clock() < at("2026-12-06T23:59:59Z") + 5
    clock.set("2026-03-29T01:59:59+01:00")
    assert at("2026-03-29T00:59:59Z") <= clock() < at("2026-03-29T00:59:59Z") + 5
    clock.advance(-3600)
    assert at("2026-03-28T23:59:59Z") <= clock() < at("2026-03-28T23:59:59Z") + 5
    with pytest.raises(AssertionError, match="give the offset"):
        at("2026-12-06T12:00:00")


def test_the_instants_cover_every_weekday_both_sides_of_midnight_and_both_daylight_saving_changes() -> None:
    weekdays = {i.local("UTC").strftime("%A") for i in INSTANTS}
    assert len(weekdays) == 7
    berlin = [i.local("Europe/Berlin") for i in INSTANTS]
    assert {t.utcoffset().total_seconds() for t in berlin if t.utcoffset() is not None} == {3600, 7200}
    assert any(t.hour == 23 and t.minute == 59 for t in berlin) and any(t.hour == 0 and t.minute == 0 for t in berlin)
    names = [i.name for i in INSTANTS]
    assert len(set(names)) == len(names)


CONFIG = (
    "listen: 127.0.0.1:0\n"
    "maintenance:\n"
    "  - {name: sundays, weekdays: [sunday], location: Europe/Berlin}\n"
    "  - {name: nightly, times: [{start_time: '23:30', end_time: '00:30'}], location: Europe/Berlin}\n"
    "  - {name: weekend, weekdays: [saturday, sunday]}\n"
    "targets:\n"
    "  - {name: a, kind: tcp, host: 127.0.0.1, port: 1}\n"
)


def _expected(instant: Instant) -> set[str]:
    """The windows open at ``instant``, read with the standard library's time zones."""
    berlin, utc = instant.local("Europe/Berlin"), instant.local("UTC")
    minute = berlin.hour * 60 + berlin.minute
    return ({"sundays"} if berlin.strftime("%A") == "Sunday" else set()) | \
        ({"nightly"} if minute >= 23 * 60 + 30 or minute < 30 else set()) | \
        ({"weekend"} if utc.strftime("%A") in ("Saturday", "Sunday") else set())


@pytest.mark.parametrize("instant", INSTANTS, ids=lambda i: i.name)
def test_recurring_windows_suppress_at_each_instant_as_the_calendar_says(instant: Instant) -> None:
    config = load_text(CONFIG, "c.yaml", PROBES)
    assert reads_the_date(config)
    store = StateStore()
    store.set_targets(config.targets)
    store.set_windows(list(config.maintenance), instant.time)
    state = store.get(("a", "default"))
    assert state is not None
    assert set(state.suppressed.maintenance if state.suppressed else ()) == _expected(instant)


def test_a_config_with_a_window_open_all_week_or_none_does_not_read_the_date() -> None:
    always = load_text("maintenance:\n  - {name: all, weekdays: ['sunday:saturday']}\n"
                       "targets:\n  - {name: a, kind: tcp, host: 127.0.0.1, port: 1}\n", "c.yaml", PROBES)
    assert not reads_the_date(always)
    assert not reads_the_date(load_text("targets:\n  - {name: a, kind: tcp, host: 127.0.0.1, port: 1}\n",
                                        "c.yaml", PROBES))


async def test_a_collector_whose_config_reads_the_date_must_be_given_a_clock() -> None:
    config = load_text(CONFIG, "c.yaml", PROBES)
    with pytest.raises(AssertionError, match="clock the test sets"):
        async with running_config(config):
            pass
    async with running_config(config, clock=SetClock("2026-12-06T12:00:00+01:00")) as r:
        state = r.collector.store.get(("a", "default"))
        assert state is not None and state.suppressed is not None
        assert set(state.suppressed.maintenance) == {"sundays", "weekend"}
