"""Probe kinds, one module each, all behind :meth:`Probe.run`.

``PROBES`` is the one registry of kinds: the config loader validates ``kind`` against it
and the collector dispatches through it. Nothing outside this package knows a protocol.
"""

from __future__ import annotations

from ._base import Attempt, Probe, ProbeSettings
from .http import HttpProbe
from .tcp import TcpProbe

__all__ = ["PROBES", "Attempt", "Probe", "ProbeSettings"]

PROBES: dict[str, type[Probe]] = {
    HttpProbe.kind: HttpProbe,
    TcpProbe.kind: TcpProbe,
}
