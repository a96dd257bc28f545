"""The compose stack, checked without Docker: files, pins, addresses and secrets agree."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from otel_health.config import OtlpSettings
from otel_health.telemetry.traces import DEFAULT_KEEP_SALT

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose"
STACK = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
SERVICES = STACK["services"]


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def test_every_mounted_file_exists() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (COMPOSE / source).resolve().exists(), f"{name}: {source}"
        build = service.get("build")
        if build:
            assert (COMPOSE / build["context"] / build["dockerfile"]).exists()


def test_every_image_is_pinned() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        assert ":" in image, f"{name}: {image} has no tag"
        tag = image.rsplit(":", 1)[1]
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_the_collector_image_is_the_release_the_tests_build() -> None:
    manifest = (REPO / "components" / "otelcol" / "builder-config.yaml").read_text()
    version = re.search(r"^\s*version: (\S+)", manifest, re.M).group(1)
    assert SERVICES["otel-collector"]["image"] == f"otel/opentelemetry-collector-contrib:{version}"
    assert f"prometheusexporter v{version}" in manifest


def test_addresses_agree_between_compose_collector_prometheus_and_grafana() -> None:
    collector = yaml.safe_load((REPO / "otel-collector.yaml").read_text())
    prometheus = yaml.safe_load((REPO / "monitoring" / "prometheus.yml").read_text())
    datasources = yaml.safe_load((REPO / "monitoring" / "grafana" / "provisioning" / "datasources"
                                  / "datasources.yml").read_text())

    def default(value: str) -> str:
        match = re.fullmatch(r"\$\{env:\w+:-([^}]+)\}", value)
        assert match, value
        return match.group(1)

    ports = {
        "otlp_http": default(collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]).rsplit(":", 1)[1],
        "prometheus_exporter": default(collector["exporters"]["prometheus"]["endpoint"]).rsplit(":", 1)[1],
        "telemetry": default(str(collector["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
                                 ["prometheus"]["port"])),
    }
    # otel-health exports where the Collector listens.
    otlp = urlsplit(_env("otel-health")["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert (otlp.hostname, str(otlp.port)) == ("otel-collector", ports["otlp_http"])
    # The Collector sends traces to Jaeger's OTLP port in this stack.
    assert _env("otel-collector")["JAEGER_OTLP_GRPC_ENDPOINT"] == "jaeger:4317"
    # Prometheus scrapes names and ports that exist in the stack.
    targets = {job["job_name"]: job["static_configs"][0]["targets"][0] for job in prometheus["scrape_configs"]}
    assert targets["otel-collector-exporter"] == f"otel-collector:{ports['prometheus_exporter']}"
    assert targets["otel-collector"] == f"otel-collector:{ports['telemetry']}"
    config = yaml.safe_load((COMPOSE / "otel-health.yaml").read_text())
    assert targets["otel-health"] == f"otel-health:{config['listen'].rsplit(':', 1)[1]}"
    assert SERVICES["otel-health"]["ports"] == [f"127.0.0.1:8090:{config['listen'].rsplit(':', 1)[1]}"]
    for host in {t.split(":")[0] for t in targets.values()}:
        assert host in SERVICES
    # Grafana reads the Prometheus and Jaeger of this stack.
    urls = {d["uid"]: urlsplit(d["url"]) for d in datasources["datasources"]}
    assert (urls["prometheus"].hostname, urls["prometheus"].port) == ("prometheus", 9090)
    assert (urls["jaeger"].hostname, urls["jaeger"].port) == ("jaeger", 16686)
    # Every demo target in otel-health's config is a service of the stack.
    for target in config["targets"]:
        host = target.get("host") or urlsplit(target.get("url") or target.get("uri")).hostname
        assert host in SERVICES or host.endswith(".invalid"), host


def test_no_secret_is_committed() -> None:
    tracked = subprocess.run(["git", "ls-files", "compose", "monitoring"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    assert "compose/.env" not in tracked
    for name in SERVICES:
        for key, value in _env(name).items():
            if re.search(r"(PASSWORD|SECRET|TOKEN)$|^NEO4J_AUTH$", key):
                assert re.search(r"\$\{[A-Z0-9_]+(:\?[^}]*)?\}", value), f"{name}: {key} is not taken from .env"
    for line in (COMPOSE / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            assert line.split("=", 1)[1].startswith("change-me"), line
    config = (COMPOSE / "otel-health.yaml").read_text()
    for match in re.finditer(r"password:\s*(.+)", config):
        assert match.group(1).strip().strip('"').startswith("${"), match.group(0)
    assert "admin:" not in (REPO / "monitoring" / "grafana" / "provisioning" / "datasources"
                            / "datasources.yml").read_text()


def test_the_image_runs_as_a_user_and_checks_its_health() -> None:
    dockerfile = (COMPOSE / "Dockerfile").read_text()
    assert re.search(r"^FROM python:[\d.]+-slim", dockerfile, re.M)
    assert re.search(r"^USER \d+", dockerfile, re.M)
    assert "/-/healthy" in dockerfile and "HEALTHCHECK" in dockerfile


def test_the_share_of_traces_kept_is_set_in_one_place() -> None:
    """otel-health decides and marks; the Collector keeps what is marked and reads no share of
    its own, so nothing can set the two apart. The stack's otel-health watches the Collector."""
    assert _env("otel-health")["OTEL_HEALTH_KEEP_PERCENT"] == "${OTEL_HEALTH_KEEP_PERCENT:-1}"
    assert not {k for k in _env("otel-collector") if k.startswith("OTEL_HEALTH_")}
    collector_yaml = (REPO / "otel-collector.yaml").read_text()
    assert "OTEL_HEALTH_KEEP" not in collector_yaml
    policies = yaml.safe_load(collector_yaml)["processors"]["tail_sampling"]["policies"]
    assert policies == [{"name": "kept-by-otel-health", "type": "boolean_attribute",
                         "boolean_attribute": {"key": "tta.check.kept", "value": True}}]
    config = yaml.safe_load((COMPOSE / "otel-health.yaml").read_text())
    assert config["otlp"]["collector_metrics"] == "http://otel-collector:8888/metrics"
    assert "otel-collector:8888" in (REPO / "monitoring" / "prometheus.yml").read_text()
    defaults = OtlpSettings()
    assert (defaults.keep_percent, defaults.keep_salt) == (1.0, DEFAULT_KEEP_SALT)


def test_the_shipped_configs_that_other_hosts_reach_take_a_token() -> None:
    """Every shipped configuration that listens beyond loopback guards its writes with a token
    from a secret (the compose stack's .env, the cluster's Secret), never written in the file."""
    from otel_health.config.loader import load_text
    from otel_health.probes import PROBES

    configmap = yaml.safe_load((REPO / "deploy" / "kubernetes" / "configmap.yaml").read_text())["data"]["config.yaml"]
    shipped = {"compose/otel-health.yaml": (COMPOSE / "otel-health.yaml").read_text(),
               "deploy/kubernetes/configmap.yaml": configmap}
    for name, text in shipped.items():
        config = load_text(text, name, PROBES, base_dir=COMPOSE, resolve_secrets=False)
        assert config.listen_host not in ("127.0.0.1", "::1", "localhost"), name
        assert config.api_token is not None, name
        assert config.api_token.source.startswith(("env:", "file:")), name
    assert "OTEL_HEALTH_API_TOKEN" in _env("otel-health")
