"""``otel-health init``: what it writes loads, and means what ``probe`` reads from the same URL."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from otel_health.cli import main
from otel_health.config import Secret
from otel_health.config.loader import load_text
from otel_health.probes import PROBES
from otel_health.starter import InitError, starter

PASSWORD = "s3cr:t/p@ss w%rd"  # characters a URL must quote
QUOTED = quote(PASSWORD, safe="")

# At least one URL for every scheme `probe` takes, with what each scheme's parser reads.
URLS = [
    f"https://monitor:{QUOTED}@api.example.com:8443/health?deep=1",
    "http://web.example.com/",
    f"redis://:{QUOTED}@cache.internal:6380/2",
    "rediss://cache-tls.internal",
    f"postgresql://app:{QUOTED}@db.internal/orders?sslmode=require",
    "postgres://db2.internal:5433",
    "tcp://mq.internal:5672",
    "tcps://mq.internal:5671",
    "dns://192.0.2.53:5353/example.com?type=MX&transport=tcp",
    f"bolt://neo4j:{QUOTED}@graph.internal:7687/movies",
    "neo4j+s://graph2.internal",
    "neo4j://graph3.internal:7688",
    "bolt+s://graph4.internal",
    "bolt+ssc://graph5.internal",
    "neo4j+ssc://graph6.internal",
    "grpc://svc.internal:50051/orders.Orders",
    "grpcs://svc2.internal:443",
    "icmp://gateway.internal",
    "wss://feed.internal/live",
    "ws://chat.internal:8080/socket",
    f"ssh://monitor:{QUOTED}@bastion.internal:2222",
    f"redis://:{QUOTED}@10.0.0.5:6379",     # an address: named by its kind, a variable that starts with a letter
    f"postgresql://app:{QUOTED}@[2001:db8::5]:5432/app",
]


def _plain(value: Any) -> Any:
    """Options with every secret as its value: where it came from differs by design."""
    if isinstance(value, Secret):
        return ("secret", value.reveal())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def test_every_scheme_probe_takes_is_covered() -> None:
    schemes = {scheme for cls in PROBES.values() for scheme in cls.schemes}
    assert {url.split(":", 1)[0] for url in URLS} == schemes


def test_the_targets_init_writes_mean_what_probe_reads_from_the_same_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    text = starter(URLS, PROBES)
    for variable in ("API_PASSWORD", "CACHE_PASSWORD", "DB_PASSWORD", "GRAPH_PASSWORD", "BASTION_PASSWORD",
                     "REDIS_PASSWORD", "POSTGRES_PASSWORD"):
        assert f"${{{variable}}}" in text
        monkeypatch.setenv(variable, PASSWORD)
    config = load_text(text, "init.yaml", PROBES)
    assert len(config.targets) == len(URLS)
    by_kind = {scheme: cls for cls in PROBES.values() for scheme in cls.schemes}
    for url, target in zip(URLS, config.targets, strict=True):
        cls = by_kind[url.split(":", 1)[0]]
        assert target.kind == cls.kind, url
        assert _plain(target.options) == _plain(cls.options_from_url(url)), url
    names = [t.name for t in config.targets]
    assert names[:3] == ["api", "web", "cache"] and "example" in names  # the DNS check is named by its query
    assert names[-2:] == ["redis", "postgres"]
    assert len(set(names)) == len(names)


def test_a_password_in_a_url_is_never_written_in_any_encoding() -> None:
    text = starter(URLS, PROBES)
    for form in (PASSWORD, QUOTED, quote(PASSWORD), base64.b64encode(PASSWORD.encode()).decode(),
                 base64.b64encode(f"monitor:{PASSWORD}".encode()).decode(), "s3cr"):
        assert form not in text
    assert "set API_PASSWORD in the environment" in text


def test_the_starter_without_urls_loads_and_checks_the_collector_itself() -> None:
    text = starter([], PROBES, listen="127.0.0.1:9191")
    config = load_text(text, "starter.yaml", PROBES)
    assert [(t.name, t.kind) for t in config.targets] == [("otel-health", "http")]
    assert config.targets[0].options.url == "http://127.0.0.1:9191/-/healthy"
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 9191)
    commented = [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("# - name:")]
    assert commented == ["- name: api", "- name: cache", "- name: db", "- name: backup"]
    # every commented example loads too, once uncommented (the credentials checked for their form)
    uncommented = "\n".join(line.replace("  # ", "  ", 1) if line.startswith(("  # -", "  #   ")) else line
                            for line in text.splitlines())
    examples = load_text(uncommented, "starter.yaml", PROBES, resolve_secrets=False)
    assert [t.kind for t in examples.targets] == ["http", "http", "redis", "postgres", "heartbeat"]


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://files.example.com", "ftp://files.example.com: unknown scheme; use one of bolt, bolt+s"),
    (f"tcp://user:{QUOTED}@mq.internal", "a TCP URL needs a host and a port"),
    ("dns://resolver.example.com/example.com", "the server in a DNS URL is an IP address"),
])
def test_a_url_init_cannot_use_is_said_in_one_line(url: str, message: str) -> None:
    with pytest.raises(InitError) as caught:
        starter([url], PROBES)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert PASSWORD not in str(caught.value) and QUOTED not in str(caught.value)


def test_init_writes_a_file_once_and_validate_takes_it_as_check_does(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "otel-health.yaml"
    assert main(["init", "tcp://mq.internal:5672", "--output", str(out)]) == 0
    assert "name: mq" in out.read_text()
    assert main(["init", "--output", str(out)]) == 2
    assert "the file exists; give another name or --force" in capsys.readouterr().err
    assert "name: mq" in out.read_text()  # not replaced
    assert main(["init", "--output", str(out), "--force"]) == 0
    assert "name: otel-health" in out.read_text()
    capsys.readouterr()
    for argv in (["validate", str(out)], ["validate", "--config", str(out)], ["validate", "-c", str(out)]):
        assert main(argv) == 0
        assert capsys.readouterr().out == f"{out}: ok, 1 targets\n"
    assert main(["validate"]) == 0
    assert capsys.readouterr().out == "<built-in default>: ok, 2 targets\n"
    assert main(["validate", str(out), "--config", str(tmp_path / "other.yaml")]) == 2
    assert "give one" in capsys.readouterr().err
    assert main(["init", "--listen", "nowhere"]) == 2


def test_validate_places_a_statefulsets_ordinal_shard_as_it_is_told(capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Off the cluster no host name ends in -N: `--shard` places it, as `check` and `run` take it."""
    monkeypatch.setenv("HOSTNAME", "laptop")  # the name this test's machine has is not asked
    example = str(Path(__file__).resolve().parents[2] / "examples" / "kubernetes" / "otel-health.yaml")
    assert main(["validate", "--no-secrets", "--config", example]) == 1
    assert "ends in no -NUMBER" in capsys.readouterr().err
    assert main(["validate", "--no-secrets", "--config", example, "--shard", "0/3"]) == 0
    assert "ok, 4 targets (shard 0/3 checks" in capsys.readouterr().out

