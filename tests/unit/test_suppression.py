"""Maintenance windows, dependencies and the Alertmanager part written from them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from otel_health.alertmanager import INTERVAL_PREFIX, SUPPRESSIBLE_ALERTS, generate, merge
from otel_health.config.loader import load_text
from otel_health.probes import PROBES
from otel_health.state import StateStore
from otel_health.suppression import (
    DAY,
    JOURNAL_FILE,
    STATE_FILE,
    WEEKDAYS,
    Book,
    NotKept,
    OneOff,
    Recurring,
    Window,
    clock_minutes,
    weekday_set,
)
from otel_health.telemetry.families import STATE_FAMILIES
from tests.harness import targets


def _days(*names: str) -> frozenset[int]:
    days, problem = weekday_set(names)
    assert problem is None and days is not None
    return days


def _am_active(entries: list[dict[str, object]], now: float) -> bool:
    """Alertmanager's reading of ``time_intervals`` entries, from its documentation: an entry
    matches when every field it has matches (times: [start, end) in minutes of the day; weekdays:
    names or inclusive ranges, Sunday first; location: where the day and time are read);
    the interval is active when any entry matches."""
    for entry in entries:
        local = dt.datetime.fromtimestamp(now, ZoneInfo(str(entry.get("location", "UTC"))))
        minute = local.hour * 60 + local.minute
        name = local.strftime("%A").lower()
        times = entry.get("times")
        if times is not None:
            assert isinstance(times, list)
            if not any(int(t["start_time"][:2]) * 60 + int(t["start_time"][3:]) <= minute
                       < int(t["end_time"][:2]) * 60 + int(t["end_time"][3:]) for t in times):
                continue
        weekdays = entry.get("weekdays")
        if weekdays is not None:
            assert isinstance(weekdays, list)
            spans = [w.split(":") for w in weekdays]
            assert all(WEEKDAYS.index(s[0]) <= WEEKDAYS.index(s[-1]) for s in spans), weekdays
            if not any(WEEKDAYS.index(s[0]) <= WEEKDAYS.index(name) <= WEEKDAYS.index(s[-1]) for s in spans):
                continue
        return True
    return False


SCHEDULES = [
    Recurring(((23 * 60, 90),), _days("thursday", "friday", "saturday"), "Europe/Berlin"),  # past midnight, into Sunday
    Recurring(((22 * 60, 6 * 60), (12 * 60, 13 * 60)), _days("saturday", "sunday"), "America/New_York"),
    Recurring(((0, DAY),), _days("sunday"), "UTC"),
    Recurring(((23 * 60 + 30, DAY),), None, "Asia/Kolkata"),
    Recurring(((20 * 60, 20 * 60 + 15),), None, "UTC"),
    Recurring(((18 * 60, 0),), _days("monday", "wednesday", "friday"), "Australia/Lord_Howe"),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: f"{s.location}-{s.ranges}")
def test_a_recurring_window_is_open_exactly_when_alertmanager_would_mute(schedule: Recurring) -> None:
    """Every five minutes over three weeks across a change of daylight saving time: our reading of
    a window and Alertmanager's reading of the intervals written from it agree."""
    entries = schedule.time_intervals()
    for entry in entries:  # Alertmanager refuses a range that ends before it starts
        for t in entry.get("times", []):
            assert t["start_time"] < t["end_time"]
    # Europe's clocks move on 29 March, Lord Howe's on 5 April
    start = dt.datetime(2026, 3, 20, tzinfo=dt.UTC).timestamp()
    opened = 0
    for step in range(0, 21 * 24 * 12):
        now = start + step * 300
        ours = schedule.active(now)
        assert ours == _am_active(entries, now), dt.datetime.fromtimestamp(now, dt.UTC)
        opened += ours
    assert opened  # the window did open


