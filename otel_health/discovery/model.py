"""What discovery is made of and what it leaves: sources as the config writes them, target
groups, the endpoints' answers, and each source's status after a load. Plain data: the
config's model holds it (``Config.discovery``); nothing here reads or fetches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a name in annotations only: the config's model imports this module
    from ..config.fields import Secret

__all__ = [
    "FILE_REFRESH",
    "FORMATS",
    "HTTP_REFRESH",
    "HTTP_TIMEOUT",
    "MAX_AGE_CAP",
    "MAX_LABELS",
    "MAX_LABEL_NAME",
    "MAX_LABEL_VALUE",
    "MAX_SD_BYTES",
    "MAX_TARGETS",
    "NONE_DISCOVERED",
    "NOTHING_FOUND",
    "Answer",
    "Discovered",
    "FileSd",
    "Found",
    "Group",
    "HttpSd",
    "Source",
    "SourceStatus",
]


FILE_REFRESH = 300.0  # seconds: a file is re-read this often even when its stamp is unchanged


HTTP_REFRESH = 60.0  # seconds between two polls of an endpoint (Prometheus' default)


HTTP_TIMEOUT = 10.0


MAX_SD_BYTES = 16 * 1024 * 1024  # an endpoint's answer or a file, at most (16 MiB: ~100,000 targets)


MAX_AGE_CAP = 3600.0  # Cache-Control: max-age lengthens the poll interval up to this


# What one source may bring in: past any of these, a unit is bad and keeps its last good groups.
# One process checks about 20,000 targets (docs/discovery-and-scaling.md, "Scaling"): a source stays within half of it.
MAX_TARGETS = 10_000  # targets a source makes (max_targets)


MAX_LABELS = 32  # labels of a group


MAX_LABEL_NAME = 128  # characters of a label name


MAX_LABEL_VALUE = 1024  # characters of a label value


FORMATS = {".json": "json", ".yml": "yaml", ".yaml": "yaml"}


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
