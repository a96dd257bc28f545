"""Targets from service discovery: Prometheus' ``file_sd`` files and ``http_sd`` endpoints.

One inventory feeds both Prometheus and otel-health. A ``discovery:`` entry names where the
target groups come from (files, watched; or an endpoint, polled) and a ``target_template``:
a target as it would be written in the config, whose text may say ``$(address)``,
``$(host)``, ``$(port)`` and ``$(labels.NAME)`` (any label of the group, ``__meta_*``
included). Each address of each group becomes one target; the group's own labels (those not
starting with ``__``) become the target's labels unless the template sets them.

Discovery never fails a load. Each *unit* (one file, or one endpoint's answer) is read and
every target it makes is validated as a configured one; a unit with any problem (not JSON,
a target that does not validate, an endpoint that is down) keeps the target groups it last
had that were good, and says so in :class:`SourceStatus`. The collector counts it in
``otel_health_discovery_*`` and logs each new problem once.

Reading happens in the loader (:func:`otel_health.config.load`, off the event loop, in a
process of its own in ``run``): the loader takes the last good groups and the endpoints'
answers in a :class:`Found` and hands the new ones back in :attr:`Config.discovery
<otel_health.config.Config>`. The event loop only watches files' stamps and fetches
endpoints (:class:`Endpoint`); a change goes through the collector's reload.
"""

from __future__ import annotations

import asyncio
import glob
import ipaddress
import json
import os
import re
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from ._files import Unreadable, read_bounded

if TYPE_CHECKING:  # the loader imports this module from inside its functions
    from .config import Defaults, Fields, KindSpec, Secret, Target, Where, _Placed, _Reporter

__all__ = [
    "DISCOVERY_REFERENCE_RE",
    "NONE_DISCOVERED",
    "NOTHING_FOUND",
    "Answer",
    "Discovered",
    "Endpoint",
    "FileSd",
    "Found",
    "HttpSd",
    "Source",
    "SourceStatus",
    "expand",
    "file_stamps",
    "parse_groups",
    "parse_sources",
]

# $(address), $(host), $(port), $(labels.NAME): what a target template may say of a discovered target.
DISCOVERY_REFERENCE_RE = re.compile(r"\$\((address|host|port|labels\.[A-Za-z_][A-Za-z0-9_]*)\)")
_ANY_REFERENCE_RE = re.compile(r"\$\(([^)]*)\)")
_SOURCE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")  # a `source` label value
_NOT_IN_NAME_RE = re.compile(r"[^A-Za-z0-9_.\-]+")

FILE_REFRESH = 300.0  # seconds: a file is re-read this often even when its stamp is unchanged
HTTP_REFRESH = 60.0  # seconds between two polls of an endpoint (Prometheus' default)
HTTP_TIMEOUT = 10.0
MAX_SD_BYTES = 16 * 1024 * 1024  # an endpoint's answer or a file, at most (16 MiB: ~100,000 targets)
MAX_AGE_CAP = 3600.0  # Cache-Control: max-age lengthens the poll interval up to this
# What one source may bring in: past any of these, a unit is bad and keeps its last good groups.
# One process checks about 20,000 targets (README "Scaling"): a source stays within half of it.
MAX_TARGETS = 10_000  # targets a source makes (max_targets)
MAX_LABELS = 32  # labels of a group
MAX_LABEL_NAME = 128  # characters of a label name
MAX_LABEL_VALUE = 1024  # characters of a label value
DEFAULT_NAME = "$(address)"
_SAMPLE_ADDRESS = "sd.example:80"  # the target a template is checked with at load
_FORMATS = {".json": "json", ".yml": "yaml", ".yaml": "yaml"}


@dataclass(frozen=True, slots=True)
class Group:
    """One target group: addresses and the labels they share (``__meta_*`` included)."""

    targets: tuple[str, ...]
    labels: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class FileSd:
    patterns: tuple[str, ...]  # absolute paths or globs
    refresh: float = FILE_REFRESH


