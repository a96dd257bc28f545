"""Reading a process's CPU time and memory from /proc, and otel-health's own numbers."""

from __future__ import annotations

import os
import statistics
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (children not included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and every process under it, the ones that ended and
    were waited for included (a browser's page processes come and go: each one's time is in the
    c-times of the living parent that reaped it)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(f) for f in fields[11:15]) / _TICKS

    def under(p: int) -> bool:
        for _ in range(64):
            if p == pid:
                return True
            if p not in parents or p <= 1:
                return False
            p = parents[p]
        return False

    return sum(t for p, t in times.items() if under(p))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
        return response.read().decode()


def checks_total(text: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(text) if f.name == "tta_service_checks"
               for s in f.samples if s.name == "tta_service_checks_total")


def lag_buckets(text: str) -> dict[float, float]:
    return {float(s.labels["le"]): s.value for f in text_string_to_metric_families(text)
            if f.name == "otel_health_scheduler_lag_seconds" for s in f.samples if s.name.endswith("_bucket")}


def quantile(buckets_before: dict[float, float], buckets_after: dict[float, float], q: float) -> float:
    """Upper bound of the bucket holding quantile ``q`` of the observations between two scrapes."""
    bounds = sorted(buckets_after)
    deltas = [buckets_after[b] - buckets_before.get(b, 0.0) for b in bounds]
    total = deltas[-1] if deltas else 0
    if not total:
        return 0.0
    for bound, count in zip(bounds, deltas, strict=True):
        if count >= q * total:
            return bound
    return bounds[-1]


def share_above(buckets_before: dict[float, float], buckets_after: dict[float, float], bound: float) -> float:
    """Share of the observations between two scrapes above ``bound`` (a bucket bound): exact."""
    total = buckets_after.get(float("inf"), 0.0) - buckets_before.get(float("inf"), 0.0)
    within = buckets_after.get(bound, 0.0) - buckets_before.get(bound, 0.0)
    return (total - within) / total if total else 0.0


def summary(values: list[float], fmt: str = "{:.3f}") -> str:
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"
