"""The README's tutorial, end to end, against real servers: `otel-health init` on the stack's
addresses, the tutorial's config (examples/tutorial/otel-health.yaml) pointed at them,
`validate`, `make stack`'s script with every alert's for: at 3s, the cron job reporting in
with `otel-health ping`, then Redis stopped: the page, /metrics and /health say so, the alert
fires in Prometheus and reaches Alertmanager, and the failed check's trace is in Jaeger, at the
link the status page gives. Ctrl-C stops the whole stack."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.harness import servers
from tests.harness.procs import free_port, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
TOKEN = "tutorial-backup-token-5d1c"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "otel_health", *args], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env={**os.environ, **(env or {})}, check=False)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


def _readme_block(after: str) -> str:
    """The first fenced block after the line that contains ``after``."""
    tail = README[README.index(after):]
    return re.search(r"```\w*\n(.*?)```", tail, re.S).group(1)  # type: ignore[union-attr]


@pytest.fixture
def own_redis(tmp_path: Path, seeded_password: str) -> Iterator[servers.Redis]:
    """A Redis of the test's own: the tutorial stops it."""
    server = servers.start_redis(tmp_path / "redis", password=seeded_password)
    yield server
    server.stop()


class Stack:
    """scripts/stack.py running, its printed URLs read from its output."""

    def __init__(self, config: Path, workdir: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "stack.py"), "--config", str(config), "--for", "3s",
             "--every", "1s", "--free-ports", "--workdir", str(workdir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env={**os.environ, **env})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_until(lambda: any(line.strip().startswith("logs") for line in self.lines)
                   or self.process.poll() is not None, timeout=120, what="the stack printing its URLs", interval=0.2)
        assert self.process.poll() is None, "".join(self.lines)
        self.urls = {m.group(1).strip(): m.group(2) for line in self.lines
                     if (m := re.match(r"\s+(.+?)\s{2,}(\S+)", line))}

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def url(self, name: str) -> str:
        return self.urls[name].rstrip("/").removesuffix("/api/services")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code


