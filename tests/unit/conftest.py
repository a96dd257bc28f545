from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from otel_health.config import Target
from otel_health.errors import ErrorType
from otel_health.probes.http import HttpOptions
from otel_health.result import CheckResult
from tests.harness.clock import WEDNESDAY_NOON, at

NOW = at(WEDNESDAY_NOON)  # when a result made here started, unless a test says


@pytest.fixture
def make_target() -> Callable[..., Target]:
    def make(name: str, *, interval: float = 15.0, timeout: float = 5.0, labels: tuple[tuple[str, str], ...] = (),
             slow: float = 1.0, kind: str = "http") -> Target:
        return Target(name=name, kind=kind, environment="test", interval=interval, timeout=timeout, retries=0,
                      slow_threshold=slow, labels=labels, options=HttpOptions(url=f"http://127.0.0.1/{name}"))

    return make


@pytest.fixture
def make_result() -> Callable[..., CheckResult]:
    def make(*, up: bool = True, duration: float = 0.01, **kw: Any) -> CheckResult:
        if not up:
            kw.setdefault("error_type", ErrorType.TIMEOUT)
            kw.setdefault("detail", "no answer")
        kw.setdefault("started_at", NOW)
        return CheckResult(up=up, duration=duration, **kw)

    return make
