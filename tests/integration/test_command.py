"""The command kind running real programs (the shell, coreutils): an exit status and an output
matched, a credential passed by reference and kept out of every detail, the collector's own
environment kept from the program, a chatty program that cannot block on a full pipe, a
program killed by a signal, and one still running at the timeout killed with its children."""

from __future__ import annotations

import random
import subprocess

import pytest

from otel_health.errors import ErrorType
from tests.harness import targets
from tests.harness.checks import assert_failed, check_once

pytestmark = pytest.mark.integration


def _cmd(name: str, *command: str, timeout: str = "2s", **fields: object) -> str:
    return targets.entry(name, "command", command=list(command), timeout=timeout, **fields)


def _sh(name: str, script: str, **fields: object) -> str:
    return _cmd(name, "/bin/sh", "-c", script, **fields)


async def test_a_program_its_exit_status_and_its_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_TOKEN", "Zq7-command-token-1187")
    monkeypatch.setenv("COLLECTOR_SECRET", "never-passed-on")
    results = await check_once(
        _cmd("true", "true")
        + _sh("status", "echo 'backup ok: 12 files'", expect=r"^backup ok: \d+ files$")
        + _sh("exit-2", "exit 2", exit_status=2)
        # the credential arrives, the collector's own environment does not
        + _sh("env", 'test "$BACKUP_TOKEN" = Zq7-command-token-1187 && test -z "$COLLECTOR_SECRET" '
                     '&& test "$LANG" = C.UTF-8', env={"BACKUP_TOKEN": "${BACKUP_TOKEN}", "LANG": "C.UTF-8"})
        + _sh("chatty", "head -c 3000000 /dev/zero; head -c 3000000 /dev/zero >&2; echo done", expect="done$")
        + _sh("in-folder", 'test "$(pwd)" = /tmp', working_dir="/tmp"))
    for name, result in results.items():
        assert result.up, (name, result.detail)
        assert set(result.phases) == {"run"}, (name, result.phases)


async def test_each_way_a_command_fails_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_TOKEN", "Zq7-command-token-1187")
    marker = f"60.{random.randrange(10**8):08d}"  # sleep's seconds: its command line told from any other
    results = await check_once(
        _sh("fails", "echo working; echo 'disk full on /var/backups' >&2; exit 3")
        + _sh("says-the-token", 'echo "token=$BACKUP_TOKEN" >&2; exit 1', env={"BACKUP_TOKEN": "${BACKUP_TOKEN}"})
        + _sh("no-match", "echo status=degraded", expect="^status=ok")
        + _sh("silent", "true", expect="^status=ok")
        + _sh("crashes", "kill -SEGV $$")
        # a program that leaves a child behind: the whole group goes at the timeout
        + _sh("hangs", f"sleep {marker} & sleep {marker}", timeout="1s"))
    assert_failed(results, {
        "fails": (ErrorType.ASSERTION, "command sh: exited with 3 (expected 0): disk full on /var/backups"),
        "says-the-token": (ErrorType.ASSERTION, "exited with 1 (expected 0): token=REDACTED"),
        "no-match": (ErrorType.ASSERTION, "its output did not match '^status=ok' (the last line: 'status=degraded')"),
        "silent": (ErrorType.ASSERTION, "(it wrote nothing)"),
        "crashes": (ErrorType.ASSERTION, "killed by SIGSEGV"),
        "hangs": (ErrorType.TIMEOUT, "still running at 90% of the 1s timeout: killed, with its process group"),
    })
    assert all("Zq7-command-token" not in r.detail for r in results.values())
    assert results["hangs"].duration < 1.0
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True, check=False)
    assert left.stdout == "", f"processes of the killed check are still running: {left.stdout}"
