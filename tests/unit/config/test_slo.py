"""``slo:`` on defaults and targets: objectives as shares or percentages, windows, what counts."""

from __future__ import annotations

import pytest

from otel_health.config import ConfigError
from otel_health.config.loader import load_text
from otel_health.config.slo import Slo
from otel_health.probes import PROBES

TARGET = "  - name: {name}\n    kind: tcp\n    host: 127.0.0.1\n    port: 5432\n"


def _slos(text: str) -> dict[str, Slo | None]:
    return {t.name: t.slo for t in load_text(text, "slo.yaml", PROBES).targets}


def test_an_slo_on_defaults_is_every_targets_unless_one_says_otherwise() -> None:
    text = ("defaults:\n  slo: {objective: 99.9%, window: 30d}\ntargets:\n" + TARGET.format(name="db")
            + TARGET.format(name="cache") + "    slo: {objective: 0.995, count: debounced}\n"
            + TARGET.format(name="scratch") + "    slo: false\n"
            + TARGET.format(name="batch") + "    slo: {window: 7d, suppressed: counted}\n")
    slos = _slos(text)
    assert slos["db"] == Slo(0.999, 30 * 86400.0)
    assert slos["cache"] == Slo(0.995, 30 * 86400.0, "debounced")
    assert slos["scratch"] is None
    assert slos["batch"] == Slo(0.999, 7 * 86400.0, "raw", "counted")
    assert slos["batch"].labels() == {"slo_window": "7d", "slo_count": "raw", "slo_suppressed": "counted"}


def test_a_check_spends_the_budget_as_its_slo_counts_it() -> None:
    raw, debounced, counted = Slo(0.999, 86400.0), Slo(0.999, 86400.0, "debounced"), Slo(0.99, 86400.0, "raw",
                                                                                          "counted")
    assert (raw.spends(False, True, False), raw.spends(True, False, False)) == (True, False)
    assert (debounced.spends(False, True, False), debounced.spends(True, False, False)) == (False, True)
    assert raw.spends(False, False, True) is None  # held back: not counted at all
    assert counted.spends(False, False, True) is True


@pytest.mark.parametrize(("slo", "message"), [
    ("{objective: 100%}", "field 'objective': '100%' is not an objective between 50% and 100% (excluded); "
                          "write 99.9% or 0.999"),
    ("{objective: 99.9%, window: 30m}", "field 'window':"),
    ("{objective: 99.9%, count: checks}", "field 'count': must be one of raw, debounced, got 'checks'"),
    ("{window: 7d}", "field 'objective': is required: the share of checks that must pass, such as 99.9%"),
])
def test_an_slo_that_cannot_be_kept_says_why(slo: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _slos("targets:\n" + TARGET.format(name="db") + f"    slo: {slo}\n")
    assert any(message in problem for problem in caught.value.problems), caught.value.problems
