"""`otel-health import blackbox`: blackbox_exporter's modules and the Prometheus jobs that use
them become targets that mean the same; what cannot be carried is said, module by module."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from otel_health.blackbox import import_blackbox
from otel_health.cli import main
from otel_health.config import Placement
from otel_health.config.loader import load_text
from otel_health.probes import PROBES

DATA = Path(__file__).resolve().parents[1] / "testdata" / "blackbox"
SECRETS = ("inline-password-5512", "inline-api-key-7731", "inline-grpc-token-9912")


def _imported() -> tuple[dict[str, dict], list[str], str]:
    imported = import_blackbox((DATA / "blackbox.yml").read_text(), (DATA / "prometheus.yml").read_text(),
                               base_dir=DATA)
    text = imported.text("blackbox.yml")
    return {t["name"]: t for t in imported.targets}, imported.notes, text


def test_every_module_of_every_probing_job_is_carried_or_named_with_its_reason() -> None:
    targets, notes, text = _imported()
    modules = yaml.safe_load((DATA / "blackbox.yml").read_text())["modules"]
    jobs = yaml.safe_load((DATA / "prometheus.yml").read_text())["scrape_configs"]
    used = {j["params"]["module"][0] for j in jobs if j.get("metrics_path") == "/probe"}
    carried = {"http_2xx", "http_post_json", "http_basic_auth", "tcp_connect", "ssh_banner", "dns_a",
               "grpc_health", "http_cel", "smtp_starttls", "dns_any", "icmp"}
    said = {"no_such_module": "is not in the blackbox config"}
    assert used == carried | said.keys() and used - {"no_such_module"} <= modules.keys()
    for module, reason in said.items():
        assert any(module in note and reason in note for note in notes), (module, notes)
    assert all(f"# not carried: {note}" in text for note in notes)
    assert "node" not in text and "localhost:9100" not in text  # a job that does not probe is left alone
    # what is imported loads, credentials checked for their form
    config = load_text(text, "imported.yaml", PROBES, resolve_secrets=False, placement=Placement(shard="0/1"))
    assert len(config.targets) == len(targets) == 15


def test_a_modules_meaning_is_kept_where_the_defaults_differ() -> None:
    targets, _, _ = _imported()
    site = targets["www.example.com"]
    # blackbox's 2xx, written out; its job's interval; its module's timeout; the group's labels
    assert (site["kind"], site["expect_status"], site["interval"], site["timeout"], site["labels"]) == (
        "http", ["200-299"], "30s", "5s", {"team": "web"})
    post = targets["api.example.com-2"]
    assert post["expect_status"] == [200, 201] and post["method"] == "POST" and post["interval"] == "1m"
    assert post["timeout"] == "10s"  # no module timeout: the scrape's, Prometheus' default
    assert post["body_regex"] == '"status":\\s*"ok"' and post["body_not_regex"] == ["degraded", "maintenance"]
    auth = targets["admin.example.com"]
    assert (auth["tls_verify"], auth["ip_protocol"], auth["body_size_limit"], auth["fail_if_not_ssl"]) == (
        False, "ip4", 1 << 20, True)
    dns = targets["192.0.2.54"]
    assert (dns["server"], dns["query_type"], dns["transport"], dns["min_answers"]) == (
        "192.0.2.54:5353", "A", "tcp", 0)  # NOERROR without records passes there: min_answers 0 here
    assert targets["192.0.2.53"]["server"] == "192.0.2.53:53"
    assert (targets["bastion.example.com"]["expect"], targets["bastion.example.com"]["port"]) == ("^SSH-2.0-", 22)
    assert (targets["orders.example.com"]["service"], targets["orders.example.com"]["tls"]) == ("orders.Orders", True)
    # a dialog keeps its steps, each send ended by the newline blackbox_exporter adds; STARTTLS on the way
    assert targets["mail.example.com"]["dialog"] == [
        {"expect": "^220 "}, {"send": "EHLO prober\r\n"}, {"expect": "^250-STARTTLS"}, {"send": "STARTTLS\r\n"},
        {"expect": "^220"}, {"starttls": True}]
    assert targets["status.example.com"]["body_cel"] == 'body.status == "ok"'
    # one echo request that must come back, as blackbox_exporter's icmp prober sends
    gateway = targets["gateway.example.com"]
    assert (gateway["kind"], gateway["host"], gateway["packets"], gateway["max_loss"]) == (
        "icmp", "gateway.example.com", 1, 0)
    assert targets["192.0.2.53-2"]["query_type"] == "ANY"  # blackbox's default, written out
    assert {targets["shop.example.com"]["labels"]["team"], targets["blog.example.com"]["labels"]["team"]} == {"sites"}


def test_an_inline_credential_becomes_a_reference_and_is_written_nowhere() -> None:
    targets, _, text = _imported()
    assert targets["admin.example.com"]["basic_auth"] == {"username": "monitor",
                                                         "password": "${ADMIN_EXAMPLE_COM_PASSWORD}"}
    assert targets["api.example.com-2"]["headers"]["X-Api-Key"] == "${API_EXAMPLE_COM_2_X_API_KEY}"
    assert targets["api.example.com-2"]["headers"]["Content-Type"] == "application/json"
    assert targets["orders.example.com"]["metadata"] == {"x-team": "orders",
                                                         "authorization": "${ORDERS_EXAMPLE_COM_AUTHORIZATION}"}
    for secret in SECRETS:
        for form in (secret, base64.b64encode(secret.encode()).decode(), base64.b64encode(
                f"monitor:{secret}".encode()).decode()):
            assert form not in text
    assert ("Credentials are read from the environment: API_EXAMPLE_COM_2_X_API_KEY, ADMIN_EXAMPLE_COM_PASSWORD, "
            "ORDERS_EXAMPLE_COM_AUTHORIZATION") in text


def test_the_command_writes_a_config_that_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "otel-health.yaml"
    assert main(["import", "blackbox", "-c", str(DATA / "blackbox.yml"), "-p", str(DATA / "prometheus.yml"),
                 "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "15 targets imported, 2 notes" in err and err.count("not carried: ") == 2
    assert not any(secret in err for secret in SECRETS)
    assert main(["validate", "--no-secrets", "--config", str(out)]) == 0
    assert main(["import", "blackbox", "-c", str(tmp_path / "missing.yml"), "-p", str(DATA / "prometheus.yml")]) == 2
    assert "cannot read the configs" in capsys.readouterr().err


def test_a_prober_without_a_kind_is_named_with_its_targets() -> None:
    imported = import_blackbox("modules:\n  sock:\n    prober: unix\n",
                               "scrape_configs:\n  - job_name: s\n    metrics_path: /probe\n"
                               "    params: {module: [sock]}\n    static_configs: [{targets: [/run/app.sock]}]\n",
                               base_dir=DATA)
    assert imported.targets == []
    assert imported.notes == [
        "module sock: prober unix is not a kind otel-health has yet (not imported: /run/app.sock)"]


@pytest.mark.parametrize(("target", "host"), [
    ("gateway.example.com", "gateway.example.com"), ("192.0.2.1:0", "192.0.2.1"), ("2001:db8::1", "2001:db8::1"),
    ("[2001:db8::1]:80", "2001:db8::1"), ("[2001:db8::1]", "2001:db8::1")])
def test_an_icmp_target_is_its_host_whatever_port_or_brackets_it_has(target: str, host: str) -> None:
    imported = import_blackbox("modules:\n  ping:\n    prober: icmp\n",
                               "scrape_configs:\n  - job_name: p\n    metrics_path: /probe\n"
                               f"    params: {{module: [ping]}}\n    static_configs: [{{targets: ['{target}']}}]\n",
                               base_dir=DATA)
    assert [t["host"] for t in imported.targets] == [host]


def test_an_http3_module_asks_over_http3() -> None:
    imported = import_blackbox("modules:\n  h3:\n    prober: http\n    http:\n      enable_http3: true\n"
                               "      enable_http2: false\n      valid_http_versions: [HTTP/3.0]\n",
                               "scrape_configs:\n  - job_name: h\n    metrics_path: /probe\n"
                               "    params: {module: [h3]}\n    static_configs: [{targets: ['https://example.com/']}]\n",
                               base_dir=DATA)
    assert [(t["http3"], t["valid_http_versions"]) for t in imported.targets] == [(True, ["HTTP/3.0"])]
    assert imported.notes == []