def test_a_range_past_midnight_continues_on_the_next_weekday_even_across_the_week_end() -> None:
    schedule = SCHEDULES[0]
    first, second = schedule.time_intervals()
    assert first == {"times": [{"start_time": "23:00", "end_time": "24:00"}], "weekdays": ["thursday:saturday"],
                     "location": "Europe/Berlin"}
    assert second == {"times": [{"start_time": "00:00", "end_time": "01:30"}],
                      "weekdays": ["sunday", "friday:saturday"], "location": "Europe/Berlin"}


def test_clock_times_as_written_and_as_yaml_reads_them() -> None:
    assert clock_minutes("07:05") == 425 and clock_minutes("7:05") == 425
    assert clock_minutes("24:00") == DAY and clock_minutes("24:01") is None and clock_minutes("12:60") is None
    assert clock_minutes(yaml.safe_load("t: 22:00")["t"]) == 22 * 60  # YAML 1.1 reads it in base 60
    assert clock_minutes(True) is None and clock_minutes("noon") is None


def test_a_one_off_window_is_open_from_its_start_until_its_end() -> None:
    window = OneOff(100.0, 200.0)
    assert [window.active(t) for t in (99.9, 100.0, 199.9, 200.0)] == [False, True, True, False]


def _config(text: str):  # type: ignore[no-untyped-def]
    return load_text(text, "test.yaml", PROBES)


def _tcp(name: str, extra: str = "") -> str:
    return targets.tcp(name, extra=extra)


def test_a_dependency_suppresses_its_dependents_by_its_debounced_state(make_result) -> None:
    config = _config("environment: prod\ntargets:\n" + _tcp("db", "    failure_threshold: 2\n")
                     + _tcp("api", "    depends_on: [db, cache]\n") + _tcp("cache") + _tcp("web"))
    store = StateStore()
    store.set_targets(config.targets)
    db, api, web = (store.get((n, "prod")) for n in ("db", "api", "web"))
    assert db and api and web
    store.update(db, make_result(up=True))
    store.update(db, make_result(up=False))
    assert api.suppressed is None  # one failure: the dependency is not down yet by its debounce
    store.update(db, make_result(up=False))
    assert api.suppressed is not None and api.suppressed.dependency == ("db",) and api.suppressed.maintenance == ()
    assert web.suppressed is None and db.suppressed is None
    assert api.suppressed.sources() == ["dependency:db"]
    store.update(db, make_result(up=True))
    assert api.suppressed is None
    # a reload keeps the dependency's state, and with it the dependent's suppression
    store.update(db, make_result(up=False))
    store.update(db, make_result(up=False))
    store.set_targets(config.targets)
    assert store.get(("api", "prod")).suppressed is not None  # type: ignore[union-attr]


def test_windows_open_and_end_with_time_and_cover_only_their_targets(make_result) -> None:
    config = _config("environment: prod\ntargets:\n" + _tcp("db") + _tcp("api"))
    store = StateStore()
    store.set_targets(config.targets)
    everywhere = Window("all", OneOff(1000.0, 2000.0), None)
    db_only = Window("db-deploy", OneOff(500.0, 1500.0), frozenset({("db", "prod")}), "deploy 42", "api")
    store.set_windows([everywhere, db_only], now=0.0)
    db, api = store.get(("db", "prod")), store.get(("api", "prod"))
    assert db and api and db.suppressed is None and api.suppressed is None
    assert store.tick(600.0) == (frozenset({"db-deploy"}), frozenset())
    assert db.suppressed and db.suppressed.maintenance == ("db-deploy",) and api.suppressed is None
    store.tick(1200.0)
    assert db.suppressed.maintenance == ("all", "db-deploy") and api.suppressed.maintenance == ("all",)  # type: ignore[union-attr]
    assert store.tick(1600.0) == (frozenset(), frozenset({"db-deploy"}))
    assert db.suppressed.maintenance == ("all",)  # type: ignore[union-attr]
    store.tick(2000.0)
    assert db.suppressed is None and api.suppressed is None
    assert store.tick(2001.0) == (frozenset(), frozenset())


