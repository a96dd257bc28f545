"""Names are names: a trailing newline or another separator never slips past a pattern that
guards a name, a label, a host or an environment (each pattern matches the whole string), in
the config, in what discovery finds, and in every API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from otel_health.config import ConfigError
from otel_health.config.loader import load, load_text
from otel_health.discovery.groups import SdError, parse_groups, split_address
from otel_health.probes import PROBES
from otel_health.server import host_allowed

SEPARATORS = ["\n", "\r", "\r\n", "\t", " ", "\x00", "\u2028", "\x85"]

TEMPLATES = {
    "name": 'targets:\n  - {{name: "api{s}", kind: tcp, host: 127.0.0.1, port: 1}}\n',
    "environment": 'environment: "prod{s}"\ntargets: []\n',
    "target environment": 'targets:\n  - {{name: api, environment: "prod{s}", kind: tcp, host: 127.0.0.1, port: 1}}\n',
    "host": 'targets:\n  - {{name: api, kind: tcp, host: "127.0.0.1{s}", port: 1}}\n',
    "label name": 'targets:\n  - {{name: api, kind: tcp, host: 127.0.0.1, port: 1, labels: {{"x{s}": a}}}}\n',
    "dependency": 'targets:\n  - {{name: api, kind: tcp, host: 127.0.0.1, port: 1, depends_on: ["db{s}"]}}\n'
                  '  - {{name: db, kind: tcp, host: 127.0.0.1, port: 1}}\n',
    "location": 'location: "eu{s}"\ntargets: []\n',
    "allowed host": 'allowed_hosts: ["otel.example{s}"]\ntargets: []\n',
    "header name": 'targets:\n  - {{name: api, kind: http, url: "http://127.0.0.1/", headers: {{"X-A{s}": b}}}}\n',
    "window name": 'maintenance: [{{name: "w{s}", weekdays: [sunday]}}]\ntargets: []\n',
    "api token": 'api_token: "${{TOKEN_WITH_SEPARATOR}}"\ntargets: []\n',
    "dns name": 'targets:\n  - {{name: d, kind: dns, server: 127.0.0.1, query_name: "example.com{s}"}}\n',
    "grpc service": 'targets:\n  - {{name: g, kind: grpc, host: 127.0.0.1, port: 1, service: "pay{s}"}}\n',
}


@pytest.mark.parametrize("separator", SEPARATORS, ids=repr)
@pytest.mark.parametrize("field", sorted(TEMPLATES))
def test_a_separator_in_a_name_is_refused_where_the_config_is_read(field: str, separator: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if separator != "\x00":  # no environment holds a NUL
        monkeypatch.setenv("TOKEN_WITH_SEPARATOR", f"s3cret{separator}")
    text = TEMPLATES[field].format(s=json.dumps(separator)[1:-1])
    with pytest.raises(ConfigError) as refused:
        load_text(text, "c.yaml", PROBES)
    assert all("\n" not in line for line in refused.value.problems)  # one line each, the value escaped


@pytest.mark.parametrize("separator", SEPARATORS, ids=repr)
def test_a_separator_in_what_discovery_finds_is_refused(separator: str, tmp_path: Path) -> None:
    with pytest.raises(SdError):
        parse_groups(json.dumps([{"targets": ["a:1"], "labels": {f"x{separator}": "v"}}]), "json")
    with pytest.raises(SdError):
        split_address(f"127.0.0.1:80{separator}")
    with pytest.raises(SdError):
        split_address(f"api{separator}:80")
    (tmp_path / "sd.json").write_text(json.dumps([{"targets": ["a:1"], "labels": {"service": f"api{separator}"}}]))
    path = tmp_path / "c.yaml"
    path.write_text("discovery:\n  - name: inv\n    file_sd: {files: [sd.json]}\n"
                    '    target_template: {name: "$(labels.service)", kind: tcp, host: "$(host)", port: 80}\n'
                    "targets: []\n")
    config = load(path, PROBES)  # a name made from a label: what a name cannot hold becomes '_'
    assert [t.name for t in config.targets] == ["api_"]


def test_a_separator_in_a_host_header_is_not_a_name_the_api_answers_to() -> None:
    for separator in SEPARATORS:
        assert not host_allowed(f"otel.example{separator}", {"otel.example"}), repr(separator)
        assert not host_allowed(f"127.0.0.1{separator}", {"otel.example"}, strict=True), repr(separator)


async def test_a_separator_in_a_name_given_to_an_api_finds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiohttp

    from tests.harness.running import running

    monkeypatch.setenv("JOB_TOKEN", "job-token-1")
    text = ("targets:\n  - {name: db, kind: tcp, host: 127.0.0.1, port: 1, interval: 1h}\n"
            "  - {name: job, kind: heartbeat, period: 1h, token: '${JOB_TOKEN}'}\n")
    async with running(text) as r, aiohttp.ClientSession() as session:
        for separator in ("\n", "\r", "\t", " "):
            async with session.post(f"{r.url}/api/v1/maintenance",
                                    json={"targets": [f"db{separator}"], "duration": "10m"}) as resp:
                assert resp.status == 400 and "unknown target" in (await resp.json())["errors"][0]
            async with session.post(f"{r.url}/api/v1/maintenance", json={
                    "targets": [{"name": "db", "environment": f"default{separator}"}], "duration": "10m"}) as resp:
                assert resp.status == 400
            quoted = {"\n": "%0A", "\r": "%0D", "\t": "%09", " ": "%20"}[separator]
            async with session.post(f"{r.url}/api/v1/heartbeat/job{quoted}",
                                    headers={"Authorization": "Bearer job-token-1"}) as resp:
                assert resp.status == 404, separator
            async with session.post(f"{r.url}/api/v1/heartbeat/job?environment=default{quoted}",
                                    headers={"Authorization": "Bearer job-token-1"}) as resp:
                assert resp.status == 404, separator
        assert r.state("db").suppressed is None
