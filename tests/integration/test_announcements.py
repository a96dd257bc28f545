"""Announcements on the status page: written in the config and made through the API (guarded as
maintenance windows are), Markdown rendered safely, kept in state_dir's store across a restart,
ended into the archive; a store that cannot keep one refuses it."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.harness import servers, targets
from tests.harness.clock import SetClock, at
from tests.harness.running import running

pytestmark = pytest.mark.integration

NOW = at("2031-06-01T09:00:00Z")


async def _call(r: object, method: str, path: str, body: object = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.request(
            method, r.url + path, json=body, headers=headers or {}) as response:  # type: ignore[attr-defined]
        return response.status, await response.json(content_type=None)


async def test_announcements_from_the_config_and_the_api_survive_a_restart(
        tmp_path: Path, http_targets: servers.HttpTargets) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    text = (f"state_dir: {folder}\n"
            "announcements:\n  - {name: planned, severity: maintenance, message: 'DB upgrade *tonight*', "
            "start: '2031-06-01T20:00:00Z', end: '2031-06-01T22:00:00Z'}\n"
            "targets:\n" + targets.http("api", http_targets.url("/ok")))
    async with running(text, clock=SetClock(NOW)) as r:
        made, answer = await _call(r, "POST", "/api/v1/announcements", {
            "message": "Payments **degraded** <img src=x onerror=alert(1)>", "severity": "outage"})
        assert made == 201, answer
        ident = answer["announcement"]["id"]
        assert answer["announcement"]["start"].startswith("2031-06-01T09:00:") and answer["announcement"]["end"] is None
        _, _, page = await r.get("/")
        refused = {
            "bad severity": await _call(r, "POST", "/api/v1/announcements", {"message": "x", "severity": "panic"}),
            "no message": await _call(r, "POST", "/api/v1/announcements", {"severity": "info"}),
            "over": await _call(r, "POST", "/api/v1/announcements", {"message": "x", "end": "2031-06-01T08:00:00Z"}),
            "cross-site": await _call(r, "POST", "/api/v1/announcements", {"message": "x"},
                                      {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}),
            "config one": await _call(r, "DELETE", "/api/v1/announcements/planned"),
        }
    assert '<aside class="note outage"' in page and "Payments <strong>degraded</strong> &lt;img" in page
    assert "<img" not in page.replace("&lt;img", "")  # the markup is text
    assert '<aside class="note upcoming maintenance"' in page and "DB upgrade <em>tonight</em>" in page
    assert {name: status for name, (status, _) in refused.items()} == {
        "bad severity": 400, "no message": 400, "over": 400, "cross-site": 403, "config one": 409}
    assert refused["bad severity"][1]["errors"] == ["'severity' must be one of info, maintenance, warning, outage"]

    async with running(text, clock=SetClock(NOW + 60)) as r:  # a new process on the same folder
        _, listed = await _call(r, "GET", "/api/v1/announcements")
        ended, _ = await _call(r, "DELETE", f"/api/v1/announcements/{ident}")
        again, _ = await _call(r, "DELETE", f"/api/v1/announcements/{ident}")
        _, _, page = await r.get("/")
    assert [(a["id"], a["source"], a["current"]) for a in listed["announcements"]] == [
        ("planned", "config", False), (ident, "api", True)]
    assert (ended, again) == (200, 404)
    assert '<details id="past-announcements"><summary>Past announcements (1)</summary>' in page
    assert '<aside class="note outage"' not in page  # ended: only in the archive now


async def test_an_announcement_the_store_cannot_keep_is_refused_not_shown(
        tmp_path: Path, http_targets: servers.HttpTargets) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    text = f"state_dir: {folder}\ntargets:\n" + targets.http("api", http_targets.url("/ok"))
    async with running(text, clock=SetClock(NOW)) as r:
        (folder / "history.sqlite3").unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            (folder / f"history.sqlite3{suffix}").unlink(missing_ok=True)
        r.collector.archive.notices.close()  # the next write opens the file again: a folder is in its way
        (folder / "history.sqlite3").mkdir()
        status, answer = await _call(r, "POST", "/api/v1/announcements", {"message": "lost?"})
        _, listed = await _call(r, "GET", "/api/v1/announcements")
    assert status == 503 and "nothing was changed" in answer["errors"][0]
    assert listed == {"announcements": []}
