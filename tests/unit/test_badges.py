"""What a badge says and how it is drawn (otel_health/badges.py): pure logic on a state store
the test fills; the served badges, in Chromium too, are in tests/integration/test_badges.py."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from otel_health import badges
from otel_health.config.loader import load_text
from otel_health.errors import ErrorType
from otel_health.probes import PROBES
from otel_health.result import CheckResult
from otel_health.state import StateStore
from tests.harness.clock import at

NOW = at("2031-05-01T12:00:00Z")


def _states(*ups: bool | None) -> StateStore:
    text = "targets:\n" + "".join(f"  - {{name: t{i}, kind: tcp, host: 127.0.0.1, port: 1}}\n" for i in range(len(ups)))
    store = StateStore()
    store.set_targets(load_text(text, "t.yaml", PROBES).targets)
    for state, up in zip(store.snapshot(), ups, strict=True):
        if up is not None:
            store.update(state, CheckResult(up=up, duration=0.0123, started_at=NOW - 30,
                                            error_type=None if up else ErrorType.TIMEOUT, detail="secret detail"))
    return store


def test_a_targets_state_and_time_and_a_groups_counts() -> None:
    up, down, never = _states(True, False, None).snapshot()
    assert badges.target_badge(up, "state", NOW) == badges.Badge("t0", "up", "brightgreen")
    assert badges.target_badge(down, "state", NOW) == badges.Badge("t1", "down", "red")
    assert badges.target_badge(never, "state", NOW) == badges.Badge("t2", "not checked yet", "lightgrey")
    assert badges.target_badge(up, "response-time", NOW) == badges.Badge("response time", "12 ms", "brightgreen")
    assert badges.target_badge(down, "uptime-24h", NOW) == badges.Badge("uptime 24h", "0.00%", "red")
    group = [up, down, never]
    assert badges.group_badge(group, "shop", "state", NOW) == badges.Badge("shop", "1 of 3 down", "orange")
    assert badges.group_badge([up, never], "shop", "state", NOW) == badges.Badge("shop", "1 of 2 up", "brightgreen")
    assert badges.group_badge([down], "shop", "state", NOW).color == "red"
    assert badges.group_badge(group, "shop", "uptime-30d", NOW).message == "50.00%"  # the mean of the checked


def test_uptime_colours_step_down_as_shields_io_s_do() -> None:
    said = [badges._uptime_badge("30d", share).color for share in (1.0, 0.9991, 0.995, 0.96, 0.92, 0.5, None)]
    assert said == ["brightgreen", "brightgreen", "green", "yellow", "orange", "red", "lightgrey"]


def test_the_svg_is_xml_with_every_name_as_text() -> None:
    drawn = badges.svg(badges.Badge('R&D <b>"x"</b>', "1 of 2 down", "orange"))
    root = ET.fromstring(drawn)
    assert root.findtext("{http://www.w3.org/2000/svg}title") == 'R&D <b>"x"</b>: 1 of 2 down'
    assert "<b>" not in drawn and "secret" not in drawn
    assert float(root.get("width") or 0) > 100  # both parts measured
    assert badges.endpoint(badges.Badge("a", "up", "brightgreen")) == {
        "schemaVersion": 1, "label": "a", "message": "up", "color": "brightgreen"}