def test_the_suppressed_series_is_always_there_with_one_reason_per_line(make_result) -> None:
    config = _config("environment: prod\ntargets:\n" + _tcp("db") + _tcp("api", "    depends_on: [db]\n"))
    store = StateStore()
    store.set_targets(config.targets)
    family = next(f for f in STATE_FAMILIES if f.name == "tta_service_suppressed")
    info = next(f for f in STATE_FAMILIES if f.name == "tta_service_dependency_info")
    db, api = store.get(("db", "prod")), store.get(("api", "prod"))
    assert db and api
    assert list(family.points(db, None)) == [((("reason", "maintenance"),), 0)]
    assert list(family.points(api, None)) == [((("reason", "maintenance"),), 0), ((("reason", "dependency"),), 0)]
    store.update(db, make_result(up=False))
    assert list(family.points(api, None))[1] == ((("reason", "dependency"),), 1)
    assert list(info.points(api, None)) == [((("depends_on", "db"),), 1)] and list(info.points(db, None)) == []


async def test_the_book_keeps_windows_across_a_restart_in_state_dir(tmp_path: Path) -> None:
    now = [1000.0]
    book = Book(tmp_path / "state", clock=lambda: now[0])
    kept = await book.open([("db", "prod")], 1000.0, 5000.0, "deploy 42")
    gone = await book.open([("api", "prod")], 1000.0, 2000.0, "")
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [JOURNAL_FILE]  # one line a change
    again = Book(tmp_path / "state", clock=lambda: now[0])
    assert {w.name for w in again.windows()} == {kept.name, gone.name}
    assert again.get(kept.name) == kept
    now[0] = 3000.0
    assert [w.name for w in again.expire(now[0])] == [gone.name]
    assert [w.name for w in Book(tmp_path / "state", clock=lambda: now[0]).windows()] == [kept.name]
    assert await again.end(kept.name) and not await again.end(kept.name)
    assert Book(tmp_path / "state", clock=lambda: now[0]).windows() == []


async def test_the_journal_is_written_whole_now_and_then_and_a_torn_last_line_is_passed_over(tmp_path: Path) -> None:
    book = Book(tmp_path, clock=lambda: 1000.0)
    opened = [await book.open([("db", "prod")], 1000.0, 5000.0, f"w{i}") for i in range(70)]
    for window in opened[:40]:
        assert await book.end(window.name)
    # the snapshot took over once the journal was longer than the windows (and 64 lines)
    assert (tmp_path / STATE_FILE).exists()
    assert len((tmp_path / JOURNAL_FILE).read_text().splitlines()) < 64
    with (tmp_path / JOURNAL_FILE).open("a") as journal:
        journal.write('{"open": {"id": "torn", "targ')  # a crash while a line was written
    again = Book(tmp_path, clock=lambda: 1000.0)
    assert {w.name for w in again.windows()} == {w.name for w in opened[40:]}
    assert not (tmp_path / f"{JOURNAL_FILE}.unreadable").exists()


async def test_a_change_that_cannot_be_saved_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    book = Book(tmp_path, clock=lambda: 1000.0)
    kept = await book.open([("db", "prod")], 1000.0, 5000.0, "")
    (tmp_path / JOURNAL_FILE).unlink()
    (tmp_path / JOURNAL_FILE).symlink_to("/dev/full")  # every write: no space left on the device
    with pytest.raises(NotKept, match="could not be saved") as refused:
        await book.open([("api", "prod")], 1000.0, 5000.0, "")
    assert not refused.value.full
    with pytest.raises(NotKept):
        await book.end(kept.name)
    assert [w.name for w in book.windows()] == [kept.name]


