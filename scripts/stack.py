"""The whole pipeline on one machine, without Docker: otel-health, the OpenTelemetry Collector
(otel-collector.yaml), Jaeger, Prometheus with the shipped rules, and Alertmanager with
otel-health's part of its config. Each on its usual port when that is free, else on a free
one; the URLs are printed once everything answers; Ctrl-C (or SIGTERM) stops it all.

    make stack CONFIG=my-stack.yaml
    .venv/bin/python scripts/stack.py --config my-stack.yaml [--for 10s] [--workdir DIR]

The Collector and Jaeger are the ones `make deps` builds (~/.cache/otel-health/bin);
Prometheus and Alertmanager are Debian's. Jaeger here serves its query API, not its web UI
(the UI is not published to a registry this build reaches): a trace is at
JAEGER/api/traces/TRACE_ID, and the status page links there.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("OTEL_HEALTH_CACHE", Path.home() / ".cache" / "otel-health"))

# The usual ports; a busy one is replaced by a free one (said in the printed URLs).
PORTS = {
    "collector_otlp_grpc": 4317, "collector_otlp_http": 4318, "collector_prometheus": 8889,
    "collector_telemetry": 8888, "collector_health": 13133,
    "jaeger_otlp_grpc": 14317, "jaeger_otlp_http": 14318, "jaeger_query_grpc": 16685, "jaeger_query_http": 16686,
    "jaeger_health": 13134, "prometheus": 9090, "alertmanager": 9093,
}


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _any_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def choose_ports(*, always_free: bool = False) -> dict[str, int]:
    chosen: dict[str, int] = {}
    for name, port in PORTS.items():
        if always_free or not _free(port) or port in chosen.values():
            port = _any_port()
            while port in chosen.values():
                port = _any_port()
        chosen[name] = port
    return chosen


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URLs built here
            return 200 <= response.status < 300
    except OSError:
        return False


@dataclass
class Part:
    name: str
    argv: list[str]
    ready: str
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None


class StackError(Exception):
    pass


def _seconds(text: str, flag: str = "--for") -> str:
    if not re.fullmatch(r"\d+(s|m|h)", text) or _as_seconds(text) == 0:
        raise StackError(f"{flag} {text!r}: give a duration such as 10s or 1m")
    return text


def _as_seconds(text: str) -> float:
    return int(text[:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]]


def _rules(workdir: Path, alert_for: str | None) -> Path:
    """The shipped rules, with every ``for:`` set to ``alert_for`` when given (to see an alert soon)."""
    folder = workdir / "rules"
    folder.mkdir(parents=True, exist_ok=True)
    for path in (REPO / "monitoring" / "rules").glob("*.rules.yml"):
        text = path.read_text()
        if alert_for is not None:
            text = re.sub(r"^(\s+for:\s*)\S+", rf"\g<1>{alert_for}", text, flags=re.M)
        (folder / path.name).write_text(text)
    return folder


def _prometheus_config(workdir: Path, ports: dict[str, int], listen: str, rules: Path, every: str) -> Path:
    """monitoring/prometheus.yml with this machine's addresses, every ``every``, and Alertmanager."""
    text = (REPO / "monitoring" / "prometheus.yml").read_text()
    text = text.replace("otel-collector:8889", f"127.0.0.1:{ports['collector_prometheus']}")
    text = text.replace("otel-collector:8888", f"127.0.0.1:{ports['collector_telemetry']}")
    text = text.replace("otel-health:8090", listen)
    text = text.replace("scrape_interval: 15s", f"scrape_interval: {every}").replace(
        "evaluation_interval: 15s", f"evaluation_interval: {every}")
    text = text.replace("  - rules/*.rules.yml", f"  - {rules}/*.rules.yml")
    text += ("\nalerting:\n  alertmanagers:\n    - static_configs:\n"
             f"        - targets: ['127.0.0.1:{ports['alertmanager']}']\n")
    path = workdir / "prometheus.yml"
    path.write_text(text)
    return path


