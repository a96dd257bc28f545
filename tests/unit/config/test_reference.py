"""docs/configuration.md is the loader's own account of its fields: current, complete, and
naming exactly the fields each kind's target accepts."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

from otel_health.config import ConfigError
from otel_health.config.loader import load_text
from otel_health.probes import PROBES

REPO = Path(__file__).resolve().parents[3]


def _generator():  # scripts/ is not a package: load the script as the Makefile runs it
    spec = importlib.util.spec_from_file_location("config_reference", REPO / "scripts" / "config_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("config_reference", module)
    spec.loader.exec_module(module)
    return module


REFERENCE = _generator()


def test_the_reference_is_current_and_every_field_has_a_meaning() -> None:
    text, missing, stale = REFERENCE.render()
    assert not missing, f"fields without a line in docs/fields.yaml: {missing}"
    assert not stale, f"lines in docs/fields.yaml for no field: {stale}"
    assert (REPO / "docs" / "configuration.md").read_text() == text, "docs/configuration.md is stale: make reference"


def _documented(kind: str) -> set[str]:
    sections = REFERENCE.collect()
    fields = {**sections["target"], **sections[kind]}
    return {key[0] for key in fields}


@pytest.mark.parametrize("kind", sorted(PROBES))
def test_the_fields_listed_for_a_kind_are_the_ones_its_target_accepts(kind: str) -> None:
    """The loader names the fields it knows when it meets one it does not: the reference must
    list exactly those (a credential's NAME_file form aside)."""
    doc = {"targets": [{"name": "x", "kind": kind, "zzqqxxyy": 1}]}
    with pytest.raises(ConfigError) as caught:
        load_text(yaml.safe_dump(doc), "c.yaml", PROBES, resolve_secrets=False)
    line = next(p for p in caught.value.problems if "unknown field 'zzqqxxyy'" in p)
    known = set(re.search(r"known fields: (.*)$", line).group(1).split(", "))  # type: ignore[union-attr]
    documented = _documented(kind)
    known = {name for name in known if name in documented or not (name.endswith("_file") and name[:-5] in known)}
    assert documented == known


def test_a_field_the_loader_reads_without_a_meaning_is_named() -> None:
    meanings = yaml.safe_load((REPO / "docs" / "fields.yaml").read_text())
    del meanings["http.url"]
    meanings["http.no_such_field"] = "gone"
    original = REFERENCE.MEANINGS
    try:
        path = REPO / "docs" / "fields.yaml"
        REFERENCE.MEANINGS = type(path)("/nonexistent")
        scratch = Path(__import__("tempfile").mkdtemp()) / "fields.yaml"
        scratch.write_text(yaml.safe_dump(meanings))
        REFERENCE.MEANINGS = scratch
        _, missing, stale = REFERENCE.render()
    finally:
        REFERENCE.MEANINGS = original
    assert missing == ["http.url"] and stale == ["http.no_such_field"]