@dataclass(frozen=True, slots=True)
class HttpSd:
    url: str
    refresh: float = HTTP_REFRESH
    timeout: float = HTTP_TIMEOUT
    max_bytes: int = MAX_SD_BYTES
    bearer_token: Secret | None = None
    ca_file: Path | None = None
    tls_verify: bool = True


@dataclass(frozen=True, slots=True)
class Source:
    """One ``discovery:`` entry: where groups come from and the template that makes targets."""

    name: str
    file_sd: FileSd | None
    http_sd: HttpSd | None
    template: Mapping[str, Any]
    copy_labels: bool = True
    where: str = ""  # "discovery[0] (inventory)": for problems
    max_targets: int = MAX_TARGETS


@dataclass(frozen=True, slots=True)
class Answer:
    """What an endpoint last answered, as the collector fetched it: a body, or why none."""

    body: bytes | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Found:
    """What the loader gets besides the config file: the last good groups of each unit, and
    each endpoint's latest answer (by source name)."""

    good: Mapping[tuple[str, str], tuple[Group, ...]] = field(default_factory=dict)
    answers: Mapping[str, Answer] = field(default_factory=dict)


NOTHING_FOUND = Found()


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """A source as its last load left it: targets made, and each unit's problem (a unit with
    a problem kept its last good groups)."""

    name: str
    targets: int = 0
    units: int = 0
    problems: tuple[tuple[str, str], ...] = ()  # (unit, problem)
    read: bool = True  # False: nothing read yet (an endpoint not yet polled)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class Discovered:
    """Discovery as one load left it (``Config.discovery``)."""

    sources: tuple[Source, ...] = ()
    good: Mapping[tuple[str, str], tuple[Group, ...]] = field(default_factory=dict)
    status: Mapping[str, SourceStatus] = field(default_factory=dict)
    stamps: tuple[tuple[str, int, int], ...] = ()  # the files as they were when read (file_stamps)

    def found(self, answers: Mapping[str, Answer]) -> Found:
        """What the next load needs: these good groups and the endpoints' answers."""
        return Found(self.good, answers)


NONE_DISCOVERED = Discovered()


class SdError(Exception):
    """Target groups that are not valid (the message says where and why)."""


