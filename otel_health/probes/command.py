"""Command probe: a program run on this host, its verdict its exit status (and, optionally, a
pattern its output must match), as cloudprober's external probe: for what no kind speaks (a
vendor's CLI, ``snmpget``, ``radtest``, a game server's query tool, a script of your own).

The program is started without a shell, from an argument list, with an environment of its own:
``PATH`` and what ``env`` gives (values by reference), never the collector's (which may hold
its credentials). It runs in a process group of its own, which is killed, children and all,
when the check's timeout comes. Its output is read as it comes, the last 64 KiB of each stream
kept (the rest is read and dropped, so a chatty program never blocks on a full pipe). A command target
cannot come from discovery: a target list would name what runs on this host."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Fields, Secret, Target
from ..config.values import ENV_REF_RE
from ..errors import ErrorType, ProbeFailure
from ._base import ANSWER_SHARE, Attempt, Probe, answer_by, pair_secrets, server_words
from ._match import Pattern, pattern_field

__all__ = ["CommandOptions", "CommandProbe"]

MAX_OUTPUT = 64 * 1024  # bytes of each stream kept
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_LINES = "(?m)"


@dataclass(frozen=True, slots=True)
class CommandOptions:
    command: tuple[str, ...]
    env: tuple[tuple[str, str | Secret], ...] = ()
    working_dir: Path | None = None
    exit_status: int = 0
    expect: Pattern | None = None
    _shown: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, f: Fields) -> CommandOptions | None:
        argv = _argv(f)
        found = None
        if argv:
            program = argv[0]
            found = shutil.which(program, path=_DEFAULT_PATH) if "/" not in program else \
                (program if os.access(program, os.X_OK) and Path(program).is_file() else None)
            if found is None:
                f.problem("command", f"{program[:80]!r} is not an executable file here "
                                     + ("(give its path, or install it)" if "/" in program else
                                        f"(not found in {_DEFAULT_PATH}; give its full path)"))
        env: list[tuple[str, str | Secret]] = []
        for name, value in f.mapping("env").items():
            if not isinstance(name, str) or not name or "=" in name or "\0" in name:
                f.problem("env", f"{str(name)[:40]!r} is not an environment variable's name")
            elif isinstance(value, Mapping) or (isinstance(value, str) and ENV_REF_RE.fullmatch(value.strip())):
                secret = f.secret_value(f"env.{name}", value)  # a credential, by reference
                if secret is not None:
                    env.append((name, secret))
            elif isinstance(value, str | int | float) and not isinstance(value, bool):
                env.append((name, str(value)))
            else:
                f.problem("env", f"{name}: a value is text, or a credential by reference ('${{VAR}}', {{file: path}})")
        expect = pattern_field(f, "expect", prefix=_LINES)  # ^ and $ at each line, as grep
        folder = f.text("working_dir")
        working_dir = Path(folder) if folder is not None else None
        if working_dir is not None and not (working_dir.is_absolute() and working_dir.is_dir()):
            f.problem("working_dir", f"{folder[:80]!r} is not a folder here; give its absolute path")
        exit_status = f.whole("exit_status", 0, minimum=0, maximum=255)
        if not argv:
            return None
        return cls(command=(found or argv[0], *argv[1:]), env=tuple(env), working_dir=working_dir,
                   exit_status=exit_status, expect=expect, _shown=tuple(argv))

    def secrets(self) -> Iterator[Secret]:
        return pair_secrets(self.env)

    def where(self) -> str:
        return f"command {Path(self.command[0]).name}"

    def public(self) -> dict[str, Any]:
        return {"command": list(self._shown),
                "env": {name: value.source if isinstance(value, Secret) else value for name, value in self.env},
                "working_dir": str(self.working_dir) if self.working_dir else None,
                "exit_status": self.exit_status,
                "expect": self.expect.pattern.removeprefix(_LINES) if self.expect else None}


def _argv(f: Fields) -> list[str]:
    """``command``: a list of text (a number is its text); [] after a problem."""
    if isinstance(f.raw("command"), str):
        f.problem("command", "is one string; give the program and its arguments as a list, "
                             '["/usr/local/bin/check-backup", "--quick"] (for a shell: ["/bin/sh", "-c", "..."])')
        return []
    argv = f.sequence("command")
    if not argv or not all(isinstance(arg, str | int | float) and not isinstance(arg, bool) for arg in argv):
        f.problem("command", "is required: the program and its arguments, as a list of text")
        return []
    return [str(arg) for arg in argv]


class _Sink:
    """A pipe read as it is written, on the event loop: its last :data:`MAX_OUTPUT` bytes kept
    (a program says how it went last), the rest read and dropped."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pipe: Any) -> None:
        self.fd = pipe.fileno()
        self.kept = b""
        self.done: asyncio.Future[None] = loop.create_future()
        os.set_blocking(self.fd, False)

    def readable(self) -> None:
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            self.kept = (self.kept + chunk)[-MAX_OUTPUT:]
        elif not self.done.done():
            self.done.set_result(None)


