"""The field reader: one mapping of a config file read field by field, every problem
collected as one line (``file:line:col: where: field 'F': what is wrong; what would be
right``) instead of raised, so a whole file is checked in one pass.

Credentials are accepted only by reference (``${ENV_VAR}``, a ``*_file`` path, or
``{file: path}``) and resolved into :class:`Secret` values that never print themselves. A
kind that fills values in as it runs (a suite's ``$(step.value)``) accepts them through a
:class:`LateValues` hook."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .._files import Unreadable, read_bounded
from .values import ENV_REF_RE, describe, format_seconds, parse_duration, short
from .yamldoc import Where, marks_of

__all__ = ["MAX_SECRET_BYTES", "ConfigError", "Fields", "LateValues", "Read", "Reporter", "Secret"]

MAX_SECRET_BYTES = 64 * 1024


class ConfigError(Exception):
    """A configuration that cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class LateValues(Protocol):
    """Values a kind fills in as its check runs (a suite's ``$(step.value)``), which a field
    that takes a credential accepts in its place."""

    @property
    def source(self) -> str:
        """What a Secret made of one says it came from: safe to show."""
        ...

    def refers(self, text: str) -> bool:
        """Whether ``text`` refers to such a value."""
        ...

    def known(self, fields: Fields, name: str, text: str) -> bool:
        """Whether every reference in ``text`` can be filled in; each one that cannot is
        reported on ``fields`` (field ``name``)."""
        ...


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


class Reporter:
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
        # Set to a list to have every field read noted in it (the configuration reference is
        # made so: scripts/config_reference.py); a reader then also opens absent sections.
        self.reads: list[Read] | None = None

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
            self._marks = marks_of(self._text)
        marks = self._marks
        if field_name is not None:
            for key in ((*path, *field_name.split(".")), (*path, field_name)):
                if key in marks:
                    return marks[key]
        key = path
        while key and key not in marks:
            key = key[:-1]
        return marks.get(key, (1, 1))


@dataclass(frozen=True, slots=True)
class Read:
    """One field as the loader reads it: where, its name, its type and default, its bounds."""

    at: Where
    name: str
    type: str
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None


_MISSING: Any = object()


