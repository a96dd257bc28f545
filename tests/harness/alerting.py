"""Alertmanager (Debian's prometheus-alertmanager) and a webhook receiver that records what it is sent."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from otel_health.alertmanager import SUPPRESSIBLE_ALERTS

from .procs import Process, free_port
from .servers.common import REPO, get_json, http_ok, require

RULES = REPO / "monitoring" / "rules" / "otel-health.rules.yml"
CLAUSE = "unless on (service, environment) tta_service:suppressed"
SCALE = 20  # the rules' for: durations, divided


def scaled_rules(*, suppression: bool = True, scale: int = SCALE) -> str:
    """The shipped rules with every ``for:`` divided by ``scale`` (:data:`SCALE`), and without
    the suppression clause when ``suppression`` is false."""
    text = RULES.read_text()
    if not suppression:  # once in each rule of an alert suppression holds back, and nowhere else
        rules = [r for g in yaml.safe_load(text)["groups"] for r in g["rules"] if r.get("alert") in SUPPRESSIBLE_ALERTS]
        assert text.count(CLAUSE) == len(rules) > 0
        text = text.replace(CLAUSE, "")
    doc = yaml.safe_load(text)
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                match = re.fullmatch(r"(\d+)([smh])", rule["for"])
                assert match, rule["for"]
                seconds = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]
                rule["for"] = f"{max(seconds // scale, 1) if seconds else 0}s"
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass
class Alertmanager:
    port: int
    process: Process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert Alertmanager holds, with its status (``inhibitedBy``, ``silencedBy``)."""
        return list(get_json(f"{self.url}/api/v2/alerts"))

    def stop(self) -> None:
        self.process.stop()


def start_alertmanager(workdir: Path, config: Path) -> Alertmanager:
    """Alertmanager on a free port with no cluster port (``--cluster.listen-address=``)."""
    binary = require(shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager",
                      "prometheus-alertmanager")
    port = free_port()
    process = Process(
        "Alertmanager",
        [str(binary), f"--config.file={config}", f"--storage.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
        log_path=workdir / "alertmanager.log",
    )
    process.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), timeout=60)
    return Alertmanager(port, process)


@dataclass
class Notification:
    at: float
    status: str
    labels: dict[str, str]


@dataclass
class Webhook:
    """An HTTP server on a free loopback port that keeps every alert Alertmanager posts to it."""

    port: int = 0
    received: list[Notification] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> Webhook:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with hook._lock:
                    hook.received += [Notification(time.monotonic(), a["status"], dict(a["labels"]))
                                      for a in body.get("alerts", ())]
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True).start()
        return self

    def since(self, moment: float) -> list[Notification]:
        with self._lock:
            return [n for n in self.received if n.at >= moment]

    def services(self, moment: float = 0.0) -> set[str]:
        return {n.labels.get("service", "") for n in self.since(moment) if n.status == "firing"}

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
