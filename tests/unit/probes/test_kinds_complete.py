"""A kind cannot be half-added: for every kind in the probe registry, what the rest of the
project must know of it is there. Generated from ``PROBES``, so a new kind is held to it
without anyone editing a list."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from otel_health import logs
from otel_health.probes import PROBES

ROOT = Path(__file__).resolve().parents[3]
PROBES_DIR = ROOT / "otel_health" / "probes"
CHECKS = (ROOT / "docs" / "checks.md").read_text()
HTTP_API = (ROOT / "docs" / "http-api.md").read_text()
REFERENCE = (ROOT / "docs" / "configuration.md").read_text()
FIXTURES = sorted((ROOT / "tests" / "testdata").glob("invalid-*.yaml"))

# Libraries a kind may import that log nothing at INFO or above on their own, with the reason.
SILENT = {
    "httptools": "llhttp's binding: no logging",
    "h2": "logs only through the logger it is given (none)",
    "hpack": "debug only",
    "idna": "no logging",
    "brotli": "no logging",
    "aiohappyeyeballs": "debug only",
    "grpc_health": "generated message classes",
    "google": "protobuf runtime: no logging of a check's data",
    "cel": "the Rust CEL interpreter: no logging",
    "icmplib": "no logging",
    "cryptography": "no logging (certificates and OCSP responses read, aioquic's handshake)",
    "OpenSSL": "pyOpenSSL: no logging (the handshake that asks for a stapled OCSP response)",
    "yarl": "URLs only: no logging",
    "bson": "PyMongo's documents: no logging",
    "mcstatus": "no logging",
    "re2": "compiled with log_errors off (probes/_match.py): a refused pattern is a config error, said once",
}


def _imports(path: Path, seen: set[Path]) -> set[str]:
    """Top-level third-party packages ``path`` imports, with the probes' own modules it imports."""
    if path in seen or not path.exists():
        return set()
    seen.add(path)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1 and node.module:
                found |= _imports(PROBES_DIR / f"{node.module}.py", seen)
    return {name for name in found if name not in sys.stdlib_module_names and name != "otel_health"}


@pytest.mark.parametrize("kind", sorted(PROBES))
def test_a_kinds_libraries_are_quiet_below_warning(kind: str) -> None:
    """A library that logs at INFO would put a check's requests (and their headers) in the log."""
    module = Path(sys.modules[PROBES[kind].__module__].__file__ or "")
    loud = {name for name in _imports(module, set()) if name not in logs._QUIET + logs._SILENT and name not in SILENT}
    assert not loud, f"{kind}: add {sorted(loud)} to logs._QUIET, or to SILENT here with the reason"


@pytest.mark.parametrize("kind", sorted(PROBES))
def test_a_kind_has_its_invalid_config_fixture(kind: str) -> None:
    assert any(re.search(rf"^\s+kind: {kind}\s*$", p.read_text(), re.M) for p in FIXTURES), (
        f"no tests/testdata/invalid-*.yaml holds a '{kind}' target with the errors its options promise")


@pytest.mark.parametrize("kind", sorted(PROBES))
def test_a_kind_is_in_the_configuration_docs_and_the_health_document(kind: str) -> None:
    probe = PROBES[kind]
    assert re.search(rf"kind: {kind}\b", CHECKS), f"docs/checks.md's example configuration has no '{kind}' target"
    assert f"## kind: {kind}\n" in REFERENCE, f"docs/configuration.md has no section for '{kind}': make reference"
    assert probe.kind == kind
    assert probe.component_type and re.fullmatch(r"[a-z]+", probe.component_type)
    assert probe.check_name and re.fullmatch(r"[a-zA-Z]+", probe.check_name)
    row = f"| `{kind}` | `{probe.component_type}` | `{probe.check_name}` |"
    assert row in HTTP_API, f"docs/http-api.md's /health table has no row {row!r} (the names /health gives the kind)"


@pytest.mark.parametrize("kind", sorted(PROBES))
def test_a_kind_has_its_unit_tests(kind: str) -> None:
    """Tests mirror the package: a kind's own error table and option rules are tested in
    tests/unit/probes/test_KIND.py (its protocol against a real server, in tests/integration)."""
    path = ROOT / "tests" / "unit" / "probes" / f"test_{kind}.py"
    assert path.is_file(), f"no {path.relative_to(ROOT)}: a kind's error table and options are tested there"
    probe = PROBES[kind]
    text = path.read_text()
    assert any(mark in text for mark in (probe.__name__, f"probes.{kind} import", f"probes import {kind}",
                                         f"kind: {kind}")), (
        f"{path.relative_to(ROOT)} does not test the {kind} kind ({probe.__name__})")
