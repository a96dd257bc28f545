"""otel-health: an OpenTelemetry-native health collector for a service stack."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
