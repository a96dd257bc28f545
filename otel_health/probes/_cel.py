"""CEL assertions on a JSON answer: ``body_cel`` must be true, ``body_not_cel`` must not be,
blackbox_exporter's ``fail_if_body_json_not_matches_cel`` and ``fail_if_body_json_matches_cel``.

The expression sees the parsed answer as ``body``, as blackbox_exporter's does. It is compiled
once, when the config is read, by the Rust CEL interpreter of ``common-expression-language``;
a check then evaluates it in microseconds. Its verdicts are blackbox_exporter's: an answer that
is not JSON, a field that is not there, an error while evaluating or a result that is not a
boolean fails the check, each with its reason.

CEL is not Turing complete, but a comprehension inside a comprehension (``all``, ``exists``,
``map``, ``filter``) costs the product of the lists' lengths, and the interpreter holds the
interpreter lock while it runs: on a thread or not, the event loop would wait. So each
evaluation is bounded before it starts: the expression's iteration depth (its comprehension
variables) against the number of values the answer could hold (its commas and brackets, counted
in C), at most :data:`MAX_STEPS` steps (docs/performance.md). An answer over it fails the check
with the reason, without being evaluated.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ErrorType, ProbeFailure

__all__ = ["MAX_STEPS", "CelError", "CelExpression", "values_in"]

# Steps one evaluation may take: about 25 ms of the interpreter at 0.25 µs a step (measured).
MAX_STEPS = 100_000
_interpreter: ModuleType | None = None


class CelError(ValueError):
    """An expression the interpreter does not take; the message says where and why, on one line."""


def _cel() -> ModuleType:
    """The interpreter's compiled module, loaded on its own: the package's ``__init__`` also
    imports its command line (typer, rich, prompt_toolkit), 0.2 s and 30 MB no check uses."""
    global _interpreter
    if _interpreter is None:
        spec = importlib.util.find_spec("cel")
        folders = list(spec.submodule_search_locations or ()) if spec is not None else []
        found = [p for folder in folders for p in Path(folder).iterdir()
                 if p.name.startswith("cel.") and p.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))]
        if found:
            loader = importlib.machinery.ExtensionFileLoader("cel.cel", str(found[0]))
            module_spec = importlib.util.spec_from_file_location("cel.cel", found[0], loader=loader)
            assert module_spec is not None
            module = importlib.util.module_from_spec(module_spec)
            loader.exec_module(module)
            _interpreter = module
        else:  # packaged differently: the package as a whole
            import cel

            _interpreter = cel
    return _interpreter


@dataclass(frozen=True, slots=True)
class CelExpression:
    source: str
    depth: int  # comprehension variables: an evaluation costs up to (values in the answer) ** depth
    program: Any = field(compare=False, repr=False)

    @classmethod
    def compile(cls, source: str) -> CelExpression:
        if not source.strip():
            raise CelError("is empty; write a CEL expression on body, such as body.status == 'ok'")
        if len(source) > 4096:
            raise CelError(f"is {len(source)} characters long; keep an expression under 4096")
        try:
            program = _cel().compile(source)
        except (ValueError, RuntimeError) as exc:
            lines = str(exc).splitlines() or ["?"]
            reason = lines[0].split("ERROR: <input>:", 1)[-1].split(" expecting ", 1)[0][:160]
            raise CelError(f"is not a CEL expression ({reason}); see https://cel.dev for the syntax") from None
        names = set(program.variables())
        return cls(source, len(names - {"body"}), program)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """Compiled again from its source: a reload reads the config in a process of its own and
        sends it back pickled, and the interpreter's program does not pickle."""
        return CelExpression.compile, (self.source,)

    def holds(self, document: Any, size_hint: int, option: str) -> bool:
        """The expression's value on ``document`` (``body``), which must be a boolean; an answer
        of ``size_hint`` values (an upper bound) too big for its depth is refused unevaluated.
        ``option``: the field the expression came from, which a failure names."""
        shown = f"{option}: {self.source[:80]!r}"
        if self.depth and size_hint ** self.depth > MAX_STEPS:
            raise ProbeFailure(ErrorType.ASSERTION, f"{shown}: iterates {self.depth} deep over an answer "
                                                    f"of up to {size_hint} values, over the bound of {MAX_STEPS:,} "
                                                    "steps; iterate less deep or over a smaller part")
        try:
            value = self.program.execute({"body": document})
        except (KeyError, IndexError) as exc:
            raise ProbeFailure(ErrorType.ASSERTION, f"{shown}: the answer has no {exc}") from None
        except (ValueError, TypeError, RuntimeError, ArithmeticError, OverflowError) as exc:
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise ProbeFailure(ErrorType.ASSERTION, f"{shown}: could not be evaluated ({reason})") from None
        if not isinstance(value, bool):
            raise ProbeFailure(ErrorType.ASSERTION, f"{shown}: is a {type(value).__name__}, not a boolean")
        return value


def values_in(body: bytes) -> int:
    """An upper bound on the values any one list or map of the JSON ``body`` holds."""
    return body.count(b",") + 1