async def test_the_book_has_room_for_so_many_windows_and_targets(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from otel_health import suppression

    monkeypatch.setattr(suppression, "MAX_API_WINDOWS", 3)
    monkeypatch.setattr(suppression, "MAX_API_WINDOW_TARGETS", 5)
    book = Book(None, clock=lambda: 0.0)
    for _ in range(2):
        await book.open([("a", "p"), ("b", "p")], 0.0, 10.0, "")
    with pytest.raises(NotKept, match="more than 5 targets") as full:
        await book.open([("a", "p"), ("b", "p")], 0.0, 10.0, "")
    assert full.value.full
    await book.open([("a", "p")], 0.0, 10.0, "")
    with pytest.raises(NotKept, match="3 windows are open"):
        await book.open([("c", "p")], 0.0, 10.0, "")
    assert len(book.expire(10.0)) == 3 and book.room(5) is None


@pytest.mark.parametrize("content", [b"{not json", b'{"format": 99, "windows": []}', b'{"format": 1, "windows": [{}]}',
                                     b"\xff\xfe", b'{"format": 1, "windows": [{"id": "x", "targets": [], "start": 0, '
                                     b'"end": 1e300, "comment": "", "created": 0}]}'])
async def test_a_state_file_that_cannot_be_read_is_reported_and_set_aside(tmp_path: Path, content: bytes,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / STATE_FILE).write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="otel_health"):
        book = Book(tmp_path)
    assert book.windows() == []
    assert "maintenance_state_unreadable" in caplog.text
    assert (tmp_path / f"{STATE_FILE}.unreadable").read_bytes() == content
    await book.open([("db", "prod")], 0.0, 2e9, "")  # and the book works on
    assert "open" in json.loads((tmp_path / JOURNAL_FILE).read_text())


def test_a_state_file_that_is_a_fifo_or_a_device_is_refused_at_once_and_crash_leftovers_go(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / STATE_FILE)
    (tmp_path / f".{STATE_FILE}.abc123.tmp").write_text("half")
    (tmp_path / JOURNAL_FILE).symlink_to("/dev/zero")
    book = Book(tmp_path)  # neither blocks on the FIFO nor reads /dev/zero forever
    assert book.windows() == []
    assert not (tmp_path / f".{STATE_FILE}.abc123.tmp").exists()


AM_CONFIG = """
environment: prod
maintenance:
  - name: nightly
    times: [{start_time: "23:00", end_time: "01:30"}]
    weekdays: [thursday:saturday]
    location: Europe/Berlin
  - name: release
    start: 2026-12-24T22:00:00Z
    end: 2026-12-24T23:00:00Z
  - name: core-sundays
    match: {team: core}
    weekdays: [sunday]
targets:
  - {name: api, kind: tcp, host: 127.0.0.1, port: 1, depends_on: [db, cache], labels: {team: core}}
  - {name: web.v2, kind: tcp, host: 127.0.0.1, port: 1, depends_on: [db]}
  - {name: db, kind: tcp, host: 127.0.0.1, port: 1}
  - {name: cache, kind: tcp, host: 127.0.0.1, port: 1}
  - {name: api, environment: staging, kind: tcp, host: 127.0.0.1, port: 1}
  - {name: db, environment: staging, kind: tcp, host: 127.0.0.1, port: 1}
"""


def test_inhibit_rules_name_each_dependency_and_exactly_its_dependents() -> None:
    doc = generate(_config(AM_CONFIG))
    rules = {tuple(r["source_matchers"][1:]): r for r in doc["inhibit_rules"]}
    assert set(rules) == {('service="cache"', 'environment="prod"'), ('service="db"', 'environment="prod"')}
    db = rules[('service="db"', 'environment="prod"')]
    assert db["target_matchers"][1:] == ['service=~"api|web[.]v2"', 'environment="prod"']
    assert db["equal"] == ["environment"]
    assert db["target_matchers"][0] == f'alertname=~"{"|".join(SUPPRESSIBLE_ALERTS)}"'
    # staging's api depends on nothing: no rule names staging


