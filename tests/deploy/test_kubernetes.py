"""deploy/kubernetes: valid for the Kubernetes API (schemas bundled by kubernetes-validate, so
no cluster and no network), consistent with itself, and read by otel-health and Prometheus."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from otel_health.config.loader import load_text
from otel_health.probes import PROBES
from otel_health.sharding import parse_shard

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
MANIFESTS = sorted(p for p in KUBERNETES.glob("*.yaml"))
VERSIONS = ("1.30.0", "1.37.0")  # an older cluster still common, and the newest schemas bundled


def _documents() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def _one(kind: str) -> dict[str, Any]:
    (found,) = [d for d in _documents() if d["kind"] == kind]
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_for_the_kubernetes_api(version: str) -> None:
    assert {d["kind"] for d in _documents()} == {"ConfigMap", "Service", "StatefulSet"}
    for doc in _documents():
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any unknown or wrong field


def test_the_shard_count_is_the_statefulsets_replicas_and_the_pods_find_their_index() -> None:
    statefulset = _one("StatefulSet")
    args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
    shard = args[args.index("--shard") + 1]
    assert re.fullmatch(r"ordinal/\d+", shard)
    replicas = statefulset["spec"]["replicas"]
    assert int(shard.split("/")[1]) == replicas
    name = statefulset["metadata"]["name"]
    assert [parse_shard(shard, hostname=f"{name}-{i}").index for i in range(replicas)] == list(range(replicas))
    assert statefulset["spec"]["serviceName"] == _one("Service")["metadata"]["name"]
    probes = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert probes["livenessProbe"]["httpGet"]["path"] == "/-/healthy"  # never /health: a down target is no reason


def test_the_configmaps_configuration_is_one_otel_health_takes() -> None:
    data = _one("ConfigMap")["data"]["config.yaml"]
    config = load_text(data, "configmap.yaml", PROBES, resolve_secrets=False)  # the token is the cluster's Secret
    assert config.listen_host == "0.0.0.0" and config.targets
    assert config.api_token is not None and config.api_token.source == "file:/etc/otel-health-token/token"
    statefulset = _one("StatefulSet")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in statefulset["containers"][0]["volumeMounts"]}
    secrets = {v["name"]: v["secret"]["secretName"] for v in statefulset["volumes"] if "secret" in v}
    assert mounts["api-token"] == "/etc/otel-health-token" and secrets["api-token"] == "otel-health-api-token"
    name = _one("StatefulSet")["metadata"]["name"]
    assert {f"{name}-{i}.{name}" for i in range(_one("StatefulSet")["spec"]["replicas"])} <= set(config.allowed_hosts)


def test_the_scrape_configuration_passes_promtool() -> None:
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    result = subprocess.run([promtool, "check", "config", str(KUBERNETES / "prometheus.yml")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
