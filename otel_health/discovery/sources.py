"""The config's side of discovery: the ``discovery:`` entries, each checked with a sample
target when the config is read; and, at every load, the targets each unit of a source makes
(a unit with a problem keeps its last good groups). Only the loader imports this module."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._files import Unreadable, read_bounded
from ..config.fields import Fields, Reporter
from ..config.model import Defaults, KindSpec, Target
from ..config.targets import Placed, check_dependencies, parse_target
from ..config.yamldoc import Where
from .endpoints import file_stamps
from .groups import SdError, matched_files, parse_groups, split_address
from .model import (
    FILE_REFRESH,
    FORMATS,
    HTTP_REFRESH,
    HTTP_TIMEOUT,
    MAX_SD_BYTES,
    MAX_TARGETS,
    Discovered,
    FileSd,
    Found,
    Group,
    HttpSd,
    Source,
    SourceStatus,
)

__all__ = ["DISCOVERY_REFERENCE_RE", "expand", "parse_sources"]


# $(address), $(host), $(port), $(labels.NAME): what a target template may say of a discovered target.
DISCOVERY_REFERENCE_RE = re.compile(r"\$\((address|host|port|labels\.[A-Za-z_][A-Za-z0-9_]*)\)")


_ANY_REFERENCE_RE = re.compile(r"\$\(([^)]*)\)")


_SOURCE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")  # a `source` label value


_NOT_IN_NAME_RE = re.compile(r"[^A-Za-z0-9_.\-]+")


DEFAULT_NAME = "$(address)"


_SAMPLE_ADDRESS = "sd.example:80"  # the target a template is checked with at load


def parse_sources(top: Fields, reporter: Reporter, kinds: Mapping[str, KindSpec], base_dir: Path) -> list[Source]:
    """The ``discovery:`` entries of a config; problems reported (a source with one is left out)."""
    sources: list[Source] = []
    names: set[str] = set()
    for index, f in top.each("discovery"):
        where = f"discovery[{index}]"
        name = f.text("name", f"discovery-{index}", pattern=_SOURCE_NAME_RE,
                      hint="use letters, digits, '.', '_' or '-'")
        if name in names:
            f.problem("name", f"{name!r} is used by another discovery entry; give each its own name")
        names.add(name)
        file_sd = http_sd = None
        fs = f.sub("file_sd")
        if fs is not None:
            patterns = []
            files = fs.sequence("files")
            if not files:
                fs.problem("files", "is required: the files (globs allowed) holding the target groups")
            for entry in files:
                if not isinstance(entry, str) or not entry:
                    fs.problem("files", "entries must be file paths or globs ending in .json, .yml or .yaml")
                elif Path(entry).suffix not in FORMATS:
                    fs.problem("files", f"{entry!r} must end in .json, .yml or .yaml (as Prometheus' file_sd)")
                else:
                    patterns.append(str(base_dir / entry))
            file_sd = FileSd(tuple(patterns), fs.duration("refresh_interval", FILE_REFRESH, minimum=1.0))
            fs.finish()
        hs = f.sub("http_sd")
        if hs is not None:
            url = hs.text("url", required=True) or ""
            parts = urlsplit(url) if url else None
            if parts is not None and (parts.scheme not in ("http", "https") or not parts.hostname):
                hs.problem("url", f"{url[:60]!r} must be an http:// or https:// URL")
            elif parts is not None and (parts.username or parts.password):
                hs.problem("url", "must not hold credentials; use bearer_token: ${ENV_VAR}")
            http_sd = HttpSd(
                url=url,
                refresh=hs.duration("refresh_interval", HTTP_REFRESH, minimum=1.0),
                timeout=hs.duration("timeout", HTTP_TIMEOUT, maximum=300.0),
                max_bytes=hs.whole("max_bytes", MAX_SD_BYTES, minimum=1024, maximum=256 * 1024 * 1024),
                bearer_token=hs.secret("bearer_token"),
                ca_file=hs.path("ca_file"),
                tls_verify=hs.flag("tls_verify", True),
            )
            hs.finish()
        if (file_sd is None) == (http_sd is None):
            f.problem(None, "give one of file_sd: {files: [...]} or http_sd: {url: ...}")
        template = f.mapping("target_template")
        if not template:
            f.problem("target_template", "is required: a target (kind and its options) whose text may say "
                                         "$(address), $(host), $(port) and $(labels.NAME)")
        copy_labels = f.flag("copy_labels", True)
        max_targets = f.whole("max_targets", MAX_TARGETS, minimum=1, maximum=1_000_000)
        f.finish()
        before = len(reporter.problems)
        if template:
            _check_template(template, f"{where} ({name}): target_template", reporter, kinds, base_dir,
                            (*f.at, "target_template"))
        if len(reporter.problems) == before and (file_sd is not None) != (http_sd is not None):
            sources.append(Source(name, file_sd, http_sd, template, copy_labels, f"{where} ({name})", max_targets))
    return sources


def _check_template(template: Mapping[str, Any], where: str, reporter: Reporter, kinds: Mapping[str, KindSpec],
                    base_dir: Path, at: Where = ()) -> None:
    """The template's references and, as far as they can be known before a target is found,
    its fields: it is filled with a sample target, and problems in fields that hold no
    reference are reported (a reference's value is checked when a target is found)."""
    for path, text in _strings(template):
        for ref in _ANY_REFERENCE_RE.finditer(text):
            if not DISCOVERY_REFERENCE_RE.fullmatch(ref.group(0)):
                reporter.add(where, path[-1] if path else None,
                             f"unknown reference {ref.group(0)!r}; use $(address), $(host), $(port) or "
                             "$(labels.NAME)", (*at, *path[:-1]))
        if DISCOVERY_REFERENCE_RE.search(text) and any(p == "file" or p.endswith("_file") for p in path):
            reporter.add(where, path[-1], "a file path cannot come from discovery (it could name any file); "
                                          "write the path", (*at, *path[:-1]))
    class Captured(Reporter):
        """Problems as (where, field, message), to tell the template's own from its references'."""

        def __init__(self) -> None:
            super().__init__("template")
            self.found: list[tuple[str, str | None, str]] = []

        def add(self, where: str, field_name: str | None, message: str, path: Where | None = None) -> None:
            self.found.append((where, field_name, message))

    spec = kinds.get(str(template.get("kind", "")))
    if spec is not None and not spec.discoverable:
        reporter.add(where, "kind", f"{template['kind']} targets cannot come from discovery: a target list would name "
                                    "what runs on this host; write each under targets:", at)
        return
    scratch = Captured()
    sample = _fill(template, _SAMPLE_ADDRESS, Group((_SAMPLE_ADDRESS,), ()), copy_labels=False)
    parse_target(Fields(sample, "", scratch, base_dir), kinds, Defaults(), "default", [])
    referenced = {key for path, text in _strings(template) if _ANY_REFERENCE_RE.search(text) for key in path}
    for inner, field_name, message in scratch.found:
        if field_name is None or field_name not in referenced:
            reporter.add(f"{where}: {inner}" if inner else where, field_name, message, at)


def _strings(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(v, (*path, str(k)))
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, path)


def _fill(template: Mapping[str, Any], address: str, group: Group, *, copy_labels: bool) -> dict[str, Any]:
    """The target ``template`` makes of ``address`` in ``group``, as a config would write it."""
    host, port = split_address(address)
    labels = dict(group.labels)

    def value(ref: str) -> str:
        if ref == "address":
            return address
        if ref == "host":
            return host
        if ref == "port":
            if not port:
                raise SdError(f"address {address!r} has no port, and the template says $(port)")
            return port
        label = labels.get(ref.removeprefix("labels."), "")
        if "${" in label:
            # A discovered value never becomes a reference to this process' environment.
            raise SdError(f"label {ref.removeprefix('labels.')!r} holds '${{'; a discovered value cannot")
        return label

    def sub(text: str) -> str:
        return DISCOVERY_REFERENCE_RE.sub(lambda m: value(m.group(1)), text)

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            out = sub(node)
            # A field that is one reference to a number is that number (port: "$(port)").
            number = out != node and DISCOVERY_REFERENCE_RE.fullmatch(node) and out.isdigit() and len(out) < 10
            return int(out) if number and (out == "0" or not out.startswith("0")) else out
        if isinstance(node, Mapping):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    raw: dict[str, Any] = walk(template)
    name = raw.get("name", sub(DEFAULT_NAME))
    if isinstance(name, str):
        # A name from discovery is made a name: what a name cannot hold becomes '_'.
        raw["name"] = _NOT_IN_NAME_RE.sub("_", name).lstrip("_.-")[:128]
    if copy_labels:
        own = raw.get("labels")
        if own is None or isinstance(own, Mapping):
            merged = {k: v for k, v in group.labels if not k.startswith("__")}
            raw["labels"] = {**merged, **(own or {})}
    return raw


def expand(sources: list[Source], found: Found, kinds: Mapping[str, KindSpec], defaults: Defaults,
           environment: str, base_dir: Path, static: list[Placed], seen: dict[tuple[str, str], str],
           targets: list[Target], placed: list[Placed], reserved: frozenset[str]) -> Discovered:
    """Every source's targets added to ``targets`` and ``placed``; a unit with a problem
    contributes its last good groups instead (none if it never had any)."""
    good: dict[tuple[str, str], tuple[Group, ...]] = {}
    status: dict[str, SourceStatus] = {}
    stamps = file_stamps(tuple(sources))  # before reading: a write after this is seen as a change
    for source in sources:
        problems: list[tuple[str, str]] = []
        made = 0
        units = list(_units(source, found))
        for origin, groups, problem in units:
            key = (source.name, origin)
            unit: list[tuple[Target, list[Any]]] | str = []
            if groups is not None:
                unit = _make(source, origin, groups, kinds, defaults, environment, base_dir, static, seen, reserved)
                problem = unit if isinstance(unit, str) else None
                if not isinstance(unit, str) and made + len(unit) > source.max_targets:
                    problem = (f"would bring the source to {made + len(unit)} targets, more than its max_targets "
                               f"({source.max_targets}); raise max_targets or split the inventory over instances "
                               "(shard)")
            if problem is not None or groups is None:
                if problem is not None:
                    problems.append((origin, problem))
                groups = found.good.get(key)
                unit = [] if groups is None else \
                    _make(source, origin, groups, kinds, defaults, environment, base_dir, static, seen, reserved)
                if isinstance(unit, str) or made + len(unit) > source.max_targets:
                    unit, groups = [], None  # the last good groups are not good with this config: none
            if groups is not None:
                good[key] = groups
            assert not isinstance(unit, str)
            for target, windows in unit:
                seen[target.key] = f"{source.where}: {origin}"
                targets.append(target)
                placed.append(Placed(target, Reporter(origin), origin, windows))
                made += 1
        unread = source.http_sd is not None and found.answers.get(source.name) is None
        status[source.name] = SourceStatus(source.name, made, len(units), tuple(problems), read=not unread)
    return Discovered(tuple(sources), good, status, stamps)


def _units(source: Source, found: Found) -> Iterator[tuple[str, tuple[Group, ...] | None, str | None]]:
    """(origin, groups, problem) for each unit of ``source``: each file, or the endpoint
    (groups None: none read now)."""
    if source.file_sd is not None:
        for path in matched_files(source.file_sd):
            try:
                text = read_bounded(Path(path), MAX_SD_BYTES)  # never a FIFO or a device
                yield path, parse_groups(text, FORMATS[Path(path).suffix]), None
            except Unreadable as exc:
                yield path, None, f"cannot be read ({exc})"
            except SdError as exc:
                yield path, None, str(exc)
    elif source.http_sd is not None:
        url = source.http_sd.url
        answer = found.answers.get(source.name)
        if answer is None:
            yield url, None, None  # not fetched yet: what it had, if anything, and no problem
        elif answer.body is None:
            yield url, None, answer.problem or "no answer"
        else:
            try:
                yield url, parse_groups(answer.body, "json", source.http_sd.max_bytes), None
            except SdError as exc:
                yield url, None, str(exc)


def _make(source: Source, origin: str, groups: tuple[Group, ...], kinds: Mapping[str, KindSpec],
          defaults: Defaults, environment: str, base_dir: Path, static: list[Placed],
          seen: dict[tuple[str, str], str], reserved: frozenset[str]) -> list[tuple[Target, list[Any]]] | str:
    """The targets ``groups`` make, or the first problem (one line) when any does not validate."""
    reporter = Reporter(origin)
    made: list[tuple[Target, list[Any]]] = []
    mine: dict[tuple[str, str], str] = {}
    unit_placed: list[Placed] = []
    for g, group in enumerate(groups):
        for address in group.targets:
            where = f"group {g}, target {address[:60]!r}"
            try:
                raw = _fill(source.template, address, group, copy_labels=source.copy_labels)
            except SdError as exc:
                return f"{where}: {exc}"
            labels = raw.get("labels")
            if isinstance(labels, Mapping):
                # Labels from discovery that a target may not set (reserved, or what its kind
                # reports in tta_service_info) are left out, not refused; and an empty one, as
                # Prometheus treats an empty label as an absent one.
                kind = kinds.get(raw.get("kind", ""))
                skip = reserved | frozenset(kind.info_labels if kind is not None else ())
                raw["labels"] = {k: v for k, v in labels.items() if k not in skip and v != ""}
            windows: list[Any] = []
            # Paths in the template are the config file's, wherever the groups came from.
            target = parse_target(Fields(raw, where, reporter, base_dir), kinds, defaults, environment, windows)
            if reporter.problems:
                return reporter.problems[0].removeprefix(f"{origin}: ")
            assert target is not None
            if target.key in seen or target.key in mine:
                other = seen.get(target.key) or mine[target.key]
                return (f"{where}: makes target {target.name!r} in environment {target.environment!r}, "
                        f"which {other} already has; make the template's name unique")
            mine[target.key] = where
            made.append((target, windows))
            unit_placed.append(Placed(target, reporter, where, windows))
    if any(t.depends_on for t, _ in made):
        shadow = [Placed(p.target, Reporter("static"), p.where, []) for p in static]
        check_dependencies(shadow + unit_placed)
        if reporter.problems:
            return reporter.problems[0].removeprefix(f"{origin}: ")
    return made
