"""Discovery's pure parts: Prometheus target groups, the template, and the last good set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from otel_health.config import ConfigError, Placement
from otel_health.config.loader import load
from otel_health.discovery import Answer, Found
from otel_health.discovery.endpoints import Endpoint
from otel_health.discovery.groups import SdError, parse_groups, split_address
from otel_health.probes import PROBES


def test_target_groups_are_read_as_prometheus_writes_them() -> None:
    groups = parse_groups(b'[{"targets": ["a:1", "b:2"], "labels": {"job": "x", "__meta_z": "1"}}, {"targets": []}]',
                          "json")
    assert [(g.targets, dict(g.labels)) for g in groups] == [(("a:1", "b:2"), {"job": "x", "__meta_z": "1"}),
                                                            ((), {})]
    assert parse_groups("- targets: ['c:3']\n", "yaml")[0].targets == ("c:3",)
    assert parse_groups("", "yaml") == ()


@pytest.mark.parametrize(("data", "fmt", "problem"), [
    ('{"targets": []}', "json", "must be a list of target groups"),
    ('[{"targets": "a:1"}]', "json", "'targets' must be a list"),
    ('[{"targets": ["a:1"], "labels": {"a-b": "x"}}]', "json", "label name 'a-b' is not valid"),
    ('[{"targets": ["a:1"], "labels": {"n": 1}}]', "json", "label 'n' must be text"),
    ('[{"targets": ["a:1"], "label": {}}]', "json", "unknown field 'label'"),
    ('[{"targets": ["a:1"]', "json", "not valid JSON"),
    ("- &a {targets: []}\n- *a\n", "yaml", "not valid YAML"),
    (b"\xff\xfe", "json", "not UTF-8"),
])
def test_bad_target_groups_are_named(data: str | bytes, fmt: str, problem: str) -> None:
    with pytest.raises(SdError, match=problem.replace("(", r"\(").replace("[", r"\[")):
        parse_groups(data, fmt)


def test_an_address_is_host_and_port_never_a_url() -> None:
    assert split_address("api.internal:8080") == ("api.internal", "8080")
    assert split_address("[2001:db8::1]:443") == ("2001:db8::1", "443")
    assert split_address("10.0.0.1") == ("10.0.0.1", "")
    for bad in ("http://a:1", "a:1/x", "user@a:1", "a:99999", "a:", "[::1", "a b:1", ""):
        with pytest.raises(SdError):
            split_address(bad)


def _config(tmp_path: Path, template: str, groups: object, extra: str = "") -> Path:
    (tmp_path / "sd.json").write_text(json.dumps(groups))
    path = tmp_path / "c.yaml"
    path.write_text("targets:\n  - {name: db, kind: tcp, host: 127.0.0.1, port: 5432}\n" + extra +
                    "discovery:\n  - name: inv\n    file_sd: {files: [sd.json]}\n"
                    "    target_template: " + template + "\n")
    return path


def test_the_template_makes_one_target_per_address_with_the_groups_labels(tmp_path: Path) -> None:
    path = _config(tmp_path, '{kind: tcp, host: "$(host)", port: "$(port)", depends_on: [db], '
                             'labels: {rack: "$(labels.__meta_rack)", empty: "$(labels.nothing)"}}',
                   [{"targets": ["a.internal:81", "[::1]:82"], "labels": {"team": "core", "job": "x",
                                                                          "__meta_rack": "r1"}}])
    config = load(path, PROBES)
    made = {t.name: t for t in config.targets if t.name != "db"}
    # names from the address, made names; group labels but the reserved (job) and __*; empty ones left out
    assert sorted(made) == ["1_82", "a.internal_81"]
    assert dict(made["a.internal_81"].labels) == {"team": "core", "rack": "r1"}
    assert made["a.internal_81"].depends_on == ("db",)
    assert config.discovery.status["inv"].ok and config.discovery.status["inv"].targets == 2


def test_a_unit_that_goes_bad_keeps_its_last_good_groups(tmp_path: Path) -> None:
    path = _config(tmp_path, '{name: "$(labels.service)", kind: tcp, host: "$(host)", port: 80}',
                   [{"targets": ["a:1"], "labels": {"service": "one"}}])
    good = load(path, PROBES)
    assert [t.name for t in good.targets] == ["db", "one"]
    for bad, problem in [
        ([{"targets": ["a:1"], "labels": {"service": "${HOME}"}}], "holds '${'"),  # never an env reference
        ([{"targets": ["a:1", "b:1"], "labels": {"service": "same"}}], "make the template's name unique"),
        ([{"targets": ["a:1"], "labels": {"service": "db"}}], "already has"),  # a configured target's name
        ([{"targets": ["a:1"]}], "field 'name'"),  # no label: an empty name
    ]:
        (tmp_path / "sd.json").write_text(json.dumps(bad))
        again = load(path, PROBES, found=good.discovery.found({}))
        assert [t.name for t in again.targets] == ["db", "one"], bad
        (unit, said), = again.discovery.status["inv"].problems
        assert unit.endswith("sd.json") and problem in said, said
    # without a last good set, a bad unit makes nothing, and the load still succeeds
    assert [t.name for t in load(path, PROBES).targets] == ["db"]
    # a removed file is not bad data: its targets go
    (tmp_path / "sd.json").unlink()
    gone = load(path, PROBES, found=good.discovery.found({}))
    assert [t.name for t in gone.targets] == ["db"] and gone.discovery.status["inv"].ok


def test_discovered_targets_are_sharded_and_chosen_by_match_not_by_name(tmp_path: Path) -> None:
    groups = [{"targets": [f"h{i}:80" for i in range(40)], "labels": {"team": "web"}}]
    path = _config(tmp_path, '{kind: tcp, host: "$(host)", port: 80}', groups)
    shares = [load(path, PROBES, placement=Placement(shard=f"{i}/2")) for i in range(2)]
    names = [{t.name for t in s.targets} for s in shares]
    assert not names[0] & names[1] and len(names[0] | names[1]) == 41
    assert all(s.targets_configured == 41 for s in shares)
    window = "maintenance:\n  - {name: w, targets: [h1_80], start: 2026-01-01T00:00:00Z, end: 2026-01-01T01:00:00Z}\n"
    with pytest.raises(ConfigError, match="it is discovered: choose discovered targets by their labels"):
        load(_config(tmp_path, '{kind: tcp, host: "$(host)", port: 80}', groups, window), PROBES)
    window = "maintenance:\n  - {name: w, match: {team: web}, start: 2026-01-01T00:00:00Z, end: 2026-01-01T01:00:00Z}\n"
    config = load(_config(tmp_path, '{kind: tcp, host: "$(host)", port: 80}', groups, window), PROBES)
    assert len(config.maintenance[0].targets or ()) == 40


def test_an_endpoint_answer_is_read_and_a_fetch_problem_keeps_the_set(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("discovery:\n  - name: reg\n    http_sd: {url: 'http://127.0.0.1:9/sd'}\n"
                    "    target_template: {kind: tcp, host: '$(host)', port: 80}\n")
    assert load(path, PROBES).targets == ()  # not fetched yet: nothing, and no problem
    assert load(path, PROBES).discovery.status["reg"].ok
    first = load(path, PROBES, found=Found({}, {"reg": Answer(b'[{"targets": ["x:1"]}]')}))
    assert [t.name for t in first.targets] == ["x_1"]
    down = load(path, PROBES, found=first.discovery.found({"reg": Answer(None, "answered HTTP 503")}))
    assert [t.name for t in down.targets] == ["x_1"]
    assert down.discovery.status["reg"].problems == (("http://127.0.0.1:9/sd", "answered HTTP 503"),)


def test_cache_control_max_age_lengthens_the_poll_within_bounds(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("discovery:\n  - name: reg\n    http_sd: {url: 'http://127.0.0.1:9/sd', refresh_interval: 30s}\n"
                    "    target_template: {kind: tcp, host: '$(host)', port: 80}\n")
    endpoint = Endpoint(load(path, PROBES).discovery.sources[0], "t")
    assert endpoint._next_delay("") == 30
    assert endpoint._next_delay("public, max-age=120") == 120
    assert endpoint._next_delay("max-age=5") == 30  # never sooner than asked
    assert endpoint._next_delay("max-age=999999") == 3600
    assert endpoint._next_delay("no-cache, max-age=120") == 30


def test_validate_counts_what_discovery_finds_and_names_each_bad_file(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from otel_health.cli import main

    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "good.json").write_text('[{"targets": ["a:1", "b:2"]}]')
    (tmp_path / "sd" / "bad.json").write_text("[")
    path = tmp_path / "c.yaml"
    path.write_text("discovery:\n  - name: inv\n    file_sd: {files: ['sd/*.json']}\n"
                    "    target_template: {kind: tcp, host: '$(host)', port: '$(port)'}\n"
                    "  - name: reg\n    http_sd: {url: 'http://127.0.0.1:9/sd'}\n"
                    "    target_template: {kind: tcp, host: '$(host)', port: 80}\n")
    assert main(["validate", str(path)]) == 0  # a bad file is discovery's, kept at run time, not the config's
    out, err = capsys.readouterr()
    assert "ok, 2 targets" in out and "discovery inv: 2 targets from 1 of 2 files" in out
    assert "discovery reg: http://127.0.0.1:9/sd is fetched by a running collector only" in out
    assert err.strip() == f"discovery inv: {tmp_path / 'sd' / 'bad.json'}: not valid JSON (line 1, column 2: " \
                          "Expecting value)"


def test_group_labels_a_kind_reports_itself_are_left_out_and_template_paths_are_the_configs(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not read at load\n")
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "redis.json").write_text(json.dumps(
        [{"targets": ["cache:6379"], "labels": {"role": "primary", "team": "data"}}]))
    path = tmp_path / "c.yaml"
    path.write_text("discovery:\n  - name: inv\n    file_sd: {files: [sd/redis.json]}\n"
                    "    target_template: {kind: redis, host: '$(host)', port: '$(port)', tls: true,"
                    " ca_file: ca.pem}\n")
    config = load(path, PROBES)
    assert config.discovery.status["inv"].ok, config.discovery.status["inv"].problems
    (target,) = config.targets
    assert dict(target.labels) == {"team": "data"}  # 'role' is what a redis target reports in tta_service_info


def test_an_endpoint_whose_ca_file_is_not_one_says_so_at_each_poll_without_stopping_discovery(tmp_path: Path) -> None:
    import asyncio

    (tmp_path / "ca.pem").write_text("not a certificate\n")
    path = tmp_path / "c.yaml"
    path.write_text("discovery:\n  - name: reg\n    http_sd: {url: 'https://127.0.0.1:9/sd', ca_file: ca.pem}\n"
                    "    target_template: {kind: tcp, host: '$(host)', port: 80}\n")
    endpoint = Endpoint(load(path, PROBES).discovery.sources[0], "t")  # does not raise
    answer = asyncio.run(endpoint.fetch(None))
    assert answer is not None and answer.problem is not None and answer.problem.startswith("ca_file cannot be used")
    assert endpoint.failed and asyncio.run(endpoint.fetch(None)) is None  # the same problem: no news


def test_a_source_brings_in_at_most_max_targets_and_bounded_labels_keeping_its_last_good_set(tmp_path: Path) -> None:
    path = _config(tmp_path, '{kind: tcp, host: "$(host)", port: 80}',
                   [{"targets": [f"h{i}:80" for i in range(5)], "labels": {"team": "web"}}],
                   extra="")
    text = path.read_text().replace("    target_template:", "    max_targets: 8\n    target_template:")
    path.write_text(text)
    good = load(path, PROBES)
    assert len(good.targets) == 6 and good.discovery.status["inv"].ok
    for bad, problem in [
        ([{"targets": [f"h{i}:80" for i in range(9)]}], "more than its max_targets (8)"),
        ([{"targets": ["h0:80"], "labels": {"big": "x" * 1025}}], "longer than 1024"),
        ([{"targets": ["h0:80"], "labels": {f"l{i}": "v" for i in range(33)}}], "more than 32"),
        ([{"targets": ["h0:80"], "labels": {"n" * 129: "v"}}], "longer than 128 characters"),
    ]:
        (tmp_path / "sd.json").write_text(json.dumps(bad))
        again = load(path, PROBES, found=good.discovery.found({}))
        assert len(again.targets) == 6, problem  # the last good five, and the configured one
        (_, said), = again.discovery.status["inv"].problems
        assert problem in said, said


def test_a_discovery_file_that_is_a_fifo_is_a_bad_unit_not_a_hang(tmp_path: Path) -> None:
    import os

    path = _config(tmp_path, '{kind: tcp, host: "$(host)", port: 80}', [])
    (tmp_path / "sd.json").unlink()
    os.mkfifo(tmp_path / "sd.json")
    config = load(path, PROBES)
    (_, said), = config.discovery.status["inv"].problems
    assert "not a regular file" in said


def test_a_command_target_cannot_come_from_discovery(tmp_path: Path) -> None:
    groups = [{"targets": ["--output=/etc/passwd"], "labels": {}}]
    for template in ('{kind: command, command: ["/bin/echo", "$(address)"]}', '{kind: command, command: ["true"]}'):
        with pytest.raises(ConfigError, match="command targets cannot come from discovery: a target list would name "
                                              "what runs on this host; write each under targets:"):
            load(_config(tmp_path, template, groups), PROBES)