def _listen(config: Path | None) -> str:
    """The HOST:PORT otel-health serves on, as its config says (the built-in default's otherwise)."""
    sys.path.insert(0, str(REPO))
    from otel_health.config.values import DEFAULT_LISTEN

    if config is None:
        return DEFAULT_LISTEN
    import yaml

    value = (yaml.safe_load(config.read_text()) or {}).get("listen", DEFAULT_LISTEN)
    host, _, port = str(value).rpartition(":")
    if port == "0":
        raise StackError(f"{config}: listen: give a fixed port for the stack (Prometheus scrapes it)")
    return f"{'127.0.0.1' if host in ('0.0.0.0', '', '::', '[::]') else host}:{port}"


def plan(config: Path | None, workdir: Path, ports: dict[str, int], alert_for: str | None, every: str = "5s",
         python: str = sys.executable) -> tuple[list[Part], dict[str, str]]:
    """What to start, in order, and the URLs to print."""
    collector = CACHE / "bin" / "otelcol-otel-health"
    jaeger = CACHE / "bin" / "jaeger"
    prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
    alertmanager = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
    for binary, made_by in ((collector, "make deps"), (jaeger, "make deps"), (Path(prometheus), "make deps"),
                            (Path(alertmanager), "make deps")):
        if not binary.exists():
            raise StackError(f"{binary} is missing: run {made_by} first")
    listen = _listen(config)
    workdir.mkdir(parents=True, exist_ok=True)
    rules = _rules(workdir, alert_for)
    loopback = {k: f"127.0.0.1:{v}" for k, v in ports.items()}
    am_config = workdir / "alertmanager.yml"
    command = [python, "-m", "otel_health", "alertmanager", "-o", str(am_config)]
    if config is not None:
        command += ["--config", str(config)]
    else:
        default = workdir / "built-in.yaml"
        default.write_text("targets: []\n")
        command += ["--config", str(default)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO, timeout=60)
    if result.returncode != 0:
        raise StackError(f"otel-health alertmanager: {result.stderr.strip()}")
    parts = [
        Part("jaeger", [str(jaeger), f"--config={REPO / 'components' / 'jaeger' / 'config.yaml'}"],
             f"http://{loopback['jaeger_health']}/status",
             {"JAEGER_OTLP_GRPC_ENDPOINT": loopback["jaeger_otlp_grpc"],
              "JAEGER_OTLP_HTTP_ENDPOINT": loopback["jaeger_otlp_http"],
              "JAEGER_QUERY_GRPC_ENDPOINT": loopback["jaeger_query_grpc"],
              "JAEGER_QUERY_HTTP_ENDPOINT": loopback["jaeger_query_http"],
              "JAEGER_HEALTH_ENDPOINT": loopback["jaeger_health"], "OTEL_TRACES_EXPORTER": "none"}),
        Part("collector", [str(collector), f"--config={REPO / 'otel-collector.yaml'}"],
             f"http://{loopback['collector_health']}/",
             {"OTELCOL_OTLP_GRPC_ENDPOINT": loopback["collector_otlp_grpc"],
              "OTELCOL_OTLP_HTTP_ENDPOINT": loopback["collector_otlp_http"],
              "OTELCOL_HEALTH_ENDPOINT": loopback["collector_health"],
              "OTELCOL_PROMETHEUS_ENDPOINT": loopback["collector_prometheus"],
              "OTELCOL_TELEMETRY_HOST": "127.0.0.1", "OTELCOL_TELEMETRY_PORT": str(ports["collector_telemetry"]),
              "JAEGER_OTLP_GRPC_ENDPOINT": loopback["jaeger_otlp_grpc"], "OTELCOL_LOG_LEVEL": "warn"}),
        Part("alertmanager", [alertmanager, f"--config.file={am_config}", f"--storage.path={workdir / 'am-data'}",
                              f"--web.listen-address={loopback['alertmanager']}", "--cluster.listen-address=",
                              "--log.level=warn"],
             f"http://{loopback['alertmanager']}/-/ready"),
        Part("prometheus", [prometheus, f"--config.file={_prometheus_config(workdir, ports, listen, rules, every)}",
                            f"--storage.tsdb.path={workdir / 'prometheus-data'}",
                            f"--web.listen-address={loopback['prometheus']}", "--enable-feature=exemplar-storage",
                            "--web.enable-lifecycle", "--log.level=warn"],
             f"http://{loopback['prometheus']}/-/ready"),
        Part("otel-health", [python, "-m", "otel_health", "run", *(["--config", str(config)] if config else [])],
             f"http://{listen}/-/healthy",
             {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{loopback['collector_otlp_http']}",
              "OTEL_SERVICE_NAME": "otel-health", "OTEL_METRIC_EXPORT_INTERVAL": str(int(_as_seconds(every) * 1000)),
              "OTEL_HEALTH_COLLECTOR_METRICS": f"http://{loopback['collector_telemetry']}/metrics",
              "OTEL_HEALTH_TRACE_URL": f"http://{loopback['jaeger_query_http']}/api/traces/{{trace_id}}"}),
    ]
    urls = {
        "status page": f"http://{listen}/",
        "metrics (the bridge)": f"http://{listen}/metrics",
        "Prometheus": f"http://{loopback['prometheus']}/ (alerts: /alerts)",
        "Alertmanager": f"http://{loopback['alertmanager']}/",
        "Jaeger (query API)": f"http://{loopback['jaeger_query_http']}/api/services",
        "OTLP in (Collector)": f"grpc {loopback['collector_otlp_grpc']}, http {loopback['collector_otlp_http']}",
        "logs": str(workdir),
    }
    return parts, urls


