"""Who is speaking: the SDK's resource with this instance's identity (a fresh
``service.instance.id``, its shard and location), the meter's scope, and reader limits roomy
enough that no target's series fold into the SDK's overflow series."""

from __future__ import annotations

import os
import uuid
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .. import __version__
from ..sharding import Shard

__all__ = ["INSTRUMENT_TYPES", "METER_NAME", "SCOPE", "cardinality_limits", "make_resource"]

METER_NAME = "otel_health"
SCOPE = InstrumentationScope(METER_NAME, __version__)  # the meter's scope
# Every kind of instrument the SDK has: what a reader's per-instrument settings are keyed by.
INSTRUMENT_TYPES: tuple[type, ...] = (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter,
                                      ObservableGauge)


def cardinality_limits(targets: int = 10_000) -> dict[type, int]:
    """Per-reader limits roomy enough that no target's series fold into the overflow series."""
    limit = max(200_000, targets * 20)
    return dict.fromkeys(INSTRUMENT_TYPES, limit)


def make_resource(shard: Shard | None = None, location: str | None = None) -> Resource:
    """The SDK's resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES honoured) plus our identity.

    ``service.instance.id`` is a fresh UUID unless given, so two replicas never write the
    same series on the Collector path (it becomes their ``instance`` label). A sharded
    instance says which shard it is (``otel_health.shard.index``, ``otel_health.shard.count``),
    and one with a ``location`` where it checks from (``otel_health.location``).
    """
    from_env = Resource.create()
    ours: dict[str, Any] = {"service.name": "otel-health", "service.version": __version__,
                            "service.instance.id": str(uuid.uuid4())}
    if shard is not None:
        ours |= {"otel_health.shard.index": shard.index, "otel_health.shard.count": shard.count,
                 "otel_health.shard.replicas": shard.replicas}
    if location is not None:
        ours["otel_health.location"] = location
    explicit = {k for k in ("service.name",) if os.environ.get("OTEL_SERVICE_NAME")}
    explicit |= {pair.split("=", 1)[0].strip() for pair in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")
                 if "=" in pair}
    return from_env.merge(Resource({k: v for k, v in ours.items() if k not in explicit}))