def parse_groups(data: bytes | str, fmt: str, limit: int = MAX_SD_BYTES) -> tuple[Group, ...]:
    """Prometheus target groups from ``data`` (``json`` or ``yaml``): a list of
    ``{targets: [...], labels: {...}}``. Raises :class:`SdError`."""
    from .config import _LABEL_RE, _describe

    if len(data) > limit:
        raise SdError(f"larger than {limit} bytes")
    try:
        text = data.decode("utf-8", errors="strict") if isinstance(data, bytes) else data
        raw = json.loads(text) if fmt == "json" else _yaml(text)
    except UnicodeDecodeError:
        raise SdError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SdError(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except yaml.YAMLError as exc:
        raise SdError(f"not valid YAML ({getattr(exc, 'problem', None) or str(exc).splitlines()[0]})") from None
    if raw is None and fmt == "yaml":
        return ()
    if not isinstance(raw, list):
        raise SdError(f"must be a list of target groups ({{targets: [...], labels: {{...}}}}), got {_describe(raw)}")
    groups = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise SdError(f"group {i} must be a mapping, got {_describe(item)}")
        unknown = set(item) - {"targets", "labels"}
        if unknown:
            raise SdError(f"group {i} has unknown field {sorted(map(str, unknown))[0]!r}; a group has targets "
                          "and labels")
        targets = item.get("targets")
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise SdError(f"group {i}: 'targets' must be a list of addresses (host:port)")
        labels = item.get("labels") or {}
        if not isinstance(labels, Mapping):
            raise SdError(f"group {i}: 'labels' must be a mapping of label names to values")
        if len(labels) > MAX_LABELS:
            raise SdError(f"group {i} has {len(labels)} labels, more than {MAX_LABELS}; keep the ones you route "
                          "and query by")
        for key, value in labels.items():
            if not isinstance(key, str) or not _LABEL_RE.fullmatch(key):
                raise SdError(f"group {i}: label name {str(key)[:60]!r} is not valid; use [a-zA-Z_][a-zA-Z0-9_]*")
            if len(key) > MAX_LABEL_NAME:
                raise SdError(f"group {i}: label name {key[:60]!r}… is longer than {MAX_LABEL_NAME} characters")
            if not isinstance(value, str):
                raise SdError(f"group {i}: label {key!r} must be text, got {_describe(value)}")
            if len(value) > MAX_LABEL_VALUE:
                raise SdError(f"group {i}: label {key!r} is {len(value)} characters long, longer than "
                              f"{MAX_LABEL_VALUE}; a label is a name to route and query by, not a document")
        groups.append(Group(tuple(targets), tuple(sorted(labels.items()))))
    return tuple(groups)


def _yaml(text: str) -> Any:
    from .config import _yaml as bounded_yaml  # aliases and depth refused, as in config files

    return bounded_yaml(text)


def split_address(address: str) -> tuple[str, str]:
    """``host:port``, ``host`` or ``[v6]:port`` as (host, port); port "" when absent. SdError
    for anything else: a discovered address is never a URL or a user name."""
    from .config import _HOST_NAME_RE, split_host_port

    problem = SdError(f"address {address[:60]!r} is not host:port (a host name or IP address, and a port)")
    if ":" not in address:
        host, port = address, ""
    else:
        try:
            host, number = split_host_port(address)
        except ValueError:
            raise problem from None
        port = str(number)
        if number == 0 or address.startswith("[") != ("]" in address):
            raise problem
    if address.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise problem from None
    elif not _HOST_NAME_RE.fullmatch(host):
        raise problem
    return host, port


# ---------------------------------------------------------------------------------------
# The config's side: the `discovery:` entries, read by the loader.

def parse_sources(top: Fields, reporter: _Reporter, kinds: Mapping[str, KindSpec], base_dir: Path) -> list[Source]:
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
                elif Path(entry).suffix not in _FORMATS:
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


def _check_template(template: Mapping[str, Any], where: str, reporter: _Reporter, kinds: Mapping[str, KindSpec],
                    base_dir: Path, at: Where = ()) -> None:
    """The template's references and, as far as they can be known before a target is found,
    its fields: it is filled with a sample target, and problems in fields that hold no
    reference are reported (a reference's value is checked when a target is found)."""
    from .config import Defaults, Fields, _parse_target, _Reporter

    for path, text in _strings(template):
        for ref in _ANY_REFERENCE_RE.finditer(text):
            if not DISCOVERY_REFERENCE_RE.fullmatch(ref.group(0)):
                reporter.add(where, path[-1] if path else None,
                             f"unknown reference {ref.group(0)!r}; use $(address), $(host), $(port) or "
                             "$(labels.NAME)", (*at, *path[:-1]))
        if DISCOVERY_REFERENCE_RE.search(text) and any(p == "file" or p.endswith("_file") for p in path):
            reporter.add(where, path[-1], "a file path cannot come from discovery (it could name any file); "
                                          "write the path", (*at, *path[:-1]))
    class Captured(_Reporter):
        """Problems as (where, field, message), to tell the template's own from its references'."""

        def __init__(self) -> None:
            super().__init__("template")
            self.found: list[tuple[str, str | None, str]] = []

        def add(self, where: str, field_name: str | None, message: str, path: Where | None = None) -> None:
            self.found.append((where, field_name, message))

    scratch = Captured()
    sample = _fill(template, _SAMPLE_ADDRESS, Group((_SAMPLE_ADDRESS,), ()), copy_labels=False)
    _parse_target(Fields(sample, "", scratch, base_dir), kinds, Defaults(), "default", [])
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
           environment: str, base_dir: Path, static: list[_Placed], seen: dict[tuple[str, str], str],
           targets: list[Target], placed: list[_Placed], reserved: frozenset[str]) -> Discovered:
    """Every source's targets added to ``targets`` and ``placed``; a unit with a problem
    contributes its last good groups instead (none if it never had any)."""
    from .config import _Placed, _Reporter

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
                placed.append(_Placed(target, _Reporter(origin), origin, windows))
                made += 1
        unread = source.http_sd is not None and found.answers.get(source.name) is None
        status[source.name] = SourceStatus(source.name, made, len(units), tuple(problems), read=not unread)
    return Discovered(tuple(sources), good, status, stamps)