def start(parts: list[Part], workdir: Path, timeout: float = 60.0) -> None:
    for part in parts:
        part.log = workdir / f"{part.name}.log"
        with part.log.open("wb") as log:
            part.process = subprocess.Popen(part.argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                            env={**os.environ, **part.env}, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _answers(part.ready):
            if part.process.poll() is not None:
                raise StackError(f"{part.name} exited with status {part.process.returncode}; see {part.log}")
            if time.monotonic() > deadline:
                raise StackError(f"{part.name} did not answer {part.ready} within {timeout:.0f}s; see {part.log}")
            time.sleep(0.2)


def stop(parts: list[Part], grace: float = 10.0) -> None:
    for part in reversed(parts):
        if part.process is not None and part.process.poll() is None:
            part.process.terminate()
    deadline = time.monotonic() + grace
    for part in reversed(parts):
        if part.process is None:
            continue
        try:
            part.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            part.process.kill()
            part.process.wait(5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", "-c", type=Path, help="otel-health's config (default: the built-in one)")
    parser.add_argument("--workdir", type=Path, default=REPO / ".stack", help="logs and data (default .stack/)")
    parser.add_argument("--for", dest="alert_for", metavar="DURATION",
                        help="set every alert rule's for: to this (10s: see an alert fire soon)")
    parser.add_argument("--every", metavar="DURATION", default="5s",
                        help="how often Prometheus scrapes and evaluates the rules, and otel-health pushes (5s)")
    parser.add_argument("--free-ports", action="store_true", help="always take free ports, not the usual ones")
    args = parser.parse_args(argv)
    try:
        alert_for = _seconds(args.alert_for) if args.alert_for else None
        every = _seconds(args.every, "--every")
        ports = choose_ports(always_free=args.free_ports)
        parts, urls = plan(args.config.resolve() if args.config else None, args.workdir.resolve(), ports, alert_for,
                           every)
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 2
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        start(parts, args.workdir.resolve())
        width = max(len(name) for name in urls)
        print("stack: running (Ctrl-C stops it all)", flush=True)
        for name, url in urls.items():
            print(f"  {name.ljust(width)}  {url}", flush=True)
        while not stopping:
            ended = next((p for p in parts if p.process is not None and p.process.poll() is not None), None)
            if ended is not None:
                raise StackError(f"{ended.name} exited with status {ended.process.returncode}; "  # type: ignore[union-attr]
                                 f"see {ended.log}")
            time.sleep(0.5)
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    finally:
        stop(parts)
        print("stack: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
