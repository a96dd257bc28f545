"""Every configuration the repository shows a reader validates: the examples, the shipped
deployments' configs, and every otel-health YAML block in the README and docs/ (credentials
checked for their form only, as `validate --no-secrets` does). A YAML block that is not an
otel-health config must be one of the other tools' files the docs show."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_health.config import ConfigError, Placement
from otel_health.config.loader import load, load_text
from otel_health.probes import PROBES

REPO = Path(__file__).resolve().parents[2]
EVERY_SHARD = Placement(shard="0/1", replicas=1)  # a StatefulSet's `ordinal` needs its pod's name
TOP_LEVEL = {"listen", "environment", "concurrency", "max_body_bytes", "defaults", "otlp", "targets", "target_files",
             "allowed_hosts", "discovery", "maintenance", "max_maintenance", "state_dir", "history_days", "trace_url",
             "status_page",
             "location", "api_token", "api_token_file", "shard", "announcements"}
# The other tools' files the docs show: Prometheus, Alertmanager, the Collector, compose, Kubernetes.
FOREIGN = {"scrape_configs", "route", "receivers", "groups", "rule_files", "global", "inhibit_rules", "time_intervals",
           "apiVersion", "services", "processors", "exporters", "extensions", "alerting", "tests", "job_name"}
FILES = [*sorted((REPO / "examples").rglob("*.yaml")), REPO / "compose" / "otel-health.yaml",
         REPO / "tests" / "testdata" / "valid-full.yaml"]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _blocks() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in re.finditer(r"^```yaml\n(.*?)^```", text, re.S | re.M):
            line = text[:match.start()].count("\n") + 2
            found.append((f"{doc.relative_to(REPO)}:{line}", match.group(1)))
    return found


def _kind_of(doc: Any) -> str:
    if isinstance(doc, dict) and set(doc) <= TOP_LEVEL:
        return "config"
    if isinstance(doc, dict) and "kind" in doc and "name" in doc:
        return "target"
    if isinstance(doc, list) and doc and all(isinstance(d, dict) and "kind" in d for d in doc):
        return "targets"
    if (isinstance(doc, dict) and set(doc) & FOREIGN) or (isinstance(doc, list) and doc and isinstance(doc[0], dict) \
            and set(doc[0]) & FOREIGN):
        return "foreign"
    return "unknown"


@pytest.fixture(scope="module")
def files_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the docs' examples name by relative path: a CA, a client certificate and its key."""
    folder = tmp_path_factory.mktemp("doc-files")
    tls = REPO / "tests" / "testdata" / "tls"
    shutil.copy(tls / "client.crt", folder / "client.crt")
    shutil.copy(tls / "client.key", folder / "client.key")
    shutil.copy(tls / "client.crt", folder / "ca.pem")
    return folder


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_config_validates(path: Path) -> None:
    config = load(str(path), PROBES, placement=EVERY_SHARD, resolve_secrets=False)
    assert config.targets_configured > 0


@pytest.mark.parametrize(("where", "text"), _blocks(), ids=[where for where, _ in _blocks()])
def test_every_yaml_block_in_the_docs_is_a_config_that_validates_or_another_tools_file(
        where: str, text: str, files_dir: Path) -> None:
    doc = yaml.safe_load(text)
    kind = _kind_of(doc)
    assert kind != "unknown", f"{where}: a YAML block that is neither an otel-health config nor a known tool's file"
    if kind == "foreign":
        return
    if kind == "target":
        text = yaml.safe_dump({"targets": [doc]})
    elif kind == "targets":
        text = yaml.safe_dump({"targets": doc})
    try:
        load_text(text, where, PROBES, base_dir=files_dir, placement=EVERY_SHARD, resolve_secrets=False)
    except ConfigError as exc:
        pytest.fail("\n".join(exc.problems))


def test_the_kubernetes_config_map_holds_a_config_that_validates() -> None:
    manifest = yaml.safe_load((REPO / "deploy" / "kubernetes" / "configmap.yaml").read_text())
    text = manifest["data"]["config.yaml"]
    config = load_text(text, "configmap.yaml", PROBES, placement=EVERY_SHARD, resolve_secrets=False)
    assert config.targets_configured > 0


def test_the_docs_show_configs_at_all() -> None:
    kinds = [_kind_of(yaml.safe_load(text)) for _, text in _blocks()]
    assert len([k for k in kinds if k in ("config", "targets", "target")]) >= 4
