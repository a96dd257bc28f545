"""Writes docs/configuration.md from the loader itself: every field it reads, for every kind,
with the type, default and bounds the loader passes to its field reader, and the one line of
meaning from docs/fields.yaml. A field the loader reads without a meaning there, or a meaning
for a field it no longer reads, is an error (tests/unit/config/test_reference.py runs this).

    python scripts/config_reference.py          # write docs/configuration.md
    python scripts/config_reference.py --check  # exit 1 when it is stale
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from otel_health.config.fields import Read  # noqa: E402
from otel_health.config.loader import field_reads  # noqa: E402
from otel_health.config.values import format_seconds  # noqa: E402
from otel_health.probes import PROBES  # noqa: E402

OUTPUT = REPO / "docs" / "configuration.md"
MEANINGS = REPO / "docs" / "fields.yaml"

# Configs whose reads, together, reach every branch of the loader: a one-off and a recurring
# window, a target given by URL and by host, fields read only when another is present.
_TOP = {"otlp": {"endpoint": "http://127.0.0.1:4318"},
        "maintenance": [{"name": "once", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z",
                         "match": {"team": "core"}}],
        "announcements": [{"name": "note", "message": "hello", "start": "2026-01-01T00:00:00Z"}]}
_BRANCHES: dict[str, list[dict[str, Any]]] = {
    "amqp": [{"queue": "jobs", "max_messages": 1, "min_consumers": 1}],
    "dns": [{"max_answers": 3}],
    "grpc": [{"tls_verify": False, "tls": True}],
    "redis": [{"host": "127.0.0.1"}],
    "suite": [{"cleanup_timeout": "1s"}],
}
_ABSENT: Any = object()  # the default of a field read only when present
_RECURRING = {"maintenance": [{"name": "weekly", "weekdays": ["sunday"], "targets": ["api"],
                               "times": [{"start_time": "02:00", "end_time": "03:00"}]}]}


def _reads(doc: dict[str, Any]) -> list[Read]:
    return field_reads(yaml.safe_dump(doc), PROBES)


def _key(read: Read) -> tuple[str, ...]:
    return (*(part for part in read.at if part != "[]"), read.name)


def _first(reads: Iterable[Read]) -> dict[tuple[str, ...], Read]:
    """The first read of each field that says its type (a field only asked about has none)."""
    found: dict[tuple[str, ...], Read] = {}
    for read in reads:
        if _key(read) not in found or not found[_key(read)].type:
            found[_key(read)] = read
    return found


def collect() -> dict[str, dict[tuple[str, ...], Read]]:
    """The fields by section: "" (the top level and its sections), "target" (every kind's),
    then each kind's own, keyed by their path below the target."""
    top = _first([*_reads({**_TOP, "targets": []}), *_reads({**_RECURRING, "targets": []})])
    per_kind: dict[str, dict[tuple[str, ...], Read]] = {}
    for kind in sorted(PROBES):
        docs = [{"name": f"a-{kind}", "kind": kind}, *({"name": f"b-{kind}", "kind": kind, **extra}
                                                     for extra in _BRANCHES.get(kind, []))]
        reads = [r for doc in docs for r in _reads({"targets": [doc]}) if r.at[:2] == ("targets", "[]")]
        typed = {_key(r) for r in _reads({"targets": [docs[0]]}) if r.type}
        per_kind[kind] = {key[1:]: r if key in typed or not _absent(r) else dataclasses.replace(r, default=_ABSENT)
                          for key, r in _first(reads).items()}
    common_keys = set.intersection(*(set(fields) for fields in per_kind.values()))
    first_kind = per_kind[sorted(PROBES)[0]]
    sections = {"": top, "target": {k: v for k, v in first_kind.items() if k in common_keys}}
    for kind, fields in per_kind.items():
        sections[kind] = {k: v for k, v in fields.items() if k not in common_keys}
    return sections


def _absent(read: Read) -> bool:
    """A number read only when present, whose default (below its minimum) is never used."""
    return read.type == "whole number" and read.minimum is not None and read.default < read.minimum


def _number(value: float, kind: str) -> str:
    return format_seconds(value) if kind == "duration" else f"{int(value):,}".replace(",", " ")


def _default(read: Read) -> str:
    value = read.default
    if value is _ABSENT:
        return "none"
    if read.required or (read.type == "whole number" and read.minimum is not None and value < read.minimum):
        return "required"
    if value is None or (value == "" and read.type != "text"):
        return ""
    if read.type == "duration":
        return "none" if value == 0 else format_seconds(float(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '""'
    return f"`{value}`"


def _allowed(read: Read) -> str:
    if read.choices:
        return ", ".join(f"`{c}`" for c in read.choices)
    if read.minimum is not None and read.maximum is not None:
        return f"{_number(read.minimum, read.type)} to {_number(read.maximum, read.type)}"
    if read.type == "credential":
        return f"`${{VAR}}` or `{read.name}_file: path`"
    return ""


def _meaning(meanings: dict[str, Any], key: str, used: set[str], missing: list[str]) -> tuple[str, str | None]:
    """The meaning of ``key``, and the type its entry names (``{type, meaning}``: for a field the
    loader reads in a shape of its own, whose type the reader cannot say)."""
    used.add(key)
    entry = meanings.get(key)
    shape = None
    if isinstance(entry, dict):
        shape, entry = entry.get("type"), entry.get("meaning")
    if not entry:
        missing.append(key)
        return "", shape
    return " ".join(str(entry).split()), shape


def _table(fields: dict[tuple[str, ...], Read], prefix: str, meanings: dict[str, Any], used: set[str],
           missing: list[str], skip: tuple[str, ...] = ()) -> list[str]:
    rows = ["| Field | Type | Default | Allowed | Meaning |", "| --- | --- | --- | --- | --- |"]
    for key, read in fields.items():
        if key[:1] in {(s,) for s in skip}:
            continue
        name = ".".join(key)
        meaning, shape = _meaning(meanings, f"{prefix}{name}", used, missing)
        if not read.type:
            missing.append(f"{prefix}{name} (read only when present: give it in _BRANCHES so its type is known)")
        if read.type == "value" and not shape:
            missing.append(f"{prefix}{name} (a shape of its own: write its entry as {{type: ..., meaning: ...}})")
        rows.append(f"| `{name}` | {shape or read.type} | {_default(read)} | {_allowed(read)} | {meaning} |")
    return rows


def render() -> tuple[str, list[str], list[str]]:
    """The reference's text, the fields read with no meaning, the meanings of no field."""
    meanings: dict[str, Any] = yaml.safe_load(MEANINGS.read_text()) or {}
    used: set[str] = set()
    missing: list[str] = []
    sections = collect()
    top = sections[""]
    out = ["# Configuration reference", "",
           "<!-- Written by scripts/config_reference.py from the loader's own reads and docs/fields.yaml;",
           "     do not edit: change the code or docs/fields.yaml, then run `make reference`. -->", "",
           "Every field the loader reads, with the type, default and bounds it checks. Durations are written",
           "`250ms`, `5s`, `1m` or `2h`; a credential only by reference (`${VARIABLE}`, a `NAME_file: /path`",
           "field, or `{file: /path}` as a header's value). `otel-health validate --config FILE` checks a file",
           "and names the line, the field and the fix of every problem.", "", "## Contents", ""]
    groups = [("Top level", "", lambda k: len(k) == 1 and k[0] not in ("targets", "maintenance", "discovery",
                                                                       "announcements")),
              ("defaults", "defaults.", lambda k: k[0] == "defaults" and len(k) > 1),
              ("otlp", "otlp.", lambda k: k[0] == "otlp" and len(k) > 1),
              ("status_page", "status_page.", lambda k: k[0] == "status_page" and len(k) > 1),
              ("maintenance", "maintenance.", lambda k: k[0] == "maintenance" and len(k) > 1),
              ("announcements", "announcements.", lambda k: k[0] == "announcements" and len(k) > 1),
              ("discovery", "discovery.", lambda k: k[0] == "discovery" and len(k) > 1)]
    kinds = sorted(PROBES)
    out += [f"- [{title}](#{title.lower().replace(' ', '-')})" for title, _, _ in groups]
    out += ["- [Every target](#every-target)"] + [f"- [kind: {k}](#kind-{k})" for k in kinds] + [""]
    for title, prefix, chosen in groups:
        fields = {k[1:] if prefix else k: r for k, r in top.items() if chosen(k)}
        out += [f"## {title}", "", *_table(fields, prefix, meanings, used, missing), ""]
    out += ["## Every target", "", "Each entry of `targets:` (and of `target_files`), whatever its kind. A "
            "`maintenance` entry takes the fields of the top-level [maintenance](#maintenance) windows.", ""]
    target = {k: r for k, r in sections["target"].items() if k[0] != "maintenance" or len(k) == 1}
    out += [*_table(target, "target.", meanings, used, missing), ""]
    http_fields = sections["http"]
    for kind in kinds:
        fields = sections[kind]
        out += [f"## kind: {kind}", ""]
        parts = ("steps", "cleanup") if kind == "suite" else ()
        own = {k: r for k, r in fields.items() if k[0] not in parts or len(k) == 1}
        out += [*_table(own, f"{kind}.", meanings, used, missing), ""]
        for part in parts:
            step = {k[1:]: r for k, r in fields.items() if k[0] == part and len(k) > 1}
            extra = {k: r for k, r in step.items() if k not in http_fields}
            absent = sorted(".".join(k) for k in http_fields if k not in step and len(k) == 1)
            out += [f"Each of `{part}`: an HTTP request with the fields of [kind: http](#kind-http)"
                    + (f" except {', '.join(f'`{a}`' for a in absent)}" if absent else "") + ", and:", ""]
            out += [*_table(extra, f"suite.{part}.", meanings, used, missing), ""]
    stale = sorted(set(meanings) - used)
    return "\n".join(out).rstrip() + "\n", missing, stale


def main(argv: list[str]) -> int:
    text, missing, stale = render()
    problems = [f"docs/fields.yaml: '{key.split(' (')[0]}': {key.split(' (', 1)[1].rstrip(')')}" if " (" in key
                else f"docs/fields.yaml: no meaning for '{key}': add one line for it" for key in missing]
    problems += [f"docs/fields.yaml: '{key}' is no field the loader reads: remove it" for key in stale]
    for line in problems:
        print(line, file=sys.stderr)
    if "--check" in argv:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(REPO)} is stale: run make reference", file=sys.stderr)
            return 1
        return 1 if problems else 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(REPO)}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