def _units(source: Source, found: Found) -> Iterator[tuple[str, tuple[Group, ...] | None, str | None]]:
    """(origin, groups, problem) for each unit of ``source``: each file, or the endpoint
    (groups None: none read now)."""
    if source.file_sd is not None:
        for path in _matched(source.file_sd):
            try:
                text = read_bounded(Path(path), MAX_SD_BYTES)  # never a FIFO or a device
                yield path, parse_groups(text, _FORMATS[Path(path).suffix]), None
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


def _matched(file_sd: FileSd) -> list[str]:
    out: list[str] = []
    for pattern in file_sd.patterns:
        out.extend(sorted(glob.glob(pattern)) if glob.has_magic(pattern) else
                   [pattern] if os.path.exists(pattern) else [])
    return list(dict.fromkeys(out))


def _make(source: Source, origin: str, groups: tuple[Group, ...], kinds: Mapping[str, KindSpec],
          defaults: Defaults, environment: str, base_dir: Path, static: list[_Placed],
          seen: dict[tuple[str, str], str], reserved: frozenset[str]) -> list[tuple[Target, list[Any]]] | str:
    """The targets ``groups`` make, or the first problem (one line) when any does not validate."""
    from .config import Fields, _check_dependencies, _parse_target, _Placed, _Reporter

    reporter = _Reporter(origin)
    made: list[tuple[Target, list[Any]]] = []
    mine: dict[tuple[str, str], str] = {}
    unit_placed: list[_Placed] = []
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
            target = _parse_target(Fields(raw, where, reporter, base_dir), kinds, defaults, environment, windows)
            if reporter.problems:
                return reporter.problems[0].removeprefix(f"{origin}: ")
            assert target is not None
            if target.key in seen or target.key in mine:
                other = seen.get(target.key) or mine[target.key]
                return (f"{where}: makes target {target.name!r} in environment {target.environment!r}, "
                        f"which {other} already has; make the template's name unique")
            mine[target.key] = where
            made.append((target, windows))
            unit_placed.append(_Placed(target, reporter, where, windows))
    if any(t.depends_on for t, _ in made):
        shadow = [_Placed(p.target, _Reporter("static"), p.where, []) for p in static]
        _check_dependencies(shadow + unit_placed)
        if reporter.problems:
            return reporter.problems[0].removeprefix(f"{origin}: ")
    return made


# ---------------------------------------------------------------------------------------
# The collector's side: noticing change.

