"""Prometheus, scraping what a test points it at, with rules and Alertmanager when asked."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..procs import Process, free_port, wait_until
from .common import get_json, http_ok, require

__all__ = ["Prometheus", "start_prometheus"]


# -- Prometheus -----------------------------------------------------------------------------
@dataclass
class Prometheus:
    port: int
    sd_dir: Path
    process: Process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def scrape(self, job: str, port: int, *, timeout: float = 30.0) -> None:
        """Scrape 127.0.0.1:port as ``job`` (every second) and wait for the first good scrape."""
        tmp = self.sd_dir / f".{job}.json"
        tmp.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"job": job}}]))
        tmp.rename(self.sd_dir / f"{job}.json")

        def scraped() -> bool:
            targets = get_json(f"{self.url}/api/v1/targets?state=active")["data"]["activeTargets"]
            return any(t["labels"].get("job") == job and t["health"] == "up"
                       and t["scrapeUrl"].startswith(f"http://127.0.0.1:{port}/") for t in targets)

        wait_until(scraped, timeout=timeout, what=f"Prometheus scraping job {job} on port {port}", interval=0.2)

    def unscrape(self, job: str) -> None:
        (self.sd_dir / f"{job}.json").unlink(missing_ok=True)

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query, now or ``at`` (Unix time)."""
        q = urllib.parse.urlencode({"query": promql, **({"time": f"{at:.3f}"} if at is not None else {})})
        body = get_json(f"{self.url}/api/v1/query?{q}")
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
        body = get_json(f"{self.url}/api/v1/query_range?{q}")
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def series(self, match: str) -> list[dict[str, str]]:
        q = urllib.parse.urlencode({"match[]": match})
        return list(get_json(f"{self.url}/api/v1/series?{q}")["data"])

    def reload(self) -> None:
        """Read the config and rule files again (``/-/reload``); raises when Prometheus refuses them."""
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200

    def stop(self) -> None:
        self.process.stop()


def start_prometheus(workdir: Path, config_text: str | None = None, *, extra_args: tuple[str, ...] = (),
                     retention: str = "1h") -> Prometheus:
    """Prometheus with file-based discovery (see :meth:`Prometheus.scrape`), or ``config_text``;
    its TSDB in ``workdir/data`` (blocks a test backfilled there are read; ``retention`` keeps
    them, counted back from the newest)."""
    binary = require(shutil.which("prometheus") or "/usr/bin/prometheus", "prometheus")
    sd_dir = workdir / "sd"
    sd_dir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(config_text or (
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: tests\n    file_sd_configs:\n"
        f"      - files: ['{sd_dir}/*.json']\n        refresh_interval: 1s\n"
    ))
    port = free_port()
    process = Process(
        "Prometheus",
        [str(binary), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage",
         "--web.enable-lifecycle", f"--storage.tsdb.retention.time={retention}", "--log.level=warn", *extra_args],
        log_path=workdir / "prometheus.log",
    )
    process.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), timeout=60)
    return Prometheus(port, sd_dir, process)