async def _run(o: CommandOptions, env: dict[str, str], deadline: float) -> tuple[bytes, bytes, int]:
    """The program run to its end (its output and exit status), or TimeoutError at ``deadline``
    with its process group killed. Started by CPython's subprocess on a thread, which uses vfork:
    uvloop's own spawn forks the whole collector (5 ms of CPU a start at 150 MB, against 0.3);
    then its pipes and its end (a pidfd) are watched on the loop."""
    loop = asyncio.get_running_loop()
    process = await asyncio.to_thread(
        subprocess.Popen, o.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env, cwd=o.working_dir, start_new_session=True)
    sinks = [_Sink(loop, process.stdout), _Sink(loop, process.stderr)]
    ended: asyncio.Future[None] = loop.create_future()

    def end() -> None:
        if not ended.done():
            ended.set_result(None)

    pidfd = -1
    try:
        for sink in sinks:
            loop.add_reader(sink.fd, sink.readable)
        with contextlib.suppress(OSError, AttributeError):  # no pidfd (Linux before 5.3): polled below
            pidfd = os.pidfd_open(process.pid)
            loop.add_reader(pidfd, end)
        async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
            await asyncio.gather(*(sink.done for sink in sinks))
            if pidfd < 0:
                while process.poll() is None:
                    await asyncio.sleep(0.01)
            else:
                await ended
        return sinks[0].kept, sinks[1].kept, process.wait()
    finally:
        for sink in sinks:
            loop.remove_reader(sink.fd)
        if pidfd >= 0:
            loop.remove_reader(pidfd)
            os.close(pidfd)
        if process.poll() is None:  # the timeout came: the whole group goes
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(process.wait, 1.0)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def _last_line(data: bytes) -> str:
    lines = [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return server_words(lines[-1]) if lines else ""


class CommandProbe(Probe):
    kind = "command"
    component_type = "component"
    check_name = "command"
    options_type = CommandOptions
    discoverable = False

    async def _check(self, target: Target, attempt: Attempt) -> None:
        o: CommandOptions = target.options
        deadline = answer_by(target.timeout)  # a command still running then is named, and killed
        env = {"PATH": _DEFAULT_PATH,
               **{name: value.reveal() if isinstance(value, Secret) else value for name, value in o.env}}
        attributes: dict[str, str | int] = {"process.executable.path": o.command[0]}
        with self.step(attempt, "run", f"run {Path(o.command[0]).name}", attributes) as span:
            try:
                out, err, status = await _run(o, env, deadline)
            except TimeoutError:
                raise ProbeFailure(ErrorType.TIMEOUT, f"still running at {ANSWER_SHARE:.0%} of the "
                                                      f"{target.timeout:g}s timeout: killed, with its process "
                                                      "group") from None
            span.set_attribute("process.exit.code", status)
        if status < 0:
            raise ProbeFailure(ErrorType.ASSERTION, f"killed by {signal.Signals(-status).name}"
                                                    + (f": {said}" if (said := _last_line(err)) else ""))
        if status != o.exit_status:
            said = _last_line(err) or _last_line(out)
            raise ProbeFailure(ErrorType.ASSERTION, f"exited with {status} (expected {o.exit_status})"
                                                    + (f": {said}" if said else ""))
        if o.expect is not None and not o.expect.found(out):
            wanted = o.expect.pattern.removeprefix(_LINES)
            raise ProbeFailure(ErrorType.ASSERTION, f"its output did not match {wanted!r}"
                                                    + (f" (the last line: {_last_line(out)!r})" if out.strip() else
                                                       " (it wrote nothing)"))

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        if isinstance(exc, PermissionError | FileNotFoundError):  # gone or changed since the config was read
            return ErrorType.UNAVAILABLE, f"the command cannot be run here ({exc.strerror})"
        return super()._classify(exc)
