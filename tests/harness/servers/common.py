"""What starting any server shares: the repository, a bounded HTTP readiness probe, JSON over
HTTP, and a clear error for a component that is not installed."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from ..procs import StartError

__all__ = ["REPO", "get_json", "http_ok", "require"]


REPO = Path(__file__).resolve().parents[3]


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(200 <= response.status < 300)
    except OSError:
        return False


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def require(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise StartError(f"{what} not found at {p}; run 'make deps' to install and build the test components")
    return p