class Fields:
    """Reads one mapping of a config file, collecting problems instead of raising.

    Each getter returns a usable value even when the input is wrong (the default), so a
    whole file is checked in one pass. :meth:`finish` reports keys nobody asked for.
    """

    def __init__(self, raw: Mapping[str, Any], where: str, reporter: Reporter, base_dir: Path,
                 path: Where = ()) -> None:
        self._raw = raw
        self._where = where
        self._path = path
        self._reporter = reporter
        self._base_dir = base_dir
        self._seen: set[str] = set()
        self._asked: set[str] = set()  # fields only asked about (has): known to did-you-mean too
        # Values filled in as the check runs, accepted where a credential is: set by a kind
        # that makes them (a suite step's ``$(step.value)``, see ``probes.suite``).
        self.late: LateValues | None = None

    @property
    def at(self) -> Where:
        """The path from the document's root to this mapping."""
        return self._path

    def problem(self, name: str | None, message: str) -> None:
        self._reporter.add(self._where, name, message, self._path)

    def _note(self, name: str, type_: str, default: Any = None, **bounds: Any) -> None:
        reads = self._reporter.reads
        if reads is not None:
            at = tuple("[]" if isinstance(part, int) else part for part in self._path)
            reads.append(Read(at, name, type_, None if default is _MISSING else default, **bounds))

    @property
    def empty(self) -> bool:
        """Whether the mapping holds no field at all."""
        return not self._raw

    @property
    def resolves_secrets(self) -> bool:
        """Whether credentials are read (a check of a config's form only leaves them unread)."""
        return self._reporter.resolve_secrets

    def has(self, name: str) -> bool:
        self._note(name, "")  # a field asked about: its getter, when one runs, says its type
        self._asked.add(name)
        return name in self._raw

    def raw(self, name: str) -> Any:
        """The value as written (None when absent), for fields with a shape of their own."""
        self._note(name, "value")
        self._seen.add(name)
        return self._raw.get(name)

    def sub(self, name: str) -> Fields | None:
        """A reader for a nested mapping, or None when the field is absent or wrong."""
        value = self.mapping(name)
        if not value and self._reporter.reads is None:
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
        self._note(name, "text", default, required=required, choices=choices)
        value = self._get(name, default, required)
        if value is _MISSING or value is default:
            return None if value is _MISSING else value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.problem(name, f"must be a string, got {describe(value)}")
            return default
        value = str(value)
        if ENV_REF_RE.fullmatch(value.strip()):
            self.problem(name, "does not take ${...} references; only credential fields do")
            return default
        if choices is not None and value not in choices:
            self.problem(name, f"must be one of {', '.join(choices)}, got {short(value)!r}")
            return default
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(name, f"{short(value)!r} is not valid{'; ' + hint if hint else ''}")
            return default
        return value

    def duration(self, name: str, default: float, *, minimum: float = 0.001, maximum: float = 86400.0) -> float:
        self._note(name, "duration", default, minimum=minimum, maximum=maximum)
        value = self._get(name, default, False)
        if value is default:
            return float(default)
        seconds = parse_duration(value)
        if seconds is None:
            self.problem(name, f"must be a duration such as 5s, 250ms or 1m, got {short(value)!r}")
            return default
        if not minimum <= seconds <= maximum:
            self.problem(name, f"must be between {format_seconds(minimum)} and {format_seconds(maximum)}, "
                               f"got {short(value)!r}")
            return default
        return seconds

    def whole(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        self._note(name, "whole number", default, minimum=minimum, maximum=maximum)
        value = self._get(name, default, False)
        # absent; a value given is checked even when it is the default's own object (CPython
        # caches small ints: -1 written in the file is the -1 a kind passes as "not given")
        if value is default and self._raw.get(name) is None:
            return int(default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(name, f"must be a whole number from {minimum} to {maximum}, got {short(value)!r}")
            return default
        if not minimum <= value <= maximum:
            self.problem(name, f"must be from {minimum} to {maximum}, got {value}")
            return default
        return int(value)

    def ratio(self, name: str, default: float) -> float:
        """A share from 0 to 1, written as a number (``0.25``) or a percentage (``"25%"``)."""
        self._note(name, "ratio (0.25 or 25%)", default, minimum=0, maximum=1)
        value = self._get(name, default, False)
        if value is default:
            return float(default)
        share: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            share = float(value)
        elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*%\s*", value):
            share = float(value.strip().rstrip("%")) / 100
        if share is None or not 0 <= share <= 1:
            self.problem(name, f"must be a share from 0 to 1 or a percentage such as 20%, got {short(value)!r}")
            return default
        return share

    def flag(self, name: str, default: bool) -> bool:
        self._note(name, "true/false", default)
        value = self._get(name, default, False)
        if value is default:
            return bool(default)
        if not isinstance(value, bool):
            self.problem(name, f"must be true or false, got {short(value)!r}")
            return default
        return bool(value)

    def mapping(self, name: str) -> dict[str, Any]:
        self._note(name, "mapping")
        value = self._get(name, None, False)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(name, f"must be a mapping of names to values, got {describe(value)}")
            return {}
        return dict(value)

    def sequence(self, name: str) -> list[Any]:
        self._note(name, "list")
        value = self._get(name, None, False)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(name, f"must be a list, got {describe(value)}")
            return []
        return value

    def each(self, name: str) -> Iterator[tuple[int, Fields]]:
        """A reader for each mapping in the list ``name``; an entry that is not one is reported."""
        self._note(name, "list of mappings")
        items = self.sequence(name)
        if not items and self._reporter.reads is not None:
            items = [{}]  # noting reads: what one entry holds
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                self.problem(name, f"entry {index} must be a mapping, got {describe(item)}")
                continue
            where = f"{self._where}: {name}[{index}]" if self._where else f"{name}[{index}]"
            if isinstance(item.get("name"), str) and item["name"]:
                where += f" ({short(item['name'])})"
            yield index, Fields(item, where, self._reporter, self._base_dir, (*self._path, name, index))

    def path(self, name: str) -> Path | None:
        self._note(name, "file path")
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
        self._note(name, "credential", required=required)
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
        match = ENV_REF_RE.fullmatch(value.strip()) if isinstance(value, str) else None
        if match is None and self.late is not None and isinstance(value, str) and self.late.refers(value):
            return Secret(value, self.late.source) if self.late.known(self, name, value) else None
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
            self.problem(key, f"must be a file path, got {describe(value)}")
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
        known = sorted(self._seen | self._asked)
        for key in self._raw:
            if key in self._seen:
                continue
            key_text = short(str(key))
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known fields: {', '.join(known)}"
            self._reporter.add(self._where, None, f"unknown field '{key_text}'{hint}", (*self._path, str(key)))
