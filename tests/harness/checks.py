"""Each target of a few lines of YAML checked once by the real probes, and what a failed one
is expected to say."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TypeVar

from otel_health.config.loader import load_text
from otel_health.errors import ErrorType
from otel_health.probes import PROBES, ProbeSettings
from otel_health.result import CheckResult

T = TypeVar("T")


def options_of(options_type: type[T], fields: str) -> T:
    """The options a target's ``fields`` (the inside of a YAML flow mapping, ``kind`` among them)
    are read as by the loader."""
    config = load_text(f"targets:\n  - {{name: t, {fields}}}\n", "target.yaml", PROBES)
    options = config.targets[0].options
    assert isinstance(options, options_type)
    return options


async def check_once(text: str, settings: ProbeSettings | None = None) -> dict[str, CheckResult]:
    """Each target of ``text`` (YAML list items under ``targets:``) checked once, together, by
    one probe per kind; every probe closed after."""
    config = load_text("targets:\n" + text, "checks.yaml", PROBES)
    probes = {kind: PROBES[kind](settings or ProbeSettings()) for kind in {t.kind for t in config.targets}}
    try:
        results = await asyncio.gather(*(probes[t.kind].run(t) for t in config.targets))
    finally:
        for probe in probes.values():
            await probe.close()
    return {t.name: r for t, r in zip(config.targets, results, strict=True)}


def assert_failed(results: Mapping[str, CheckResult], expected: Mapping[str, tuple[ErrorType, str]]) -> None:
    """Each named result is down with that error type and a detail containing those words."""
    for name, (error_type, words) in expected.items():
        result = results[name]
        assert (result.up, result.error_type) == (False, error_type), (name, result.detail)
        assert words in result.detail, (name, result.detail)


def what(detail: str) -> str:
    """A failure's detail after the address it starts with (``Probe.where``: a URL, or
    ``host:port`` and what follows it), which this asserts is there."""
    where, sep, rest = detail.partition(": ")
    assert sep and ("://" in where or ":" in where), f"no address before the detail: {detail!r}"
    return rest


def raised_from(outer: BaseException, inner: BaseException) -> BaseException:
    """``outer`` as it is caught after being raised from ``inner`` (its cause and traceback set)."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as caught:
        return caught
