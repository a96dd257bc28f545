"""Configuration: YAML in, validated plain data out.

Every problem in a file is reported at once, one line each, in the form
``FILE: WHERE: field 'F': what is wrong; what would be right``. Secrets are accepted
only by reference (``${ENV_VAR}`` or a ``*_file`` path) and are resolved at load time
into :class:`Secret` values that never print themselves.

Kind-specific options are declared by each probe (its ``options_type``) and read with the
same :class:`Fields` reader, so the loader never branches on a kind.
"""

from __future__ import annotations

import difflib
import glob
import ipaddress
import math
import os
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import yaml

from ._files import Unreadable, read_bounded
from .discovery import NONE_DISCOVERED, NOTHING_FOUND, Discovered, Found, expand, parse_sources
from .sharding import Shard, ShardError, parse_shard
from .suppression import DAY, OneOff, Recurring, Window, clock_minutes, gap_hint, instant, weekday_set, zone
from .suppression import utc as dt_utc

__all__ = [
    "AS_WRITTEN",
    "STEP_REF_RE",
    "Config",
    "ConfigError",
    "Defaults",
    "Fields",
    "KindOptions",
    "OtlpSettings",
    "Placement",
    "Secret",
    "Target",
    "attributes_of",
    "format_seconds",
    "load",
    "load_text",
    "split_host_port",
]

DEFAULT_LISTEN = "127.0.0.1:8090"
MAX_CONFIG_BYTES = 16 * 1024 * 1024
MAX_SECRET_BYTES = 64 * 1024
_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")
_HOST_NAME_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.\-]{0,251}[A-Za-z0-9_.])?$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_ENV_REF_RE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
# A value taken from an earlier step of a suite: $(step.value). Parentheses, not braces, so it
# is never read as an environment reference, nor eaten by a template tool's {{ }}.
STEP_REF_RE = re.compile(r"\$\(([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\)")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
# Labels every tta_service_* series already carries, or that the contract reserves.
RESERVED_LABELS = frozenset(
    {"service", "environment", "kind", "outcome", "error_type", "version", "status_code",
     "phase", "reason", "depends_on", "le", "quantile", "job", "instance", "location"}
)
DEFAULT_MAX_MAINTENANCE = 24 * 3600.0


class ConfigError(Exception):
    """A configuration that cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Secret:
    """A credential resolved from the environment or a file. It never prints itself."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source  # "env:NAME" or "file:/path": safe to show

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value and other.source == self.source

    def __hash__(self) -> int:
        return hash((self._value, self.source))


Where = tuple[str | int, ...]  # keys and indexes from the document's root to a value


class _Reporter:
    """Collects one line per problem: ``file:line:column: where: field 'name': message``. The line
    and column are those of the value the problem is about, found (once, and only when there is
    a problem) by reading the file's YAML events again with their marks."""

    def __init__(self, file: str, problems: list[str] | None = None, root: str | None = None, *,
                 resolve_secrets: bool = True, text: str | None = None) -> None:
        self.file = file
        self.root = root or file
        self.problems: list[str] = problems if problems is not None else []
        # False: a credential's reference is checked for its form, never read (validate --no-secrets)
        self.resolve_secrets = resolve_secrets
        self._text = text
        self._marks: dict[Where, tuple[int, int]] | None = None

    def add(self, where: str, field_name: str | None, message: str, path: Where | None = None) -> None:
        at = self._at(path, field_name) if path is not None else None
        file = f"{self.file}:{at[0]}:{at[1]}" if at is not None else self.file
        prefix = f"{file}: {where}" if where else file
        if field_name is not None:
            prefix += f": field '{field_name}'"
        self.problems.append(f"{prefix}: {message}")

    def _at(self, path: Where, field_name: str | None) -> tuple[int, int] | None:
        """Line and column of the value at ``path`` (and ``field_name`` under it), or of the
        nearest value above it that has a mark."""
        if self._text is None:
            return None
        if self._marks is None:
            self._marks = _marks_of(self._text)
        marks = self._marks
        if field_name is not None:
            for key in ((*path, *field_name.split(".")), (*path, field_name)):
                if key in marks:
                    return marks[key]
        key = path
        while key and key not in marks:
            key = key[:-1]
        return marks.get(key, (1, 1))


def _marks_of(text: str) -> dict[Where, tuple[int, int]]:
    """Where each value of the document starts (line and column from 1), by its path: from the
    node graph PyYAML composes, read only when there is a problem to place."""
    marks: dict[Where, tuple[int, int]] = {(): (1, 1)}
    try:
        root = yaml.compose(text, Loader=_CSafeLoader or yaml.SafeLoader)
    except yaml.YAMLError:
        return marks  # what cannot be composed keeps the nearest mark above it: the file's start
    stack: list[tuple[Where, Any]] = [((), root)] if root is not None else []
    while stack:  # depth first, without recursion
        path, node = stack.pop()
        if path:
            marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            stack += [((*path, key.value), value) for key, value in node.value if isinstance(key, yaml.ScalarNode)]
        elif isinstance(node, yaml.SequenceNode):
            stack += [((*path, index), value) for index, value in enumerate(node.value)]
    return marks


_MISSING: Any = object()