def test_the_readme_tutorial_end_to_end(tmp_path: Path, http_targets: servers.HttpTargets,
                                        postgres_server: servers.Postgres, own_redis: servers.Redis,
                                        seeded_password: str) -> None:
    # 1. init, as the README runs it, with this machine's addresses for the example ones.
    command = _readme_block("otel-health init` writes a target")
    urls = re.findall(r"(\w+://\S+)", command)
    assert [u.split(":")[0] for u in urls] == ["https", "https", "redis", "postgresql"]
    ours = [http_targets.url("/ok"), http_targets.url("/ok?page=front"),
            f"redis://:{seeded_password}@127.0.0.1:{own_redis.port}",
            f"postgresql://postgres:{seeded_password}@127.0.0.1:{postgres_server.port}/postgres"]
    written = tmp_path / "my-stack.yaml"
    out = _cli("init", *ours, "-o", str(written))
    assert out.returncode == 0, out.stderr
    init_text = written.read_text()
    assert seeded_password not in init_text and "${" in init_text
    assert [t["kind"] for t in yaml.safe_load(init_text)["targets"]] == ["http", "http", "redis", "postgres"]
    # The heartbeat the README adds by hand is the one in the tutorial's config.
    heartbeat = yaml.safe_load(_readme_block("is late or says it failed"))[0]
    tutorial = yaml.safe_load((REPO / "examples" / "tutorial" / "otel-health.yaml").read_text())
    assert heartbeat in tutorial["targets"]

    # The tutorial's config, at these addresses, checked every second so the test is short.
    port = free_port()
    tutorial["listen"] = f"127.0.0.1:{port}"
    tutorial["defaults"] = {"interval": "1s", "timeout": "1s"}
    by_name = {t["name"]: t for t in tutorial["targets"]}
    by_name["api"]["url"] = ours[0]
    by_name["frontend"]["url"] = ours[1]
    by_name["cache"].update(host="127.0.0.1", port=own_redis.port)
    by_name["db"].update(host="127.0.0.1", port=postgres_server.port, database="postgres", user="postgres")
    config = tmp_path / "tutorial.yaml"
    config.write_text(yaml.safe_dump(tutorial, sort_keys=False))
    env = {"CACHE_PASSWORD": seeded_password, "DB_PASSWORD": seeded_password, "BACKUP_TOKEN": TOKEN}

    # 2. validate, check
    out = _cli("validate", "--config", str(config), env=env)
    assert out.returncode == 0 and "ok, 5 targets" in out.stdout, out.stdout + out.stderr
    out = _cli("check", "--config", str(config), "--json", env=env)
    rows = {r["service"]: r for r in json.loads(out.stdout)["targets"]}
    assert out.returncode == 0 and [rows[n]["up"] for n in ("api", "frontend", "cache", "db")] == [True] * 4
    assert rows["backup"]["up"] is None  # a job has no verdict in one round: it reports to a running collector

    # 4. the stack (3. the cron job reports in, once it runs)
    stack = Stack(config, tmp_path / "stack", env)
    try:
        health = f"http://127.0.0.1:{port}"
        assert stack.urls["status page"] == f"{health}/"
        ping = _cli("ping", "backup", "--url", health, "--", "true", env={"OTEL_HEALTH_PING_TOKEN": TOKEN})
        assert ping.returncode == 0 and not ping.stderr, ping.stderr

        def every_target_up() -> bool:
            status, text = _get(f"{health}/metrics")
            up = dict(re.findall(r'^tta_service_up\{[^}]*service="([^"]+)"[^}]*\} (\S+)$', text, re.M))
            return status == 200 and up == dict.fromkeys(("api", "frontend", "cache", "db", "backup"), "1")

        wait_until(every_target_up, timeout=30, what="every tutorial target up in /metrics", interval=0.5)
        status, body = _get(f"{health}/health")
        assert status == 200 and json.loads(body)["status"] == "pass"
        status, page = _get(f"{health}/")
        assert status == 200 and all(name in page for name in ("api", "frontend", "cache", "db", "backup"))

        # Redis stops: the page, /health, the alert in Prometheus and Alertmanager, the trace.
        own_redis.stop()
        prometheus, alertmanager = stack.url("Prometheus"), stack.url("Alertmanager")
        prometheus = prometheus.split(" ")[0]

        def cache_alert_firing() -> bool:
            alerts = servers.get_json(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
            return any(a["labels"].get("alertname") == "TTAServiceDown" and a["labels"].get("service") == "cache"
                       and a["state"] == "firing" for a in alerts)

        wait_until(cache_alert_firing, timeout=60, what="TTAServiceDown firing for cache in Prometheus", interval=1)
        wait_until(lambda: any(a["labels"].get("service") == "cache" for a in
                               servers.get_json(f"{alertmanager}/api/v2/alerts")),
                   timeout=30, what="the cache alert in Alertmanager", interval=1)
        status, body = _get(f"{health}/health")
        assert status == 503 and json.loads(body)["status"] == "fail"
        status, page = _get(f"{health}/")
        assert "connection_refused" in page and seeded_password not in page
        jaeger = stack.url("Jaeger (query API)")
        links = re.findall(rf'href="({re.escape(jaeger)}/api/traces/([0-9a-f]{{32}}))"', page)
        assert links, "the status page links no failed check to its trace"
        # The Collector waits for a trace's spans (decision_wait) before Jaeger has it.
        def linked_trace() -> dict | None:
            status, body = _get(links[0][0])
            return json.loads(body)["data"][0] if status == 200 else None

        wait_until(lambda: linked_trace() is not None, timeout=30, what="the linked trace in Jaeger", interval=0.5)
        trace = linked_trace()
        assert trace is not None
        root = next(s for s in trace["spans"] if not s["references"])
        tags = {t["key"]: t["value"] for t in root["tags"]}
        assert tags["tta.check.outcome"] == "down" and tags["error.type"] == "connection_refused"
        assert root["operationName"].startswith("health_check") and trace["processes"]
        assert seeded_password not in json.dumps(trace)
    finally:
        code = stack.stop()
    assert code == 0, "".join(stack.lines)
    assert "stack: stopped" in "".join(stack.lines)
    for name in ("otel-health", "prometheus", "alertmanager", "collector", "jaeger"):
        assert (tmp_path / "stack" / f"{name}.log").exists()
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "stack")], capture_output=True, text=True, check=False)
    assert not leftover.stdout.strip(), f"processes of the stack still running: {leftover.stdout}"
