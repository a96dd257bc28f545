"""The ``otlp:`` section: where the Collector is, how often to push, which healthy checks'
traces are kept (decided here; the Collector keeps what is marked so), and where the
Collector's own metrics are read to notice a Collector that drops them anyway."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .fields import Fields, Reporter, Secret
from .model import OtlpSettings
from .values import short

__all__ = ["COLLECTOR_METRICS_ENV", "KEEP_PERCENT_ENV", "KEEP_SALT_ENV", "parse_otlp"]


KEEP_PERCENT_ENV, KEEP_SALT_ENV = "OTEL_HEALTH_KEEP_PERCENT", "OTEL_HEALTH_KEEP_SALT"
COLLECTOR_METRICS_ENV = "OTEL_HEALTH_COLLECTOR_METRICS"
_URL = re.compile(r"https?://[^\s/]+\S*")


def _collector_metrics(f: Fields | None) -> str | None:
    """``collector_metrics`` from the config, else its variable (set by whoever runs the Collector)."""
    written = f.text("collector_metrics", pattern=_URL,
                     hint="use the Collector's telemetry URL, such as http://127.0.0.1:8888/metrics") \
        if f is not None else None
    if written is None and f is not None and f.has("collector_metrics"):
        return None  # wrong, and said
    from_env = os.environ.get(COLLECTOR_METRICS_ENV, "").strip()
    return written or (from_env if _URL.fullmatch(from_env) else None)


def _keep_settings(f: Fields | None, reporter: Reporter) -> tuple[float, str]:
    """The share of healthy checks' traces kept, and the salt that picks them: from the
    config, else from the variables, else 1% with the tail sampling processor's default salt."""
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
            reporter.add(where, "keep_percent", f"must be a percentage from 0 to 100, got {short(percent)}",
                         ("otlp",))
        else:
            reporter.add("", None, f"environment variable {KEEP_PERCENT_ENV} must be a percentage from 0 to 100, "
                                   f"got {short(percent)!r}; fix or unset it")
        value = 1.0
    salt: str | None = f.text("keep_salt") if f is not None else None
    if salt is None:
        salt = os.environ.get(KEEP_SALT_ENV, "") or "default-hash-seed"
    return value, salt


def parse_otlp(top: Fields, reporter: Reporter, base_dir: Path) -> OtlpSettings:
    if not top.has("otlp"):
        top.mapping("otlp")
        percent, salt = _keep_settings(None, reporter)
        return OtlpSettings(keep_percent=percent, keep_salt=salt, collector_metrics=_collector_metrics(None))
    f = Fields(top.mapping("otlp"), "otlp", reporter, base_dir, ("otlp",))
    endpoint = f.text("endpoint", pattern=_URL,
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
    collector_metrics = _collector_metrics(f)
    watch_interval = f.duration("collector_metrics_interval", 30.0, minimum=1.0, maximum=3600.0)
    f.finish()
    return OtlpSettings(endpoint=endpoint, protocol=protocol, export_interval=export_interval,
                        headers=tuple(headers), shutdown_timeout=shutdown_timeout, keep_percent=percent,
                        keep_salt=salt, collector_metrics=collector_metrics,
                        collector_metrics_interval=watch_interval)