class Fields:
    """Reads one mapping of a config file, collecting problems instead of raising.

    Each getter returns a usable value even when the input is wrong (the default), so a
    whole file is checked in one pass. :meth:`finish` reports keys nobody asked for.
    """

    def __init__(self, raw: Mapping[str, Any], where: str, reporter: _Reporter, base_dir: Path,
                 path: Where = ()) -> None:
        self._raw = raw
        self._where = where
        self._path = path
        self._reporter = reporter
        self._base_dir = base_dir
        self._seen: set[str] = set()
        # Values a suite's earlier steps make, by "step.value": set on a suite step's fields,
        # where ``$(step.value)`` is accepted as credentials are (see ``probes.suite``).
        self.references: frozenset[str] | None = None

    @property
    def at(self) -> Where:
        """The path from the document's root to this mapping."""
        return self._path

    def problem(self, name: str | None, message: str) -> None:
        self._reporter.add(self._where, name, message, self._path)

    def has(self, name: str) -> bool:
        return name in self._raw

    def raw(self, name: str) -> Any:
        """The value as written (None when absent), for fields with a shape of their own."""
        self._seen.add(name)
        return self._raw.get(name)

    def sub(self, name: str) -> Fields | None:
        """A reader for a nested mapping, or None when the field is absent or wrong."""
        value = self.mapping(name)
        if not value:
            return None
        return Fields(value, f"{self._where}: {name}" if self._where else name, self._reporter, self._base_dir,
                      (*self._path, name))

    def _get(self, name: str, default: Any, required: bool) -> Any:
        self._seen.add(name)
        if name not in self._raw or self._raw[name] is None:
            if required:
                self.problem(name, "is required")
            return _MISSING if default is _MISSING else default
        return self._raw[name]

    def text(self, name: str, default: Any = None, *, required: bool = False,
            choices: tuple[str, ...] | None = None, pattern: re.Pattern[str] | None = None,
            hint: str = "") -> Any:
        value = self._get(name, default, required)
        if value is _MISSING or value is default:
            return None if value is _MISSING else value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.problem(name, f"must be a string, got {_describe(value)}")
            return default
        value = str(value)
        if _ENV_REF_RE.fullmatch(value.strip()):
            self.problem(name, "does not take ${...} references; only credential fields do")
            return default
        if choices is not None and value not in choices:
            self.problem(name, f"must be one of {', '.join(choices)}, got {_short(value)!r}")
            return default
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(name, f"{_short(value)!r} is not valid{'; ' + hint if hint else ''}")
            return default
        return value

    def duration(self, name: str, default: float, *, minimum: float = 0.001, maximum: float = 86400.0) -> float:
        value = self._get(name, default, False)
        if value is default:
            return float(default)
        seconds = parse_duration(value)
        if seconds is None:
            self.problem(name, f"must be a duration such as 5s, 250ms or 1m, got {_short(value)!r}")
            return default
        if not minimum <= seconds <= maximum:
            self.problem(name, f"must be between {format_seconds(minimum)} and {format_seconds(maximum)}, "
                               f"got {_short(value)!r}")
            return default
        return seconds

    def whole(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self._get(name, default, False)
        if value is default:
            return int(default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(name, f"must be a whole number from {minimum} to {maximum}, got {_short(value)!r}")
            return default
        if not minimum <= value <= maximum:
            self.problem(name, f"must be from {minimum} to {maximum}, got {value}")
            return default
        return int(value)

    def flag(self, name: str, default: bool) -> bool:
        value = self._get(name, default, False)
        if value is default:
            return bool(default)
        if not isinstance(value, bool):
            self.problem(name, f"must be true or false, got {_short(value)!r}")
            return default
        return bool(value)

    def mapping(self, name: str) -> dict[str, Any]:
        value = self._get(name, None, False)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(name, f"must be a mapping of names to values, got {_describe(value)}")
            return {}
        return dict(value)

    def sequence(self, name: str) -> list[Any]:
        value = self._get(name, None, False)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(name, f"must be a list, got {_describe(value)}")
            return []
        return value

    def each(self, name: str) -> Iterator[tuple[int, Fields]]:
        """A reader for each mapping in the list ``name``; an entry that is not one is reported."""
        for index, item in enumerate(self.sequence(name)):
            if not isinstance(item, Mapping):
                self.problem(name, f"entry {index} must be a mapping, got {_describe(item)}")
                continue
            where = f"{self._where}: {name}[{index}]" if self._where else f"{name}[{index}]"
            if isinstance(item.get("name"), str) and item["name"]:
                where += f" ({_short(item['name'])})"
            yield index, Fields(item, where, self._reporter, self._base_dir, (*self._path, name, index))

    def path(self, name: str) -> Path | None:
        value: str | None = self.text(name)
        if value is None:
            return None
        path = (self._base_dir / value).resolve()
        if not path.is_file():
            self.problem(name, f"file {str(path)!r} does not exist or is not a file")
            return None
        return path

    def secret(self, name: str, *, required: bool = False) -> Secret | None:
        """A credential: ``NAME: ${ENV_VAR}`` or ``NAME_file: path``; never an inline value."""
        file_key = f"{name}_file"
        self._seen.update((name, file_key))
        inline, file_ref = self._raw.get(name), self._raw.get(file_key)
        if inline is not None and file_ref is not None:
            self.problem(name, f"give either '{name}' or '{file_key}', not both")
            return None
        if inline is None and file_ref is None:
            if required:
                self.problem(name, f"is required: set '{name}: ${{ENV_VAR}}' or '{file_key}: /path/to/file'")
            return None
        if inline is not None:
            return self.resolve_secret(name, inline)
        return self._secret_from_file(file_key, file_ref)

    def resolve_secret(self, name: str, value: Any, *, as_value: bool = False) -> Secret | None:
        """``value`` (``${ENV_VAR}``) as a credential; ``as_value``: it is a value in a mapping (a
        header's), whose file form is ``{file: path}``, not a ``NAME_file`` field."""
        file_form = "{file: /path/to/file}" if as_value else f"'{name}_file: /path/to/file'"
        match = _ENV_REF_RE.fullmatch(value.strip()) if isinstance(value, str) else None
        if match is None and self.references is not None and isinstance(value, str) and STEP_REF_RE.search(value):
            # A value an earlier step of the suite takes from its answer, filled in as it runs.
            if self.known_references(name, value):
                return Secret(value, "suite step")
            return None
        if match is None:
            # The value is a credential written inline: never echo it back.
            self.problem(name, f"credentials are not accepted inline; write '${{ENV_VAR}}' or {file_form}")
            return None
        var = match.group(1)
        if not self._reporter.resolve_secrets:
            return Secret(f"unresolved-{var}", f"env:{var}")
        resolved = os.environ.get(var)
        if resolved is None:
            self.problem(name, f"environment variable {var} is not set; export it or use {file_form}")
            return None
        return Secret(resolved, f"env:{var}")

    def known_references(self, name: str, text: str) -> bool:
        """Whether every ``$(step.value)`` in ``text`` names a value an earlier step makes;
        each one that does not is reported."""
        known = self.references or frozenset()
        good = True
        for ref in STEP_REF_RE.finditer(text):
            if ref.group(1) not in known:
                near = difflib.get_close_matches(ref.group(1), sorted(known), n=1)
                hint = f"; did you mean $({near[0]})?" if near else (
                    "; values come from an earlier step's 'extract'" if known else
                    "; no earlier step extracts a value")
                self.problem(name, f"$({_short(ref.group(1))}) is not a value of an earlier step{hint}")
                good = False
        return good

    def secret_value(self, name: str, value: Any) -> Secret | None:
        """A credential given as a value of a mapping (a header's): '${ENV_VAR}' or {file: path}."""
        if isinstance(value, Mapping):
            if set(value) != {"file"}:
                self.problem(name, "a credential is '${ENV_VAR}' or {file: /path/to/file}")
                return None
            return self._secret_from_file(name, value["file"])
        return self.resolve_secret(name, value, as_value=True)

    def _secret_from_file(self, key: str, value: Any) -> Secret | None:
        if not isinstance(value, str) or not value:
            self.problem(key, f"must be a file path, got {_describe(value)}")
            return None
        path = (self._base_dir / value).resolve()
        if not self._reporter.resolve_secrets:
            return Secret("unresolved-file", f"file:{path}")
        try:
            text = read_bounded(path, MAX_SECRET_BYTES)
        except Unreadable as exc:
            self.problem(key, f"cannot read {str(path)!r}: {exc}")
            return None
        return Secret(text.rstrip("\r\n"), f"file:{path}")

    def ignore_rest(self) -> None:
        """Take every field as read: the mapping has one problem that says it all."""
        self._seen.update(str(key) for key in self._raw)

    def finish(self) -> None:
        known = sorted(self._seen)
        for key in self._raw:
            if key in self._seen:
                continue
            key_text = _short(str(key))
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known fields: {', '.join(known)}"
            self._reporter.add(self._where, None, f"unknown field '{key_text}'{hint}", (*self._path, str(key)))


class KindOptions(Protocol):
    """What a probe kind declares about its own options (see ``probes``)."""

    @classmethod
    def parse(cls, fields: Fields) -> KindOptions: ...

    def secrets(self) -> Iterator[Secret]: ...

    def public(self) -> dict[str, Any]: ...


class KindSpec(Protocol):
    @property
    def options_type(self) -> Any: ...

    @property
    def info_labels(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Defaults:
    interval: float = 15.0
    timeout: float = 5.0
    retries: int = 0
    slow_threshold: float = 1.0
    failure_threshold: int = 1
    success_threshold: int = 1


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    kind: str
    environment: str
    interval: float
    timeout: float
    retries: int
    slow_threshold: float
    labels: tuple[tuple[str, str], ...]
    options: Any
    critical: bool = True
    failure_threshold: int = 1
    success_threshold: int = 1
    depends_on: tuple[str, ...] = ()  # names of targets in the same environment

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.environment)

    def secrets(self) -> list[str]:
        return [s.reveal() for s in self.options.secrets() if s.reveal()]


@dataclass(frozen=True, slots=True)
class OtlpSettings:
    endpoint: str | None = None
    protocol: str | None = None
    export_interval: float | None = None
    headers: tuple[tuple[str, Secret | str], ...] = ()
    shutdown_timeout: float = 3.0  # seconds the last export at shutdown may take
    # Healthy checks' traces kept, in percent, picked by trace id as the Collector's
    # probabilistic policy picks them with this salt (OTEL_HEALTH_KEEP_PERCENT/_SALT).
    keep_percent: float = 1.0
    keep_salt: str = "default-hash-seed"


@dataclass(frozen=True, slots=True)
class Config:
    path: str
    listen_host: str
    listen_port: int
    environment: str
    concurrency: int
    defaults: Defaults
    targets: tuple[Target, ...]
    otlp: OtlpSettings = field(default_factory=OtlpSettings)
    max_body_bytes: int = 1024 * 1024
    api_token: Secret | None = None
    files: tuple[str, ...] = ()  # every file this config was read from, for watching
    allowed_hosts: tuple[str, ...] = ()  # host names the API answers to, beyond localhost and the listen host
    maintenance: tuple[Window, ...] = ()  # the configured windows, top-level and per target
    max_maintenance: float = DEFAULT_MAX_MAINTENANCE  # seconds: the longest window the API opens
    state_dir: Path | None = None  # where what must survive a restart is kept
    trace_url: str | None = None  # a trace's page in a UI, with {trace_id}: the status page links to it
    status_title: str = "Service status"
    status_public: bool = False  # with api_token set, the status page is open to anyone all the same
    shard: Shard | None = None  # this instance's shard: ``targets`` holds only the targets it checks
    location: str | None = None  # where this instance checks from: a ``location`` label on every target
    targets_configured: int = 0  # targets in the configuration, on every shard
    discovery: Discovered = NONE_DISCOVERED  # the discovery sources, their last good groups and status


def attributes_of(target: Target) -> dict[str, str]:
    """The labels every series of ``target`` carries: service, environment, kind and its own."""
    return {"service": target.name, "environment": target.environment, "kind": target.kind, **dict(target.labels)}


def parse_duration(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) and value >= 0 else None
    if isinstance(value, str):
        match = _DURATION_RE.fullmatch(value)
        if match:
            seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            return seconds if math.isfinite(seconds) else None
    return None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an instance stands, as its command line says it (each replaces the file's own):
    its shard (``2/3``, ``ordinal/3``), how many shards check each target, its location."""

    shard: str | None = None
    replicas: int | None = None
    location: str | None = None


AS_WRITTEN = Placement()  # nothing replaced: the file as it is written


def load(path: str | os.PathLike[str], kinds: Mapping[str, KindSpec], *,
         placement: Placement = AS_WRITTEN, found: Found = NOTHING_FOUND, resolve_secrets: bool = True) -> Config:
    """Read and validate a config file; raise :class:`ConfigError` with every problem.
    ``found`` is what discovery had (``Config.discovery.found()``): a unit of discovery that
    cannot be read keeps the groups it had then. Without ``resolve_secrets``, credentials are
    checked for their form (``${NAME}``, a ``*_file`` field, ``{file: path}``) and never read:
    the config's secrets are placeholders, fit for checking, never for running."""
    p = Path(path)
    try:
        text = read_bounded(p, MAX_CONFIG_BYTES)
    except Unreadable as exc:
        raise ConfigError([f"{p}: {exc}"]) from None
    return load_text(text, str(p), kinds, base_dir=p.resolve().parent, placement=placement, found=found,
                     resolve_secrets=resolve_secrets)


def _yaml(text: str) -> Any:
    """Parsed YAML; yaml.YAMLError for bad syntax, aliases and nesting past what can be read.

    With libyaml, the document is built straight from its C parser's events (:func:`_built`),
    so no node graph is made (README, performance section, has what that saves). What the builder does not do itself
    (merge keys, tagged collections, collections as keys, several documents) goes to libyaml's
    loader once the events have been read for the refusals; the pure-Python loader is the
    fallback without libyaml. ``tests/unit/test_config_yaml.py`` holds the builder to
    libyaml's safe loader."""
    if _CSafeLoader is None:
        try:
            return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a SafeLoader subclass
        except RecursionError:
            raise yaml.YAMLError(_TOO_DEEP) from None
    try:
        return _built(text)
    except _HandOver:
        return yaml.load(text, Loader=_CSafeLoader)  # noqa: S506 - libyaml's safe loader; _built refused aliases


def _alias_problem(event: yaml.AliasEvent) -> yaml.YAMLError:
    return yaml.MarkedYAMLError(problem="YAML aliases (*name) are not supported",
                                problem_mark=event.start_mark)  # type: ignore[arg-type]


MAX_DEPTH = 100  # levels of nesting: a config has a handful
_TOO_DEEP = f"nested deeper than a config can be (more than {MAX_DEPTH} levels)"
_CSafeLoader: Any = getattr(yaml, "CSafeLoader", None)
_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_NO_KEY = object()


class _HandOver(Exception):
    """Something the event builder leaves to libyaml's full loader."""


def _built(text: str) -> Any:
    """The document of ``text`` built from libyaml's events with PyYAML's own resolver and
    safe scalar constructors (the same values ``yaml.safe_load`` makes). Every event is read
    for the refusals (aliases, nesting past :data:`MAX_DEPTH`); building stops at the first
    thing it leaves to the loader, and :class:`_HandOver` is raised at the end."""
    resolve = yaml.resolver.Resolver().resolve
    constructor = yaml.constructor.SafeConstructor()
    scalars = constructor.yaml_constructors
    stack: list[list[Any]] = []  # [container, pending mapping key]
    root: Any = _NO_KEY
    depth = documents = 0
    building = True
    for event in yaml.parse(text, Loader=_CSafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise _alias_problem(event)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise yaml.YAMLError(_TOO_DEEP)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            building = building and documents == 1  # libyaml's loader says "expected a single document"
        if not building:
            continue
        value: Any
        if isinstance(event, yaml.ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
            if tag == _STR:
                value = event.value
            elif tag == _MERGE:
                building = False
                continue
            else:
                # marks of libyaml's own type: fine for the constructors' error messages
                node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark,  # type: ignore[arg-type]
                                       event.style)
                value = (scalars.get(tag) or scalars[None])(constructor, node)
        elif isinstance(event, yaml.CollectionStartEvent):
            mapping = isinstance(event, yaml.MappingStartEvent)
            building = event.tag in (None, "!", _MAP if mapping else _SEQ)
            stack.append([{} if mapping else [], _NO_KEY])
            continue
        elif isinstance(event, yaml.CollectionEndEvent):
            value = stack.pop()[0]
        else:
            continue
        if not stack:
            root = value
            continue
        top = stack[-1]
        if type(top[0]) is list:
            top[0].append(value)
        elif top[1] is _NO_KEY:
            if isinstance(value, (dict, list)):
                building = False  # an unhashable key: the loader's own error
                continue
            top[1] = value
        else:
            top[0][top[1]] = value
            top[1] = _NO_KEY
    if not building:
        raise _HandOver
    return None if root is _NO_KEY else root


class _SafeLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, so a 'billion laughs' file cannot expand."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _alias_problem(event)
        return super().compose_node(parent, index)


def load_text(text: str, file: str, kinds: Mapping[str, KindSpec], *, base_dir: Path | None = None,
              placement: Placement = AS_WRITTEN, found: Found = NOTHING_FOUND, resolve_secrets: bool = True) -> Config:
    try:
        raw = _yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{mark.line + 1}:{mark.column + 1}" if mark is not None else "1:1"
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{file}:{at}: not valid YAML ({reason}); fix the syntax"]) from None
    reporter = _Reporter(file, resolve_secrets=resolve_secrets, text=text)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError([f"{file}: the top level must be a mapping with 'targets:', got {_describe(raw)}"])
    config = _parse(raw, reporter, kinds, base_dir or Path.cwd(), found)
    file_spec, file_replicas = _shard_spec(raw.get("shard"), reporter)
    spec = placement.shard if placement.shard is not None else file_spec
    replicas = placement.replicas if placement.replicas is not None else file_replicas
    chosen = None
    if spec is not None:
        try:
            chosen = parse_shard(spec, replicas=replicas)
        except ShardError as exc:
            from_file = placement.shard is None and placement.replicas is None
            reporter.add("", "shard" if from_file else None, f"{exc}")
    location = placement.location
    if location is not None and not _NAME_RE.fullmatch(location):
        reporter.add("", None, f"location {_short(location)!r} is not valid; a site's name: letters, digits, "
                               "'.', '_' or '-'")
    if reporter.problems:
        raise ConfigError(reporter.problems)
    assert config is not None
    config = _located(config, location if location is not None else config.location)
    if chosen is None:
        return replace(config, targets_configured=len(config.targets))
    # Every target was validated above (a problem in one is every shard's); this shard keeps its own.
    return replace(config, targets=tuple(t for t in config.targets if chosen.owns(t.name, t.environment)),
                   shard=chosen, targets_configured=len(config.targets))


def _located(config: Config, location: str | None) -> Config:
    """Every target labelled with the ``location`` it is checked from (a label no target may
    set itself): every ``tta_service_*`` series of this instance carries it."""
    if location is None:
        return config
    targets = tuple(replace(t, labels=tuple(sorted((*t.labels, ("location", location))))) for t in config.targets)
    return replace(config, targets=targets, location=location)


def _shard_spec(value: Any, reporter: _Reporter) -> tuple[str | None, int]:
    """``shard: {index: 2 | ordinal, count: 3, replicas: 2}`` as (``2/3``, 2); None when absent
    or wrong (reported)."""
    if value is None:
        return None, 1
    if not isinstance(value, Mapping) or not {"index", "count"} <= set(value) <= {"index", "count", "replicas"}:
        reporter.add("", "shard", "must be {index: N, count: M} and optionally replicas: R (index may be "
                                  "ordinal, for a StatefulSet's pods)")
        return None, 1
    index, count, replicas = value["index"], value["count"], value.get("replicas", 1)
    if any(isinstance(v, bool) for v in (index, count, replicas)) or not isinstance(count, int) \
            or not isinstance(replicas, int) or not (isinstance(index, int) or index == "ordinal"):
        reporter.add("", "shard", "index, count and replicas must be whole numbers (index may be 'ordinal')")
        return None, 1
    return f"{index}/{count}", replicas


def _parse(raw: Mapping[str, Any], reporter: _Reporter, kinds: Mapping[str, KindSpec], base_dir: Path,
           found: Found = NOTHING_FOUND) -> Config | None:
    top = Fields(raw, "", reporter, base_dir, ())
    listen = top.text("listen", DEFAULT_LISTEN)
    host, port = _split_listen(listen, top)
    environment = top.text("environment", "default", pattern=_NAME_RE,
                          hint="use letters, digits, '.', '_' or '-'")
    concurrency = top.whole("concurrency", 512, minimum=1, maximum=100_000)
    max_body = top.whole("max_body_bytes", 1024 * 1024, minimum=1024, maximum=1024 * 1024 * 1024)

    d = Fields(top.mapping("defaults"), "defaults", reporter, base_dir, ("defaults",))
    defaults = Defaults(
        interval=d.duration("interval", 15.0, minimum=0.1),
        timeout=d.duration("timeout", 5.0, maximum=3600.0),
        retries=d.whole("retries", 0, minimum=0, maximum=10),
        slow_threshold=d.duration("slow_threshold", 1.0, maximum=3600.0),
        failure_threshold=d.whole("failure_threshold", 1, minimum=1, maximum=1000),
        success_threshold=d.whole("success_threshold", 1, minimum=1, maximum=1000),
    )
    if defaults.timeout > defaults.interval:
        d.problem("timeout", f"{format_seconds(defaults.timeout)} is longer than the interval "
                             f"{format_seconds(defaults.interval)}; make the timeout at most the interval")
    d.finish()
    otlp = _parse_otlp(top, reporter, base_dir)

    targets: list[Target] = []
    seen: dict[tuple[str, str], str] = {}
    placed: list[_Placed] = []
    _parse_targets(top.sequence("targets"), reporter, kinds, defaults, environment, base_dir, seen, targets, placed,
                   ("targets",))
    files: list[str] = []
    for pattern in top.sequence("target_files"):
        if not isinstance(pattern, str) or not pattern:
            top.problem("target_files", f"entries must be file paths or globs, got {_describe(pattern)}")
            continue
        matched = sorted(glob.glob(str(base_dir / pattern)))
        if not matched and not glob.has_magic(pattern):
            top.problem("target_files", f"file {pattern!r} does not exist; fix the path or use a glob")
        elif not matched:
            # A glob that matches nothing because its folder cannot be read would make every
            # target in it vanish silently on a reload.
            folder = _fixed_folder(base_dir / pattern)
            try:
                with os.scandir(folder):
                    pass
            except OSError as exc:
                top.problem("target_files", f"folder {str(folder)!r} of {pattern!r} cannot be read "
                                            f"({exc.strerror or type(exc).__name__}); fix it or the pattern")
        files.extend(matched)
    for name in files:
        try:
            file_text = read_bounded(Path(name), MAX_CONFIG_BYTES)
        except Unreadable as exc:
            file_text = None
            unreadable: Unreadable | None = exc
        else:
            unreadable = None
        sub = _Reporter(name, reporter.problems, root=reporter.file, resolve_secrets=reporter.resolve_secrets,
                        text=file_text)
        try:
            if unreadable is not None:
                raise unreadable
            raw_file = _yaml(file_text or "")
        except Unreadable as exc:
            sub.add("", None, f"cannot read targets: {exc}", ())
            continue
        except yaml.YAMLError as exc:
            reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            mark = getattr(exc, "problem_mark", None)
            at = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else f"{name}:1:1"
            sub.problems.append(f"{at}: not valid YAML ({reason}); fix the file or remove it")
            continue
        items = raw_file.get("targets") if isinstance(raw_file, Mapping) else raw_file
        if isinstance(raw_file, Mapping) and set(raw_file) - {"targets"}:
            sub.add("", None, "a target file holds only 'targets:' (or a bare list of targets)", ())
        if not isinstance(items, list):
            sub.add("", None, "must hold a list of targets under 'targets:'", ())
            continue
        _parse_targets(items, sub, kinds, defaults, environment, Path(name).parent, seen, targets, placed,
                       ("targets",) if isinstance(raw_file, Mapping) else ())
    allowed_hosts: list[str] = []
    for entry in top.sequence("allowed_hosts"):
        address = _ip_literal(entry)
        if address is not None:
            allowed_hosts.append(address)
        elif not isinstance(entry, str) or not _HOST_NAME_RE.fullmatch(entry):
            top.problem("allowed_hosts", f"entries must be host names such as otel-health.example or IP "
                                         f"addresses, got {_describe(entry)}")
        else:
            allowed_hosts.append(entry.lower().rstrip("."))
    # Configured targets depend on configured ones only: one that discovery may take away at the
    # next refresh would make the file refuse to load.
    _check_dependencies(placed, seen.keys() - {p.target.key for p in placed})
    static_names = {t.name for t in targets}
    sources = parse_sources(top, reporter, kinds, base_dir)
    discovered = Discovered(tuple(sources))
    if sources and not reporter.problems:
        # A problem in what discovery finds never fails the load: each unit keeps its last good set.
        discovered = expand(sources, found, kinds, defaults, environment, base_dir, list(placed), seen, targets,
                            placed, RESERVED_LABELS)
    windows = [w for p in placed for w in p.windows]
    windows += _parse_maintenance(top, targets, static_names)
    _check_window_names(top, windows)
    max_maintenance = top.duration("max_maintenance", DEFAULT_MAX_MAINTENANCE, minimum=60.0, maximum=366 * 86400.0)
    state_dir = _parse_state_dir(top, base_dir)
    trace_url = top.text("trace_url", pattern=re.compile(r"^https?://[^\s]*\{trace_id\}[^\s]*$"),
                         hint="use a URL with {trace_id}, such as http://jaeger:16686/trace/{trace_id}")
    status = Fields(top.mapping("status_page"), "status_page", reporter, base_dir, ("status_page",))
    status_title = status.text("title", "Service status")
    status_public = status.flag("public", False)
    location = top.text("location", pattern=_NAME_RE, hint="a site's name: letters, digits, '.', '_' or '-'")
    status.finish()
    api_token = top.secret("api_token")
    if api_token is not None and not _TOKEN_RE.fullmatch(api_token.reveal()):
        # What a client sends after "Bearer " is visible ASCII without spaces: nothing else could match.
        top.problem("api_token", "must be a bearer token: visible ASCII, no spaces, not empty; "
                                 "check the variable or the file")
    top.raw("shard")  # read by load_text once every target has been validated
    top.finish()
    return Config(
        path=reporter.file, listen_host=host, listen_port=port, environment=environment,
        concurrency=concurrency, defaults=defaults, targets=tuple(targets), otlp=otlp,
        max_body_bytes=max_body, api_token=api_token, files=(reporter.file, *files),
        allowed_hosts=tuple(allowed_hosts), maintenance=tuple(windows), max_maintenance=max_maintenance,
        state_dir=state_dir, trace_url=trace_url, status_title=status_title, status_public=status_public,
        location=location,
        discovery=discovered,
    )


@dataclass(slots=True)
class _Placed:
    """A parsed target with where it was written, for the checks across targets."""

    target: Target
    reporter: _Reporter
    where: str
    windows: list[Window]
    path: Where | None = None

    def problem(self, field_name: str, message: str) -> None:
        self.reporter.add(self.where, field_name, message, self.path)


def _parse_targets(items: list[Any], reporter: _Reporter, kinds: Mapping[str, KindSpec], defaults: Defaults,
                   environment: str, base_dir: Path, seen: dict[tuple[str, str], str], out: list[Target],
                   placed: list[_Placed], at: Where = ("targets",)) -> None:
    for index, item in enumerate(items):
        where = f"targets[{index}]"
        path: Where = (*at, index)
        if not isinstance(item, Mapping):
            reporter.add(where, None, f"must be a mapping with at least 'name' and 'kind', got {_describe(item)}",
                         path)
            continue
        name = item.get("name")
        if isinstance(name, str) and name:
            where = f"{where} ({_short(name)})"
        windows: list[Window] = []
        target = _parse_target(Fields(item, where, reporter, base_dir, path), kinds, defaults, environment, windows)
        if target is None:
            # it has problems of its own; its name is still a target's, so depending on it is no problem
            env = item.get("environment", environment)
            if isinstance(name, str) and isinstance(env, str):
                seen.setdefault((name, env), where)
            continue
        if target.key in seen:
            reporter.add(where, "name", f"duplicates {seen[target.key]} in environment "
                                        f"{target.environment!r}; give each target a unique name", path)
            continue
        seen[target.key] = f"targets[{index}]" + ("" if reporter.file == reporter.root else f" of {reporter.file}")
        out.append(target)
        placed.append(_Placed(target, reporter, where, windows, path))


# Names people write for a kind, and what to write instead.
_KIND_ALIASES = {"postgresql": "postgres", "pg": "postgres", "psql": "postgres", "https": "http",
                 "http2": "http' with 'http2: true", "h2": "http' with 'http2: true", "bolt": "neo4j",
                 "tcps": "tcp' with 'tls: true", "rediss": "redis' with 'tls: true", "grpcs": "grpc' with 'tls: true",
                 "ping": "tcp", "cron": "heartbeat", "job": "heartbeat"}


def _kind_hint(kind: str, kinds: Mapping[str, KindSpec]) -> str:
    lowered = kind.strip().lower()
    near = lowered if lowered in kinds else _KIND_ALIASES.get(lowered)
    if near is None:
        close = difflib.get_close_matches(lowered, sorted(kinds), n=1, cutoff=0.6)
        near = close[0] if close else None
    return f"; did you mean '{near}'?" if near else ""


def _parse_target(f: Fields, kinds: Mapping[str, KindSpec], defaults: Defaults, environment: str,
                  windows: list[Window]) -> Target | None:
    name = f.text("name", required=True, pattern=_NAME_RE,
                 hint="use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit")
    kind = f.text("kind", required=True)
    if kind is not None and kind not in kinds:
        f.problem("kind", f"unknown kind {_short(kind)!r}{_kind_hint(kind, kinds)} (kinds: {', '.join(sorted(kinds))})")
        f.ignore_rest()  # its other fields are another kind's: saying each is unknown would bury the one line
        return None
    env = f.text("environment", environment, pattern=_NAME_RE, hint="use letters, digits, '.', '_' or '-'")
    interval = f.duration("interval", defaults.interval, minimum=0.1)
    timeout = f.duration("timeout", defaults.timeout, maximum=3600.0)
    retries = f.whole("retries", defaults.retries, minimum=0, maximum=10)
    slow = f.duration("slow_threshold", defaults.slow_threshold, maximum=3600.0)
    critical = f.flag("critical", True)
    failures = f.whole("failure_threshold", defaults.failure_threshold, minimum=1, maximum=1000)
    successes = f.whole("success_threshold", defaults.success_threshold, minimum=1, maximum=1000)
    labels: list[tuple[str, str]] = []
    for key, value in f.mapping("labels").items():
        if not isinstance(key, str) or not _LABEL_RE.fullmatch(key) or key.startswith("__"):
            f.problem("labels", f"label name {_short(str(key))!r} is not a valid Prometheus label name; "
                                "use [a-zA-Z_][a-zA-Z0-9_]*")
        elif key in RESERVED_LABELS:
            f.problem("labels", f"label {key!r} is reserved; choose another name")
        elif kind is not None and key in kinds[kind].info_labels:
            f.problem("labels", f"label {key!r} is what {kind} targets report in tta_service_info; "
                                "choose another name")
        elif isinstance(value, bool) or not isinstance(value, (str, int)):
            # YAML reads `true` or `1.10` as a boolean or a number, not as the text written
            f.problem("labels", f"label {key!r} must be text, got {_describe(value)}; quote it: {key}: "
                                f"'{_short(value if not isinstance(value, bool) else str(value).lower())}'")
        else:
            labels.append((key, str(value)))
    depends_on: list[str] = []
    for entry in f.sequence("depends_on"):
        if not isinstance(entry, str) or not _NAME_RE.fullmatch(entry):
            f.problem("depends_on", f"entries are names of other targets, got {_describe(entry)}")
        elif entry not in depends_on:
            depends_on.append(entry)
    schedules = [(i, _parse_schedule(wf)) for i, wf in f.each("maintenance")]
    if timeout > interval and (f.has("timeout") or f.has("interval")):  # else said once, at defaults
        f.problem("timeout", f"{format_seconds(timeout)} is longer than the interval {format_seconds(interval)}; "
                             "make the timeout at most the interval")
    options = kinds[kind].options_type.parse(f) if kind is not None else None
    f.finish()
    if name is None or kind is None or options is None:
        return None
    for i, parsed in schedules:
        if parsed is not None:
            windows.append(Window(parsed[0] or f"{name}-{i + 1}", parsed[1], frozenset({(name, env)}), parsed[2]))
    return Target(
        name=name, kind=kind, environment=env, interval=interval, timeout=timeout, retries=retries,
        slow_threshold=slow, labels=tuple(sorted(labels)), options=options, critical=critical,
        failure_threshold=failures, success_threshold=successes, depends_on=tuple(depends_on),
    )


def _parse_schedule(f: Fields) -> tuple[str | None, Recurring | OneOff, str] | None:
    """A window's name, schedule and comment (recurring: ``times``/``weekdays``; one-off:
    ``start``/``end``); None when it has problems (reported)."""
    name = f.text("name", pattern=_NAME_RE, hint="use 1-128 letters, digits, '.', '_' or '-'")
    comment = f.text("comment", "")
    location = f.text("location", "UTC")
    where = zone(location)
    if where is None:
        f.problem("location", f"unknown time zone {_short(location)!r}; use an IANA name such as Europe/Berlin "
                              "or UTC")
    recurring, one_off = f.has("times") or f.has("weekdays"), f.has("start") or f.has("end")
    schedule: Recurring | OneOff | None = None
    if recurring and one_off:
        for key in ("times", "weekdays", "start", "end"):
            f.raw(key)
        f.problem(None, "a window is recurring (times, weekdays) or one-off (start, end), not both")
    elif one_off:
        moments = []
        for key in ("start", "end"):
            value = f.raw(key)
            moment = instant(value, where or dt_utc()) if value is not None else None
            if value is None:
                f.problem(key, "is required for a one-off window")
            elif moment is None:
                f.problem(key, f"must be a time such as 2026-12-24T22:00:00Z or 2026-12-24 22:00 (read in "
                               f"'location'), got {_short(value)!r}{gap_hint(value, where or dt_utc())}")
            moments.append(moment)
        start, end = moments
        if start is not None and end is not None:
            if end <= start:
                f.problem("end", "is not after 'start'; a window ends after it starts")
            else:
                schedule = OneOff(start, end)
    elif recurring:
        ranges: list[tuple[int, int]] = []
        for _, tf in f.each("times"):
            bounds = []
            for key in ("start_time", "end_time"):
                value = tf.raw(key)
                minutes = clock_minutes(value) if value is not None else None
                if minutes is None or (key == "start_time" and minutes == DAY):
                    tf.problem(key, f"must be a time of day from 00:00 to {'23:59' if key == 'start_time' else '24:00'}"
                                    f", got {_short(value) if value is not None else 'nothing'}")
                bounds.append(minutes)
            tf.finish()
            if bounds[0] is not None and bounds[1] is not None:
                if bounds[0] == bounds[1]:
                    tf.problem("end_time", "equals start_time: the range is empty (an end before the start "
                                           "runs past midnight)")
                else:
                    ranges.append((bounds[0], bounds[1]))
        days, problem = weekday_set(f.sequence("weekdays")) if f.has("weekdays") else (None, None)
        if problem is not None:
            f.problem("weekdays", problem)
        elif where is not None and (ranges or not f.has("times")):
            schedule = Recurring(tuple(ranges) or ((0, DAY),), days, location)
    else:
        f.problem(None, "give 'start' and 'end' (a one-off window) or 'times' and/or 'weekdays' (a recurring one)")
    f.finish()
    if schedule is None or (one_off and where is None):
        return None
    return name, schedule, comment


def _check_dependencies(placed: list[_Placed], broken: Collection[tuple[str, str]] = ()) -> None:
    """Each dependency names another target of the same environment; no cycles (each reported
    once, on its first target in file order). ``broken``: targets written but with problems of
    their own (reported already): a dependency on one is not unknown."""
    by_key = {p.target.key: p for p in placed}
    names: dict[str, list[str]] = {}
    for p in placed:
        names.setdefault(p.target.environment, []).append(p.target.name)
    edges: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for p in placed:
        target = p.target
        good = []
        for dep in target.depends_on:
            if dep == target.name:
                p.problem("depends_on", f"{dep!r} is this target itself; a target cannot depend on itself")
            elif (dep, target.environment) in broken:
                continue
            elif (dep, target.environment) not in by_key:
                close = difflib.get_close_matches(dep, names.get(target.environment, []), n=1)
                elsewhere = sorted(e for (n, e) in by_key if n == dep)
                hint = (f"; did you mean {close[0]!r}?" if close else
                        f"; it is in environment {elsewhere[0]!r}, and a dependency is in the same environment"
                        if elsewhere else "; name a target of the same environment")
                p.problem("depends_on", f"unknown target {_short(dep)!r} in environment {target.environment!r}{hint}")
            else:
                good.append((dep, target.environment))
        edges[target.key] = good
    order = {p.target.key: i for i, p in enumerate(placed)}
    done: set[tuple[str, str]] = set()
    reported: set[frozenset[tuple[str, str]]] = set()
    for p in placed:
        root = p.target.key
        if root in done:
            continue
        # Depth first, without recursion: a chain may be thousands of targets long.
        path: list[tuple[str, str]] = [root]
        on_path = {root}
        stack = [iter(edges.get(root, ()))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
                continue
            if nxt in on_path:
                cycle = path[path.index(nxt):]
                members = frozenset(cycle)
                if members not in reported:
                    reported.add(members)
                    first = min(cycle, key=order.__getitem__)
                    at = cycle.index(first)
                    ordered = cycle[at:] + cycle[:at]
                    shown = " → ".join(n for n, _ in [*ordered, ordered[0]])
                    by_key[first].problem("depends_on", f"cycle {shown}; remove one of these dependencies")
                continue
            if nxt in done:
                continue
            path.append(nxt)
            on_path.add(nxt)
            stack.append(iter(edges.get(nxt, ())))


def _parse_maintenance(top: Fields, targets: list[Target], names: set[str]) -> list[Window]:
    """The top-level windows: on every target, on ``targets`` (``names`` of configured
    targets, in any environment) or on the targets whose labels (``service``, ``environment``,
    ``kind`` and their own) match every pair of ``match``. A discovered target is not named:
    it may go at the next refresh, and the config with it; ``match`` finds it."""
    windows = []
    for i, f in top.each("maintenance"):
        listed = f.sequence("targets") if f.has("targets") else None
        match = f.mapping("match") if f.has("match") else None
        keys: frozenset[tuple[str, str]] | None = None
        if listed is not None and match is not None:
            f.problem(None, "give 'targets' or 'match', not both")
        elif listed is not None:
            wanted = set()
            for entry in listed:
                if not isinstance(entry, str) or entry not in names:
                    close = difflib.get_close_matches(str(entry), sorted(names), n=1) if isinstance(entry, str) else []
                    discovered = any(t.name == entry for t in targets)
                    f.problem("targets", f"unknown target {_short(entry)!r}" + (
                        "; it is discovered: choose discovered targets by their labels with 'match'" if discovered
                        else f"; did you mean {close[0]!r}?" if close else "; list configured targets"))
                else:
                    wanted.add(entry)
            keys = frozenset(t.key for t in targets if t.name in wanted)
        elif match is not None:
            pairs = {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in match.items()}
            keys = frozenset(t.key for t in targets
                             if all(attributes_of(t).get(k) == v for k, v in pairs.items()))
            if not pairs:
                f.problem("match", "is empty; leave out 'match' for a window on every target")
        parsed = _parse_schedule(f)
        if parsed is not None:
            windows.append(Window(parsed[0] or f"maintenance-{i + 1}", parsed[1], keys, parsed[2]))
    return windows


def _check_window_names(top: Fields, windows: list[Window]) -> None:
    seen: set[str] = set()
    for window in windows:
        if window.name in seen:
            top.problem("maintenance", f"window name {window.name!r} is used twice; give each window its own "
                                       "'name' (Alertmanager's time intervals are named by it)")
        seen.add(window.name)


def _parse_state_dir(top: Fields, base_dir: Path) -> Path | None:
    value: str | None = top.text("state_dir")
    if value is None:
        return None
    path = (base_dir / value).resolve()
    if path.exists() and not path.is_dir():
        top.problem("state_dir", f"{str(path)!r} exists and is not a directory; give a directory")
    elif not path.exists() and not path.parent.is_dir():
        top.problem("state_dir", f"the parent of {str(path)!r} does not exist; create it or give another directory")
    return path


KEEP_PERCENT_ENV, KEEP_SALT_ENV = "OTEL_HEALTH_KEEP_PERCENT", "OTEL_HEALTH_KEEP_SALT"


def _keep_settings(f: Fields | None, reporter: _Reporter) -> tuple[float, str]:
    """The share of healthy checks' traces kept, and the salt that picks them: from the
    config, else from the variables otel-collector.yaml reads too, else the Collector's defaults."""
    percent: Any = f.raw("keep_percent") if f is not None else None
    where = "otlp" if percent is not None else None
    if percent is None:
        percent = os.environ.get(KEEP_PERCENT_ENV, "").strip() or 1.0
    try:
        value = float(percent) if not isinstance(percent, bool) else -1.0
    except (TypeError, ValueError):
        value = -1.0
    if not 0.0 <= value <= 100.0:  # also NaN
        if where:
            reporter.add(where, "keep_percent", f"must be a percentage from 0 to 100, got {_short(percent)}",
                         ("otlp",))
        else:
            reporter.add("", None, f"environment variable {KEEP_PERCENT_ENV} must be a percentage from 0 to 100, "
                                   f"got {_short(percent)!r}; fix or unset it")
        value = 1.0
    salt: str | None = f.text("keep_salt") if f is not None else None
    if salt is None:
        salt = os.environ.get(KEEP_SALT_ENV, "") or "default-hash-seed"
    return value, salt


def _parse_otlp(top: Fields, reporter: _Reporter, base_dir: Path) -> OtlpSettings:
    if not top.has("otlp"):
        top.mapping("otlp")
        percent, salt = _keep_settings(None, reporter)
        return OtlpSettings(keep_percent=percent, keep_salt=salt)
    f = Fields(top.mapping("otlp"), "otlp", reporter, base_dir, ("otlp",))
    endpoint = f.text("endpoint", pattern=re.compile(r"https?://[^\s/]+\S*"),
                     hint="use a URL such as http://127.0.0.1:4318")
    protocol = f.text("protocol", choices=("grpc", "http/protobuf"))
    export_interval = f.duration("export_interval", 0.0, minimum=0.1, maximum=3600.0) or None
    shutdown_timeout = f.duration("shutdown_timeout", 3.0, minimum=0.1, maximum=60.0)
    headers: list[tuple[str, Secret | str]] = []
    for key, value in f.mapping("headers").items():
        secret = f.resolve_secret(f"headers.{key}", value)
        if secret is not None:
            headers.append((str(key), secret))
    percent, salt = _keep_settings(f, reporter)
    f.finish()
    return OtlpSettings(endpoint=endpoint, protocol=protocol, export_interval=export_interval,
                        headers=tuple(headers), shutdown_timeout=shutdown_timeout, keep_percent=percent,
                        keep_salt=salt)


def _fixed_folder(pattern: Path) -> Path:
    """The deepest folder of ``pattern`` without glob characters."""
    parts = pattern.parts
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            return Path(*parts[:i]) if i else Path(".")
    return pattern.parent


def split_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv6 host in brackets) as (host, port); ValueError when it is not one.
    Port 0 is allowed: the system picks a free port."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"must be HOST:PORT such as {DEFAULT_LISTEN}, got {_short(text)!r}")
    return host, int(port_text)


def _ip_literal(entry: Any) -> str | None:
    """``entry`` as a normalised IP address (``[::1]`` or ``::1``), or None."""
    if not isinstance(entry, str):
        return None
    try:
        return str(ipaddress.ip_address(entry.strip("[]")))
    except ValueError:
        return None


def _split_listen(listen: str, f: Fields) -> tuple[str, int]:
    try:
        return split_host_port(listen)
    except ValueError as exc:
        f.problem("listen", str(exc))
        return "127.0.0.1", 8090


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    return f"{type(value).__name__} {_short(repr(value))}"


def _short(value: Any, limit: int = 60) -> str:
    text = str(value).replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_seconds(seconds: float) -> str:
    """A duration as a config would write it: 250ms, 90s, 15m, 24h."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"

