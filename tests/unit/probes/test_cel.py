"""CEL assertions: their verdicts are held to blackbox_exporter's table in the parity test; here
the bound on an evaluation, the interpreter loaded without its command line, and the reasons."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from otel_health.errors import ProbeFailure
from otel_health.probes._cel import MAX_STEPS, CelError, CelExpression, values_in


def test_an_expression_too_deep_for_the_answer_is_refused_before_it_runs() -> None:
    nested = CelExpression.compile("body.items.all(x, body.items.exists(y, y == x + 1) || x == 2999)")
    assert nested.depth == 2
    small = json.dumps({"items": list(range(100))}).encode()
    assert nested.holds(json.loads(small), values_in(small), "body_cel") is False  # 100 ** 2 steps: evaluated
    big = json.dumps({"items": list(range(3000))}).encode()  # 9 million steps, seconds of a held lock
    with pytest.raises(ProbeFailure) as info:  # refused before it runs: the program is never called
        CelExpression("refused", nested.depth, program=None).holds(json.loads(big), values_in(big), "body_cel")
    assert "iterates 2 deep" in info.value.detail and f"{MAX_STEPS:,}" in info.value.detail
    flat = CelExpression.compile("body.items.exists(x, x == 2999)")
    assert flat.depth == 1 and flat.holds(json.loads(big), values_in(big), "body_cel") is True


@pytest.mark.parametrize(("expression", "document", "reason"), [
    ("body.foo.bar == 'baz'", {"foo": {}}, "the answer has no 'bar'"),
    ("body.foo.bar", {"foo": {"bar": "baz"}}, "is a str, not a boolean"),
    ("1 / body.n == 1", {"n": 0}, "could not be evaluated (division by zero"),
    ("body.missing_function()", {}, "could not be evaluated"),
])
def test_each_failure_says_why(expression: str, document: object, reason: str) -> None:
    with pytest.raises(ProbeFailure) as info:
        CelExpression.compile(expression).holds(document, 3, "body_not_cel")
    assert info.value.detail.startswith(f"body_not_cel: {expression!r}: ") and reason in info.value.detail
    assert "\n" not in info.value.detail


def test_a_syntax_error_is_one_line_with_the_column() -> None:
    with pytest.raises(CelError) as info:
        CelExpression.compile("body.(")
    assert "\n" not in str(info.value) and "1:6" in str(info.value)


def test_the_interpreter_comes_without_its_command_line() -> None:
    code = ("import sys; from otel_health.probes._cel import CelExpression; "
            "assert CelExpression.compile('body.a == 1').holds({'a': 1}, 1, 'x'); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'rich', 'prompt_toolkit', 'cel'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
