"""Headless Chromium (Debian's ``chromium``), as a person's browser would load a page."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from .procs import StartError

_CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)$")


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise StartError("chromium not found; run 'make deps' to install it")
    return found


def _argv(*extra: str) -> list[str]:
    # As root Chromium needs --no-sandbox; the rest keeps it quiet and self-contained.
    return [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            "--disable-background-networking", "--hide-scrollbars", *extra]


def load(url: str, *, budget_ms: int = 20_000, timeout: float = 90.0, scripts: bool = True) -> tuple[str, list[str]]:
    """The DOM after scripts ran for ``budget_ms`` of virtual time, and the console's messages."""
    argv = _argv(f"--virtual-time-budget={budget_ms}", "--enable-logging=stderr", "--v=0", "--dump-dom")
    if not scripts:
        argv.append("--disable-javascript")
    done = subprocess.run([*argv, url], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [m.group(1) for line in done.stderr.splitlines() if (m := _CONSOLE.search(line))]
    return done.stdout, console


def screenshot(url: str, path: Path, *, width: int = 1280, height: int = 900, budget_ms: int = 3000) -> None:
    done = subprocess.run([*_argv(f"--window-size={width},{height}", f"--virtual-time-budget={budget_ms}",
                                  f"--screenshot={path}"), url], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0 and path.exists(), done.stderr[-2000:]
