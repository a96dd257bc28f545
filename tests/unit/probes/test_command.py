"""The command kind's options: the program found when the configuration is read, its
environment by name with credentials by reference (the wire, real programs, is in
tests/integration/test_command.py), and what a failure's detail says."""

from __future__ import annotations

import pytest

from otel_health.config import Secret
from otel_health.probes.command import CommandOptions, _last_line, _Sink
from tests.harness.checks import options_of


def _options(fields: str) -> CommandOptions:
    return options_of(CommandOptions, f"kind: command, {fields}")


def test_the_program_is_found_on_the_path_and_shown_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECK_TOKEN", "Zq7-unit-token")
    options = _options('command: [sh, -c, "exit 0"], env: {CHECK_TOKEN: "${CHECK_TOKEN}", LANG: C.UTF-8, RETRIES: 3}')
    assert options.command[0].endswith("/sh") and options.command[1:] == ("-c", "exit 0")
    assert [s.reveal() for s in options.secrets()] == ["Zq7-unit-token"]
    assert dict(options.env)["LANG"] == "C.UTF-8" and dict(options.env)["RETRIES"] == "3"
    assert isinstance(dict(options.env)["CHECK_TOKEN"], Secret)
    shown = options.public()
    assert shown["command"] == ["sh", "-c", "exit 0"]
    assert shown["env"] == {"CHECK_TOKEN": "env:CHECK_TOKEN", "LANG": "C.UTF-8", "RETRIES": "3"}
    assert "Zq7-unit-token" not in repr(shown)


async def test_output_keeps_its_last_bytes_and_a_detail_its_last_line() -> None:
    import asyncio
    import os

    reader, writer = os.pipe()
    with open(reader, "rb", buffering=0) as source, open(writer, "wb", buffering=0) as pipe:
        sink = _Sink(asyncio.get_running_loop(), source)
        pipe.write(b"x" * 40_000)
        for _ in range(4):
            sink.readable()
        pipe.write(b"y" * 40_000 + b"\nlast words\n")
        pipe.close()
        while not sink.done.done():
            sink.readable()
    assert len(sink.kept) == 64 * 1024 and sink.kept.endswith(b"y\nlast words\n")
    assert _last_line(b"first\n\nsecond line\n\n") == "second line"
    assert _last_line(b"") == ""
