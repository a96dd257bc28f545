"""What a loaded config is: plain, frozen data. Probes, the scheduler and the server read
it; only the loader makes it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..announcements import Announcement
from ..discovery.model import NONE_DISCOVERED, Discovered
from ..domains import BOOTSTRAP_URL
from ..sharding import Shard
from ..suppression import Window
from .fields import Fields, Secret
from .slo import Slo

__all__ = [
    "AS_WRITTEN",
    "DEFAULT_MAX_MAINTENANCE",
    "RESERVED_LABELS",
    "Config",
    "Defaults",
    "KindOptions",
    "KindSpec",
    "OtlpSettings",
    "Placement",
    "Target",
    "attributes_of",
]


# Labels every tta_service_* series already carries, or that the contract reserves.
RESERVED_LABELS = frozenset(
    {"service", "environment", "kind", "outcome", "error_type", "version", "status_code",
     "phase", "reason", "depends_on", "registered_domain", "slo_window", "slo_count", "slo_suppressed", "le",
     "quantile", "job", "instance", "location"}
)


DEFAULT_MAX_MAINTENANCE = 24 * 3600.0


class KindOptions(Protocol):
    """What a probe kind declares about its own options (see ``probes``)."""

    @classmethod
    def parse(cls, fields: Fields) -> KindOptions: ...

    def secrets(self) -> Iterator[Secret]: ...

    def public(self) -> dict[str, Any]: ...


class KindSpec(Protocol):
    """A kind as the rest of the program knows it: the class attributes of its ``Probe``
    (``probes.PROBES`` maps each kind's name to it). The loader reads its options type and
    the labels it reports; ``/health`` how it names the kind's check."""

    @property
    def options_type(self) -> Any: ...

    @property
    def info_labels(self) -> tuple[str, ...]: ...

    @property
    def component_type(self) -> str: ...

    @property
    def check_name(self) -> str: ...

    @property
    def discoverable(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Defaults:
    interval: float = 15.0
    timeout: float = 5.0
    retries: int = 0
    slow_threshold: float = 1.0
    failure_threshold: int = 1
    success_threshold: int = 1
    slo: Slo | None = None  # every target's, unless its own says otherwise


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
    domain_expiry: str | None = None  # a name whose registration's expiry is watched (RDAP)
    slo: Slo | None = None  # its objective: the checks that count toward its error budget

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
    # Healthy checks' traces kept, in percent, picked by trace id with this salt
    # (OTEL_HEALTH_KEEP_PERCENT/_SALT). Decided here only: every trace sent is marked
    # tta.check.kept, which the Collector's tail sampling keeps (otel-collector.yaml).
    keep_percent: float = 1.0
    keep_salt: str = "default-hash-seed"
    # The Collector's own /metrics (its telemetry, port 8888): read to notice traces it drops.
    collector_metrics: str | None = None
    collector_metrics_interval: float = 30.0


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
    history_days: int = 90  # days the history store in state_dir keeps
    trace_url: str | None = None  # a trace's page in a UI, with {trace_id}: the status page links to it
    status_title: str = "Service status"
    status_public: bool = False  # with api_token set, the status page is open to anyone all the same
    shard: Shard | None = None  # this instance's shard: ``targets`` holds only the targets it checks
    location: str | None = None  # where this instance checks from: a ``location`` label on every target
    targets_configured: int = 0  # targets in the configuration, on every shard
    discovery: Discovered = NONE_DISCOVERED  # the discovery sources, their last good groups and status
    rdap_bootstrap_url: str = BOOTSTRAP_URL  # where the registries' RDAP services are listed (domain_expiry)
    announcements: tuple[Announcement, ...] = ()  # the status page's notes the config writes


def attributes_of(target: Target) -> dict[str, str]:
    """The labels every series of ``target`` carries: service, environment, kind and its own."""
    return {"service": target.name, "environment": target.environment, "kind": target.kind, **dict(target.labels)}


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an instance stands, as its command line says it (each replaces the file's own):
    its shard (``2/3``, ``ordinal/3``), how many shards check each target, its location."""

    shard: str | None = None
    replicas: int | None = None
    location: str | None = None


AS_WRITTEN = Placement()  # nothing replaced: the file as it is written