def file_stamps(sources: tuple[Source, ...]) -> tuple[tuple[str, int, int], ...]:
    """What the files of every ``file_sd`` source look like now (path, mtime, size): a change
    in it means a reload. Run it off the loop: globs over large folders take time."""
    out = []
    for source in sources:
        if source.file_sd is None:
            continue
        for path in _matched(source.file_sd):
            try:
                st = os.stat(path)
                out.append((path, st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((path, -1, -1))
    return tuple(out)


class Endpoint:
    """One ``http_sd`` endpoint, polled: ``fetch()`` returns a new :class:`Answer` when there is
    news (a new body, or a new problem), else None; ``delay`` says when to poll next.

    Conditional requests (``If-None-Match`` with the last ETag, ``If-Modified-Since`` with the
    last ``Last-Modified``): a 304 is no news. ``Cache-Control: max-age`` longer than the
    refresh interval lengthens the wait (up to an hour). The body is read up to ``max_bytes``
    and must be ``application/json``, as Prometheus requires.
    """

    def __init__(self, source: Source, user_agent: str) -> None:
        assert source.http_sd is not None
        self.source = source
        self.sd = source.http_sd
        self._user_agent = user_agent
        self._etag: str | None = None
        self._modified: str | None = None
        self._body: bytes | None = None
        self._problem: str | None = None
        self.delay = self.sd.refresh
        self.failed = False  # whether the last poll failed
        self._context: ssl.SSLContext | None = None
        self._unusable: str | None = None  # why no request can be made (a CA file that is not one)
        try:
            self._context = self._ssl()
        except (OSError, ssl.SSLError) as exc:
            self._unusable = f"ca_file cannot be used ({type(exc).__name__}: {str(exc)[:120]})"

    def _ssl(self) -> ssl.SSLContext:
        """Verified TLS (unless ``tls_verify: false``) for an https URL, and for an http one
        that redirects to https."""
        context = ssl.create_default_context(cafile=str(self.sd.ca_file) if self.sd.ca_file else None)
        if not self.sd.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def fetch(self, session: Any) -> Answer | None:
        self.delay = self.sd.refresh
        body, problem = (None, self._unusable) if self._unusable is not None else await self._get(session)
        self.failed = problem is not None
        if problem is not None:
            self._etag = self._modified = None  # the next good answer is read whole
            if problem == self._problem:
                return None
            self._problem = problem
            return Answer(None, problem)
        if body == self._body and self._problem is None:
            return None
        self._body, self._problem = body, None
        return Answer(body)

    async def _get(self, session: Any) -> tuple[bytes | None, str | None]:
        """(body, None), or (None, why not): one conditional request, bounded in time and size."""
        import aiohttp

        headers = {"Accept": "application/json", "User-Agent": self._user_agent,
                   "X-Prometheus-Refresh-Interval-Seconds": f"{self.sd.refresh:g}"}
        if self._etag:
            headers["If-None-Match"] = self._etag
        if self._modified:
            headers["If-Modified-Since"] = self._modified
        if self.sd.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.sd.bearer_token.reveal()}"
        too_large = f"answer larger than max_bytes ({self.sd.max_bytes})"
        try:
            async with asyncio.timeout(self.sd.timeout):
                async with session.get(self.sd.url, headers=headers, ssl=self._context, allow_redirects=True,
                                       max_redirects=3) as response:
                    self.delay = self._next_delay(response.headers.get("Cache-Control", ""))
                    if response.status == 304 and self._body is not None:
                        return self._body, None
                    if response.status != 200:
                        return None, f"answered HTTP {response.status}"
                    if response.content_type != "application/json":
                        return None, f"answered {response.content_type or 'no Content-Type'}, not application/json"
                    if (response.content_length or 0) > self.sd.max_bytes:
                        return None, too_large
                    chunks, size = [], 0
                    async for chunk in response.content.iter_any():
                        size += len(chunk)
                        if size > self.sd.max_bytes:
                            return None, too_large
                        chunks.append(chunk)
                    self._etag = response.headers.get("ETag")
                    self._modified = response.headers.get("Last-Modified")
                    return b"".join(chunks), None
        except TimeoutError:
            return None, f"no answer within {self.sd.timeout:g}s"
        except (aiohttp.ClientError, OSError, ssl.SSLError, ValueError) as exc:
            return None, f"cannot be fetched ({type(exc).__name__}: {_scrub(str(exc), self.sd)})"

    def _next_delay(self, cache_control: str) -> float:
        match = re.search(r"(?:^|,)\s*max-age\s*=\s*(\d+)", cache_control, re.IGNORECASE)
        if match is None or "no-cache" in cache_control.lower():
            return self.sd.refresh
        return max(self.sd.refresh, min(float(match.group(1)), MAX_AGE_CAP))


def _scrub(text: str, sd: HttpSd) -> str:
    if sd.bearer_token is not None:
        text = text.replace(sd.bearer_token.reveal(), "<redacted>")
    return text[:200]

