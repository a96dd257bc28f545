"""What an operator touches: /health, /api/v1/targets, reload, debounce, TLS expiry, the CLI."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from otel_health.cli import main
from otel_health.collector import Collector
from otel_health.config.loader import load
from otel_health.probes import PROBES
from tests.harness import servers
from tests.harness.procs import Process, free_port, wait_until
from tests.harness.running import running
from tests.harness.servers import HttpTargets

pytestmark = pytest.mark.integration


def _t(name: str, url: str, extra: str = "", interval: str = "0.3s", timeout: str = "0.3s") -> str:
    return (f"  - name: {name}\n    kind: http\n    url: {url}\n    interval: {interval}\n"
            f"    timeout: {timeout}\n{extra}")


@pytest.mark.parametrize(
    ("broken_critical", "broken_present", "status", "code"),
    [(None, False, "pass", 200), (False, True, "warn", 200), (True, True, "fail", 503)],
    ids=["pass", "warn", "fail"],
)
async def test_health_is_pass_warn_or_fail(http_targets: HttpTargets, broken_critical: bool | None,
                                           broken_present: bool, status: str, code: int) -> None:
    h = http_targets
    text = "targets:\n" + _t("api", h.url("/ok"))
    if broken_present:
        text += _t("cache", h.url("/status/500"), f"    critical: {str(broken_critical).lower()}\n")
    async with running(text) as r:
        await r.wait_result("api")
        if broken_present:
            await r.wait_result("cache")
        got_code, content_type, body = await r.get("/health")
        self_code, _, self_body = await r.get("/-/healthy")
    assert (got_code, self_code, self_body) == (code, 200, "OK\n")
    assert content_type.startswith("application/health+json")
    doc = json.loads(body)
    assert doc["status"] == status
    api = doc["checks"]["api:responseTime"][0]
    assert set(api) == {"componentId", "componentType", "status", "observedValue", "observedUnit", "time",
                        "environment"}
    assert (api["componentId"], api["componentType"], api["status"], api["observedUnit"]) == (
        "api", "http", "pass", "s")
    assert api["time"].endswith("Z")
    if broken_present:
        cache = doc["checks"]["cache:responseTime"][0]
        assert cache["status"] == ("fail" if broken_critical else "warn")
        assert cache["output"].startswith("http_status: http://") and cache["output"].endswith(
            ": status 500, expected 200-399")


async def test_targets_api_shows_settings_state_history_and_no_secret(
    http_targets: HttpTargets, monkeypatch: pytest.MonkeyPatch, seeded_password: str, tmp_path: Path,
) -> None:
    h = http_targets
    monkeypatch.setenv("CHECKER_PASSWORD", seeded_password)
    token_file = tmp_path / "token"
    token_file.write_text("api-token-123\n")
    text = (f"api_token_file: {token_file}\ntargets:\n"
            + _t("auth", h.url("/auth"), "    basic_auth: {username: checker, password: '${CHECKER_PASSWORD}'}\n"))
    async with running(text) as r:
        await r.wait_for(lambda: r.checks("auth") >= 3, timeout=10, what="three checks")
        denied, _, _ = await r.get("/api/v1/targets")
        import aiohttp

        async with aiohttp.ClientSession() as session, session.get(
                f"{r.url}/api/v1/targets", headers={"Authorization": "Bearer api-token-123"}) as resp:
            code, body = resp.status, await resp.text()
    assert denied == 401
    assert code == 200
    assert seeded_password not in body
    target = json.loads(body)["targets"][0]
    assert target["name"] == "auth" and target["settings"]["auth"] == "basic"
    assert target["state"]["up"] is True and target["state"]["debounced_up"] is True
    assert len(target["history"]) >= 3
    latest = target["history"][0]
    assert latest["outcome"] == "up" and len(latest["trace_id"]) == 32
    assert latest["time"] >= target["history"][1]["time"]


async def test_reload_adds_removes_changes_and_keeps_unchanged_history(http_targets: HttpTargets,
                                                                       tmp_path: Path) -> None:
    h = http_targets
    path = tmp_path / "config.yaml"
    (tmp_path / "targets.d").mkdir()
    path.write_text("listen: 127.0.0.1:0\ntarget_files: ['targets.d/*.yaml']\ntargets:\n"
                    + _t("keep", h.url("/ok")) + _t("remove", h.url("/ok")) + _t("change", h.url("/ok")))
    collector = Collector(load(path, PROBES), source=lambda found: load(path, PROBES, found=found), otlp=False)
    await collector.start()
    try:
        await _until(lambda: all(len(collector.store.get((n, "default")).history) >= 2
                                 for n in ("keep", "remove", "change")))
        keep_history = list(collector.store.get(("keep", "default")).history)
        path.write_text("listen: 127.0.0.1:0\ntarget_files: ['targets.d/*.yaml']\ntargets:\n"
                        + _t("keep", h.url("/ok")) + _t("change", h.url("/status/500")))
        (tmp_path / "targets.d" / "more.yaml").write_text("targets:\n" + _t("added", h.url("/ok")))
        assert await collector.reload() == []
        await _until(lambda: collector.store.get(("added", "default")).result is not None
                     and collector.store.get(("change", "default")).result.up is False)
        assert collector.store.get(("remove", "default")) is None
        now = list(collector.store.get(("keep", "default")).history)
        assert now[: len(keep_history)] == keep_history  # same history, still growing
        # A broken config is rejected whole: the old targets keep checking.
        path.write_text("targets:\n  - name: x\n    kind: nope\n")
        problems = await collector.reload()
        assert problems and "unknown kind 'nope'" in problems[0]
        before = len(collector.store.get(("keep", "default")).history)
        await _until(lambda: len(collector.store.get(("keep", "default")).history) >= min(before + 2, 20))
        text = collector.bridge.render().decode()
        assert "otel_health_config_last_reload_successful 0" in text
        assert 'tta_service_up{service="added"' in text
    finally:
        await collector.stop(grace=1)


async def _until(predicate, timeout: float = 10.0) -> None:
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except AttributeError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


def test_broken_reload_by_post_and_by_sighup_keeps_the_old_config(http_targets: HttpTargets,
                                                                  tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "config.yaml"
    good = f"listen: 127.0.0.1:{port}\ntargets:\n" + _t("api", http_targets.url("/ok"))
    path.write_text(good)
    process = Process("otel-health", [sys.executable, "-m", "otel_health", "run", "--config", str(path)],
                      log_path=tmp_path / "run.log")

    def metrics() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def checks() -> float:
        line = next(x for x in metrics().splitlines() if x.startswith('tta_service_checks_total{service="api"'))
        return float(line.rsplit(" ", 1)[1])

    try:
        process.wait_ready(lambda: 'tta_service_up{service="api"' in metrics(), timeout=30)
        path.write_text("targets: [oops\n")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/-/reload", method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 400
        assert "not valid YAML" in json.loads(info.value.read())["errors"][0]
        assert "otel_health_config_last_reload_successful 0" in metrics()
        path.write_text(good)
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert json.loads(resp.read()) == {"status": "success"}
        assert "otel_health_config_last_reload_successful 1" in metrics()
        path.write_text("targets:\n  - name: api\n    kind: http\n")  # no url
        process.signal(signal.SIGHUP)
        wait_until(lambda: "otel_health_config_last_reload_successful 0" in metrics(), timeout=10,
                   what="the SIGHUP reload to be rejected")
        before = checks()
        wait_until(lambda: checks() >= before + 3, timeout=10, what="the old target to keep checking")
        assert "reload_rejected" in process.log_path.read_text()
    finally:
        process.stop()


async def test_debounced_state_follows_n_failures_and_m_successes(http_targets: HttpTargets) -> None:
    h = http_targets
    codes = "200,500,200,500,500,200,200,500,500,500"
    debounce = "    failure_threshold: 2\n    success_threshold: 2\n"
    url = h.url(f"/sequence?key=flip-{time.time()}&codes={codes}")
    text = "targets:\n" + _t("flip", url, debounce, interval="0.15s", timeout="0.15s")
    async with running(text) as r:
        await r.wait_for(lambda: r.checks("flip") >= 10, timeout=15, what="ten checks")
        state = r.collector.store.get(("flip", "default"))
        history = list(state.history)[:10]
    raw = "".join("U" if entry.up else "D" for entry in history)
    debounced = "".join("U" if entry.debounced_up else "D" for entry in history)
    assert raw == "UDUDDUUDDD"
    assert debounced == "UUUUDDUUDD"


async def test_tls_certificate_expiry_is_exported_exactly(http_targets: HttpTargets) -> None:
    h = http_targets
    end = subprocess.run(["openssl", "x509", "-in", str(h.cert), "-noout", "-enddate"], check=True,
                         capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    expected = ssl.cert_time_to_seconds(end)
    text = ("targets:\n" + _t("tls", h.url("/ok", tls=True), f"    ca_file: {h.cert}\n")
            + _t("tls-soon", h.url("/ok", tls=True), f"    ca_file: {h.cert}\n    tls_min_days_left: 30\n"))
    async with running(text) as r:
        await r.wait_result("tls")
        soon = await r.wait_result("tls-soon")
        _, _, metrics = await r.get("/metrics")
    line = next(x for x in metrics.splitlines()
                if x.startswith('tta_service_tls_cert_expiry_timestamp_seconds{service="tls"'))
    assert float(line.rsplit(" ", 1)[1]) == expected
    assert soon.up is False and soon.error_type == "tls" and "expires in" in soon.detail


def test_check_json_is_stable_and_exit_code_follows_critical_targets(
    http_targets: HttpTargets, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    h = http_targets
    path = tmp_path / "c.yaml"
    path.write_text("targets:\n" + _t("api", h.url("/ok"), "    version_field: version\n")
                    + _t("optional", h.url("/status/503"), "    critical: false\n"))
    assert main(["check", "--config", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "pass"
    api, optional = doc["targets"]
    assert set(api) == {"service", "environment", "kind", "critical", "up", "duration_seconds", "error_type",
                        "detail", "status_code", "version", "info"}
    assert (api["up"], api["version"], api["status_code"], api["info"]) == (True, "1.2.3", 200, {})
    assert (optional["up"], optional["error_type"], optional["critical"]) == (False, "http_status", False)
    path.write_text(path.read_text().replace("critical: false", "critical: true"))
    assert main(["check", "--config", str(path)]) == 1
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["SERVICE", "ENVIRONMENT", "KIND", "STATUS", "DURATION", "DETAIL"]
    assert "DOWN" in table[2] and "http_status: http://" in table[2] and ": status 503" in table[2]


def test_probe_works_for_http_https_and_tcp_and_redacts_credentials(
    http_targets: HttpTargets, capsys: pytest.CaptureFixture[str], seeded_password: str,
) -> None:
    h = http_targets
    assert main(["probe", h.url("/ok")]) == 0
    assert main(["probe", f"https://127.0.0.1:{h.tls_port}/ok"]) == 1  # self-signed: not trusted
    assert "tls" in capsys.readouterr().out
    assert main(["probe", f"tcp://127.0.0.1:{h.port}"]) == 0
    assert main(["probe", f"tcp://127.0.0.1:{h.closed_port}"]) == 1
    capsys.readouterr()
    authed = f"http://checker:{seeded_password}@127.0.0.1:{h.port}/auth"
    assert main(["probe", authed, "--json"]) == 0
    out = capsys.readouterr().out
    assert seeded_password not in out
    assert json.loads(out)["up"] is True
    assert main(["probe", f"http://checker:wrong-{seeded_password}@127.0.0.1:{h.port}/auth"]) == 1
    out = capsys.readouterr().out
    assert seeded_password not in out and "REDACTED" in out
    assert main(["probe", "gopher://x"]) == 2


def test_probe_takes_grpc_and_dns_urls(
    grpc_server: servers.Grpcd, dns_server: servers.Nsd, capsys: pytest.CaptureFixture[str],
) -> None:
    g, d = grpc_server, dns_server
    assert main(["probe", f"grpc://127.0.0.1:{g.port}"]) == 0
    assert main(["probe", f"grpc://127.0.0.1:{g.port}/api"]) == 0
    assert main(["probe", f"grpc://127.0.0.1:{g.port}/db"]) == 1
    assert f"not_serving: 127.0.0.1:{g.port}: service 'db' is NOT_SERVING" in capsys.readouterr().out
    assert main(["probe", f"grpcs://127.0.0.1:{g.tls_port}"]) == 1  # self-signed: not trusted
    assert "tls" in capsys.readouterr().out
    assert main(["probe", f"dns://{d.server}/www.{servers.ZONE}?type=A", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["up"] is True
    assert main(["probe", f"dns://{d.server}/big.{servers.ZONE}?type=TXT&transport=tcp"]) == 0
    assert main(["probe", f"dns://{d.server}/nope.{servers.ZONE}"]) == 1
    assert "rcode NXDOMAIN" in capsys.readouterr().out
    assert main(["probe", "dns://ns1.example.com/www.example.com"]) == 2
    assert "is an IP address" in capsys.readouterr().err
