"""Starting, waiting for and stopping real server processes, with bounded waits."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

CACHE = Path(os.environ.get("OTEL_HEALTH_CACHE", Path.home() / ".cache" / "otel-health"))


class StartError(RuntimeError):
    """A server did not come up; the message names it and ends with its log."""


_GIVEN: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


# Ports are picked with a generator of the harness's own: the global one is Hypothesis's while a
# property test draws (a server started early, on another thread, must not touch it: Hypothesis
# fails the test), and Hypothesis seeds it the same on both test workers.
_PICK = random.Random()


def free_port() -> int:
    """A loopback port free now, outside the ephemeral range (where the kernel picks the local
    ports of outgoing connections, which the tests make by the thousand: a port taken from
    there can be in use again before the server binds it), and not handed out before."""
    low, high = _ephemeral_range()
    pool = range(20000, low) if low - 20000 >= 2000 else range(high + 1, 65536)
    for _ in range(500):
        port = _PICK.choice(pool)
        if port in _GIVEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``check`` until it is true; raise TimeoutError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # still starting
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not true after {timeout:g}s" + (f" (last error: {last!r})" if last else ""))


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


class Process:
    """A child process with its output in a log file, stopped by PID (and its group)."""

    def __init__(self, name: str, argv: Sequence[str], *, log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None, user: str | None = None) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            list(argv), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True, user=user,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_ready(self, check: Callable[[], bool], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                self.stop()
                raise StartError(f"{self.name} exited with code {self.popen.returncode} while starting; "
                                 f"log {self.log_path}:\n{self.log_tail()}")
            try:
                if check():
                    return
            except Exception:
                pass
            time.sleep(0.1)
        self.stop()
        raise StartError(f"{self.name} not ready after {timeout:g}s; log {self.log_path}:\n{self.log_tail()}")

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.popen.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        start = time.monotonic()
        self._stop(timeout)
        took = time.monotonic() - start
        if took > 2:
            print(f"harness: stopping {self.name} took {took:.1f}s", file=sys.stderr)

    def _stop(self, timeout: float) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        if not self._log.closed:
            self._log.close()
