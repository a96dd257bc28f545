"""Heartbeat targets on a running collector: jobs report in over HTTP and through ``otel-health ping``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from otel_health.config.loader import load
from otel_health.errors import ErrorType
from otel_health.probes import PROBES
from otel_health.probes._reports import STATE_FILE, Reports
from otel_health.probes.heartbeat import HeartbeatProbe
from tests.harness.running import Running, keeping_every_trace, running_config


def _reports(r: Running) -> Reports:
    """What the running collector's heartbeat kind holds of the jobs' reports."""
    probe = r.collector.probes["heartbeat"]
    assert isinstance(probe, HeartbeatProbe)
    return probe.reports

pytestmark = pytest.mark.integration

TOKEN = "job-token-4f1c"


def write_config(tmp_path: Path, *, state_dir: bool = True) -> Path:
    (tmp_path / "job-token").write_text(TOKEN + "\n")
    path = tmp_path / "otel-health.yaml"
    path.write_text(
        "listen: 127.0.0.1:0\n"
        + (f"state_dir: {tmp_path / 'state'}\n" if state_dir else "")
        + "targets:\n"
        "  - {name: backup, kind: heartbeat, period: 1s, grace: 0.5s, token_file: job-token, interval: 0.2s,"
        " timeout: 0.1s}\n"
        "  - {name: web, kind: tcp, host: 127.0.0.1, port: 1, interval: 0.2s, timeout: 0.1s}\n")
    return path


def collector_at(path: Path) -> Any:
    return running_config(keeping_every_trace(load(path, PROBES), ""),
                          source=lambda found: load(path, PROBES, found=found))


async def report(r: Running, name: str, *, token: str = TOKEN, body: Any = None, raw: bytes | None = None,
                 query: str = "") -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.post(
            f"{r.url}/api/v1/heartbeat/{name}{query}", json=body if raw is None else None, data=raw,
            headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None


async def test_a_job_that_reports_is_up_one_that_fails_or_misses_is_down(tmp_path: Path) -> None:
    async with collector_at(write_config(tmp_path)) as r:
        await r.wait_result("web")
        await asyncio.sleep(0.6)
        assert r.result("backup") is None  # no report yet, and not a period and its grace since start
        assert (await report(r, "backup", body={"duration": 42.5}))[0] == 200
        await r.wait_for(lambda: (res := r.result("backup")) is not None and res.up, timeout=5, what="backup up")
        assert r.result("backup").phases["job"] == 42.5  # type: ignore[union-attr]
        await r.wait_for(lambda: (res := r.result("backup")) is not None and res.error_type == ErrorType.MISSED,
                         timeout=5, what="backup missed")
        assert "last report" in r.result("backup").detail  # type: ignore[union-attr]
        status, _ = await report(r, "backup", query="?status=fail&message=disk%20full")
        assert status == 200
        await r.wait_for(lambda: (res := r.result("backup")) is not None and res.error_type == ErrorType.ASSERTION,
                         timeout=5, what="backup failed")
        assert r.result("backup").detail == "the job reported failure: disk full"  # type: ignore[union-attr]
        roots = [s for s in r.spans.get_finished_spans() if s.name == "health_check backup"]
        assert roots and {s.attributes["tta.check.outcome"] for s in roots if "tta.check.outcome" in s.attributes} \
            >= {"up", "down"}

        # what a job can get wrong: each refused, nothing recorded
        before = _reports(r).last(("backup", "default"))
        assert (await report(r, "backup", token="wrong"))[0] == 401
        assert (await report(r, "backup", token=""))[0] == 401
        assert (await report(r, "nightly"))[0] == 404
        assert (await report(r, "web"))[0] == 404  # not a heartbeat target
        assert (await report(r, "backup", body={"status": "maybe"}))[0] == 400
        assert (await report(r, "backup", raw=b"{not json"))[0] == 400
        assert (await report(r, "backup", raw=json.dumps({"message": "x" * 100_000}).encode()))[0] == 413
        assert _reports(r).last(("backup", "default")) == before

        # a flood of reports: one record, whatever the count
        for _ in range(300):
            assert (await report(r, "backup", body={"message": "again"}))[0] == 200
        assert len(_reports(r)) == 1

        # the job's token is a secret: never in an output, even when a job echoes it in its message
        assert (await report(r, "backup", body={"status": "fail", "message": f"token was {TOKEN}"}))[0] == 200
        await r.wait_for(lambda: "token was" in (r.result("backup").detail or ""), timeout=5,  # type: ignore[union-attr]
                         what="the echoed token's report checked")
        outputs = [(await r.get(path))[2] for path in ("/metrics", "/health", "/", "/api/v1/targets")]
        outputs.append(" ".join(s.to_json() for s in r.spans.get_finished_spans()))
        assert all(TOKEN not in text for text in outputs)
        assert TOKEN not in _reports(r).last(("backup", "default")).message  # type: ignore[union-attr]
        assert "REDACTED (file:" in outputs[3]


async def test_reports_survive_a_restart_with_state_dir_and_without_it_the_target_is_unknown_first(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path)
    async with collector_at(path) as r:
        assert (await report(r, "backup"))[0] == 200
    assert (tmp_path / "state" / STATE_FILE).exists()
    async with collector_at(path) as r:  # restarted: the report is there, the job is up at once
        result = await r.wait_result("backup", timeout=5)
        assert result.up
    other = tmp_path / "other"
    other.mkdir()
    without = write_config(other, state_dir=False)
    async with collector_at(without) as r:
        started = time.monotonic()
        await r.wait_for(lambda: r.result("backup") is not None, timeout=5, what="a verdict on backup")
        assert time.monotonic() - started >= 1.2  # unknown for a period and its grace, then missed
        assert r.result("backup").error_type == ErrorType.MISSED  # type: ignore[union-attr]


async def test_otel_health_ping_runs_the_command_and_reports_how_it_went(tmp_path: Path) -> None:
    async with collector_at(write_config(tmp_path)) as r:
        async def ping(*command: str) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "otel_health", "ping", "backup", "--url", r.url,
                                 "--token-file", str(tmp_path / "job-token"), "--", *command],
                capture_output=True, text=True, timeout=30)

        done = await ping("sh", "-c", "sleep 0.2; exit 3")
        assert done.returncode == 3, done.stderr  # the command's own status
        last = _reports(r).last(("backup", "default"))
        assert last is not None and not last.ok and last.message == "sh exited with status 3"
        assert last.duration is not None and last.duration >= 0.2
        done = await ping("true")
        assert done.returncode == 0 and _reports(r).last(("backup", "default")).ok  # type: ignore[union-attr]
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "otel_health", "ping", "backup", "--url", r.url, "--", "true"],
            capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin", "OTEL_HEALTH_PING_TOKEN": "bad"})
        assert done.returncode == 0 and "refused (401)" in done.stderr and TOKEN not in done.stderr


async def test_guessing_a_token_is_stopped_and_a_hostile_body_is_a_400(tmp_path: Path) -> None:
    async with collector_at(write_config(tmp_path)) as r:
        await r.wait_result("web")
        deep = b"[" * 60_000
        assert (await report(r, "backup", raw=deep))[0] == 400  # the right token, a body nested past reading
        assert (await report(r, "backup", token="", raw=deep))[0] == 401  # no token: the body is never read
        statuses = [(await report(r, "backup", token=f"guess-{i}"))[0] for i in range(25)]
        assert statuses[:19] == [401] * 19 and set(statuses[19:]) == {429}  # the tokenless one counted too
        status, body = await report(r, "backup")  # while someone guesses, the target's endpoint waits
        assert status == 429 and "try again" in body["errors"][0]
        assert r.result("backup") is None or r.result("backup").error_type != "assertion"
