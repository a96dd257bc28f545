"""What jobs report: kept one per target, written to state_dir only when changed, read back."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from otel_health.probes._reports import STATE_FILE, Report, Reports


def test_reports_are_kept_one_per_target_and_written_only_when_they_changed(tmp_path: Path) -> None:
    reports = Reports(tmp_path)
    for i in range(1000):
        reports.add(("backup", "prod"), Report(float(i), i % 2 == 0, 1.5, f"run {i}"))
    assert len(reports) == 1
    reports.save()
    written = (tmp_path / STATE_FILE).stat().st_mtime_ns
    reports.save()  # nothing changed: not written again
    assert (tmp_path / STATE_FILE).stat().st_mtime_ns == written
    again = Reports(tmp_path)
    assert again.last(("backup", "prod")) == Report(999.0, False, 1.5, "run 999")
    again.retain([("other", "prod")])
    assert again.last(("backup", "prod")) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE]  # no temporary file left


@pytest.mark.parametrize("content", [b"{", b'{"format": 2, "reports": []}', b'{"format": 1, "reports": [{}]}'])
def test_a_reports_file_that_cannot_be_read_is_reported_and_set_aside(tmp_path: Path, content: bytes,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / STATE_FILE).write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="otel_health"):
        reports = Reports(tmp_path)
    assert len(reports) == 0 and "heartbeats_state_unreadable" in caplog.text
    assert (tmp_path / f"{STATE_FILE}.unreadable").read_bytes() == content
