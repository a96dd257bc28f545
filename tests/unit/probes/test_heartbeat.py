"""The heartbeat kind's inbox (a push kind's interface, ``probes/_inbox.py``): which targets
take reports, the token compared, the report kept without the token in it; and the inboxes
of every push kind as the one object the server and the collector use. (The route and the
verdicts are proven against a running collector in tests/integration/test_heartbeat.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_health.config import Target
from otel_health.config.loader import load_text
from otel_health.probes import PROBES, Inboxes, ProbeSettings
from otel_health.probes.heartbeat import HeartbeatProbe
from tests.harness import targets
from tests.harness.clock import WEDNESDAY_NOON, SetClock

TOKEN = "hb-token-7f3a9c"


@pytest.fixture
def config_targets(monkeypatch: pytest.MonkeyPatch) -> dict[str, Target]:
    monkeypatch.setenv("HB_TOKEN", TOKEN)
    text = targets.config(targets.heartbeat("backup", {"period": "1h", "token": "${HB_TOKEN}"}),
                          targets.tcp("db", port=5432))
    return {t.name: t for t in load_text(text, "t.yaml", PROBES).targets}


def test_a_heartbeat_target_takes_a_report_with_its_own_token_only(config_targets: dict[str, Target],
                                                                   tmp_path: Path) -> None:
    clock = SetClock(WEDNESDAY_NOON)
    probe = HeartbeatProbe(ProbeSettings(state_dir=tmp_path, clock=clock))
    inbox = probe.inbox
    assert inbox is not None
    backup, db = config_targets["backup"], config_targets["db"]
    assert inbox.takes(backup) and not inbox.takes(db)
    assert inbox.knows(backup, TOKEN) and not inbox.knows(backup, TOKEN + "x") and not inbox.knows(db, TOKEN)
    assert not inbox.accept(backup, "wrong", ok=True, duration=1.0, message="done")
    assert probe.reports.last(backup.key) is None
    assert inbox.accept(backup, TOKEN, ok=False, duration=12.5, message=f"failed, token was {TOKEN}")
    report = probe.reports.last(backup.key)
    assert report is not None and not report.ok and report.duration == 12.5
    assert abs(report.at - clock()) < 60  # dated by the clock it was given (set, running at the real pace)
    assert TOKEN not in report.message and report.message.startswith("failed, token was ")
    write = inbox.pending()
    assert write is not None and write() and inbox.pending() is None  # written once, then nothing new
    assert TOKEN not in (tmp_path / "heartbeats.json").read_text()


def test_the_inboxes_answer_for_the_kind_that_takes_a_target(config_targets: dict[str, Target],
                                                             tmp_path: Path) -> None:
    probes = {kind: cls(ProbeSettings(state_dir=tmp_path)) for kind, cls in PROBES.items()}
    pushing = [p.inbox for p in probes.values() if p.inbox is not None]
    assert [type(p).kind for p in probes.values() if p.inbox is not None] == ["heartbeat"]
    inboxes = Inboxes(pushing)
    backup, db = config_targets["backup"], config_targets["db"]
    assert inboxes.takes(backup) and not inboxes.takes(db)
    assert not inboxes.knows(db, TOKEN) and not inboxes.accept(db, TOKEN, ok=True, duration=None, message="")
    assert inboxes.accept(backup, TOKEN, ok=True, duration=None, message="")
    heartbeat = probes["heartbeat"]
    assert isinstance(heartbeat, HeartbeatProbe) and heartbeat.reports.last(backup.key) is not None
    inboxes.retain([db.key])  # the heartbeat target is no longer configured
    assert heartbeat.reports.last(backup.key) is None
    assert Inboxes([]).pending() is None and not Inboxes([]).takes(backup)
