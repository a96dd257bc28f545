"""Probe kinds, one module each, all behind :meth:`Probe.run`.

``PROBES`` is the one registry of kinds: the config loader validates ``kind`` against it
and the collector dispatches through it. Nothing outside this package knows a protocol.
"""

from __future__ import annotations

from ._base import Attempt, Probe, ProbeSettings
from .http import HttpProbe
from .neo4j import Neo4jProbe
from .postgres import PostgresProbe
from .redis import RedisProbe
from .tcp import TcpProbe

__all__ = ["PROBES", "Attempt", "Probe", "ProbeSettings"]

PROBES: dict[str, type[Probe]] = {
    HttpProbe.kind: HttpProbe,
    TcpProbe.kind: TcpProbe,
    RedisProbe.kind: RedisProbe,
    PostgresProbe.kind: PostgresProbe,
    Neo4jProbe.kind: Neo4jProbe,
}
