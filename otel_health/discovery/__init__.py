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
had that were good, and says so in :class:`~.model.SourceStatus`. The collector counts it in
``otel_health_discovery_*`` and logs each new problem once.

The modules, bottom up: :mod:`.model` (plain data, which ``Config.discovery`` holds),
:mod:`.groups` (target groups read, with bounds), :mod:`.endpoints` (the event loop's side:
files' stamps and endpoints fetched) and :mod:`.sources` (the loader's side: the
``discovery:`` entries and the targets they make, validated by the config's own target
parser). Reading happens in the loader (off the event loop, in a process of its own in
``run``); a change goes through the collector's reload.

This package's ``__init__`` imports only :mod:`.model`: the config's model imports it, and
the config's leaves are what the other modules import.
"""

from .model import (
    NONE_DISCOVERED,
    NOTHING_FOUND,
    Answer,
    Discovered,
    FileSd,
    Found,
    Group,
    HttpSd,
    Source,
    SourceStatus,
)

__all__ = [
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