def test_recurring_windows_become_time_intervals_and_one_route_per_set_of_windows() -> None:
    doc = generate(_config(AM_CONFIG), receiver="pager")
    assert doc["route"]["receiver"] == "pager" and doc["receivers"] == [{"name": "pager"}]
    names = [i["name"] for i in doc["time_intervals"]]
    assert names == [INTERVAL_PREFIX + "nightly", INTERVAL_PREFIX + "core-sundays"]  # the one-off is not there
    routes = {tuple(r["matchers"][1:]): r["mute_time_intervals"] for r in doc["route"]["routes"]}
    assert routes[('service=~"api"', 'environment="prod"')] == [INTERVAL_PREFIX + "nightly",
                                                                 INTERVAL_PREFIX + "core-sundays"]
    assert routes[('service=~"cache|db|web[.]v2"', 'environment="prod"')] == [INTERVAL_PREFIX + "nightly"]
    assert routes[('service=~"api|db"', 'environment="staging"')] == [INTERVAL_PREFIX + "nightly"]
    assert all("receiver" not in r for r in doc["route"]["routes"])  # they inherit where they are put


def test_merging_keeps_the_base_and_replaces_what_an_earlier_run_put_in() -> None:
    config = _config(AM_CONFIG)
    base = {"route": {"receiver": "team", "routes": [{"matchers": ['team="db"'], "receiver": "dba"}]},
            "receivers": [{"name": "team"}, {"name": "dba"}],
            "inhibit_rules": [{"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
                               "equal": ["service"]}],
            "time_intervals": [{"name": "holidays", "time_intervals": [{"months": ["december"]}]}]}
    once = merge(base, config)
    assert merge(once, config) == once
    assert once["route"]["routes"][-1] == {"matchers": ['team="db"'], "receiver": "dba"}
    assert once["inhibit_rules"][0] == base["inhibit_rules"][0] and len(once["inhibit_rules"]) == 3
    assert once["time_intervals"][0]["name"] == "holidays"
    fewer = merge(once, dataclasses.replace(config, maintenance=(), targets=config.targets[2:4]))
    assert fewer["route"]["routes"] == base["route"]["routes"]
    assert fewer["inhibit_rules"] == base["inhibit_rules"] and fewer["time_intervals"] == base["time_intervals"]


def test_the_alertmanager_command_writes_merges_and_refuses_what_it_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from otel_health.cli import main

    monkeypatch.setenv("AM_TEST_PASSWORD", "am-secret-5521")
    config = tmp_path / "otel-health.yaml"
    config.write_text(AM_CONFIG + "  - {name: redis, kind: redis, host: 127.0.0.1, password: '${AM_TEST_PASSWORD}', "
                                  "depends_on: [db]}\n")
    assert main(["alertmanager", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "am-secret-5521" not in out and out.startswith("# Alertmanager configuration")
    doc = yaml.safe_load(out)
    assert doc["route"]["receiver"] == "default" and len(doc["inhibit_rules"]) == 2
    base = tmp_path / "alertmanager.yml"
    base.write_text("route: {receiver: ops}\nreceivers: [{name: ops}]\n")
    merged = tmp_path / "merged.yml"
    assert main(["alertmanager", "-c", str(config), "--base", str(base), "-o", str(merged)]) == 0
    assert yaml.safe_load(merged.read_text())["route"]["receiver"] == "ops"
    base.write_text("receivers: []\n")
    assert main(["alertmanager", "-c", str(config), "--base", str(base)]) == 2
    assert "not an Alertmanager configuration (no 'route:' mapping)" in capsys.readouterr().err
    assert main(["alertmanager", "-c", str(config), "--base", str(tmp_path / "missing.yml")]) == 2
    assert "cannot read it" in capsys.readouterr().err
    config.write_text("targets:\n  - {name: a, kind: tcp, host: 127.0.0.1, port: 1, depends_on: [b]}\n")
    assert main(["alertmanager", "-c", str(config)]) == 2
    assert "unknown target 'b'" in capsys.readouterr().err
