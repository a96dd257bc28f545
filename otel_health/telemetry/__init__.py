"""The telemetry pipeline: a check's result in OpenTelemetry, and the two ways out.

```
StateStore ─► StateFamilies (families.py) ──────────────┬──► BridgeReader (bridge.py) ─► /metrics
                      │ observable callbacks            │
CheckResult ─► Telemetry (instruments.py): meters, spans├──► PushReader (push.py) ─► OTLP metrics
                      │ light spans (traces.py)         │       exporters (otlp.py) ─► wire.py
                      └─► kept? ─► BatchSpanProcessor ──┴──► OTLP traces
```

- ``instruments``: the instrument and span contract (:class:`Telemetry`): every
  instrument's name, the root span and its attributes.
- ``families``: the per-target state gauges, read from the state store when a reader asks.
- ``bridge``: the Prometheus renderer behind ``/metrics``.
- ``traces``: light spans, and the keep decision taken when a check's root span ends (as
  the Collector's tail sampling takes it); only kept traces become SDK spans.
- ``push``: the periodic OTLP metric reader; ``otlp`` (with ``_otlp_http`` and
  ``_otlp_grpc``): which exporters the settings ask for; ``wire``: the OTLP encoder.

Readers and exporters are built first and handed what they read when they are made; the
collector only wires (``otel_health.collector``).
"""

from __future__ import annotations

from .bridge import CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, BridgeReader
from .families import STATE_FAMILIES, StateFamilies, StateFamily
from .instruments import CHECK_DURATION_BUCKETS, LAG_BUCKETS, Telemetry
from .otlp import OtlpPlan
from .own import ExportFailures
from .push import PushReader
from .resource import SCOPE, cardinality_limits, make_resource
from .traces import KeepPolicy

__all__ = [
    "CHECK_DURATION_BUCKETS",
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_TEXT",
    "LAG_BUCKETS",
    "SCOPE",
    "STATE_FAMILIES",
    "BridgeReader",
    "ExportFailures",
    "KeepPolicy",
    "OtlpPlan",
    "PushReader",
    "StateFamilies",
    "StateFamily",
    "Telemetry",
    "cardinality_limits",
    "make_resource",
]
