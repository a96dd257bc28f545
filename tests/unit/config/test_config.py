"""Config loading: every promised error, secrets only by reference, all problems at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from otel_health.cli import main
from otel_health.config import ConfigError, Secret
from otel_health.config.loader import load, load_text
from otel_health.probes import PROBES
from otel_health.probes.http import HttpOptions, StatusRange
from otel_health.probes.tcp import TcpOptions

TESTDATA = Path(__file__).parents[2] / "testdata"
INVALID = sorted(TESTDATA.glob("invalid-*.yaml"))


def _expectations(path: Path) -> tuple[list[str], list[str]]:
    text = path.read_text()
    return re.findall(r"^# expect: (.+)$", text, re.M), re.findall(r"^# never: (.+)$", text, re.M)


def test_every_invalid_file_declares_what_it_expects() -> None:
    assert len(INVALID) >= 15
    for path in INVALID:
        assert _expectations(path)[0], f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_config_reports_each_promised_error_on_one_line(path: Path) -> None:
    expected, never = _expectations(path)
    with pytest.raises(ConfigError) as info:
        load(path, PROBES)
    problems = info.value.problems
    for line in problems:
        assert "\n" not in line
        assert re.match(rf"{re.escape(str(path))}:\d+:\d+: ", line), f"no line and column: {line}"
    for want in expected:
        assert any(want in line for line in problems), f"{want!r} not in:\n" + "\n".join(problems)
    if "invalid-many" not in path.name:
        assert len(problems) == len(expected), "\n".join(problems)
    for secret in never:
        assert secret not in str(info.value)


def test_all_problems_of_a_file_come_at_once() -> None:
    path = TESTDATA / "invalid-many.yaml"
    with pytest.raises(ConfigError) as info:
        load(path, PROBES)
    assert len(info.value.problems) == len(_expectations(path)[0])


def test_full_config_parses_with_defaults_overrides_and_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_HEALTH_TEST_TOKEN", "Bearer env-token-value")
    config = load(TESTDATA / "valid-full.yaml", PROBES)
    assert (config.listen_host, config.listen_port, config.environment, config.concurrency) == (
        "127.0.0.1", 0, "staging", 64)
    api, frontend, redis = config.targets
    assert (api.interval, api.timeout, api.retries, api.slow_threshold) == (10.0, 2.0, 1, 0.5)
    assert api.labels == (("team", "core"), ("tier", "1"))
    assert isinstance(api.options, HttpOptions)
    assert api.options.expect_status == (StatusRange(200, 200), StatusRange(300, 302))
    assert api.options.json_equals == (("status", "ok"), ("checks.db", "up"))
    assert api.options.follow_redirects is False
    token = dict(api.options.headers)["Authorization"]
    assert isinstance(token, Secret) and token.reveal() == "Bearer env-token-value"
    assert "env-token-value" not in repr(api) and "env-token-value" not in str(api.options.public())
    assert api.secrets() == ["Bearer env-token-value"]
    assert "token=REDACTED" in api.options.public()["url"]
    assert frontend.options.basic_auth_password.reveal() == "file-secret-value"
    assert (frontend.interval, frontend.timeout, frontend.critical) == (30.0, 5.0, False)
    assert isinstance(redis.options, TcpOptions)
    send, expect = redis.options.dialog  # the one-line dialog: the send, then the expect
    assert send.send == b"PING\r\n" and send.expect is None
    assert expect.expect is not None and expect.expect.found(b"+PONG\r\n") and expect.send is None


def test_empty_config_uses_documented_defaults() -> None:
    config = load_text("targets: []\n", "empty.yaml", PROBES)
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 8090)
    assert (config.defaults.interval, config.defaults.timeout, config.defaults.retries) == (15.0, 5.0, 0)
    assert config.concurrency >= 256


@pytest.mark.parametrize(("text", "seconds"), [("5s", 5.0), ("250ms", 0.25), ("1m", 60.0), (3, 3.0), (0.5, 0.5)])
def test_durations_accept_units_and_plain_seconds(text: object, seconds: float) -> None:
    yaml_text = f"defaults:\n  slow_threshold: {text}\ntargets: []\n"
    assert load_text(yaml_text, "d.yaml", PROBES).defaults.slow_threshold == seconds


def test_validate_command_prints_every_problem_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(TESTDATA / "invalid-many.yaml")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(_expectations(TESTDATA / "invalid-many.yaml")[0])


def test_validate_command_accepts_a_good_file(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                               ) -> None:
    monkeypatch.setenv("OTEL_HEALTH_TEST_TOKEN", "x")
    assert main(["validate", str(TESTDATA / "valid-full.yaml")]) == 0
    assert "ok, 3 targets" in capsys.readouterr().out


def test_builtin_default_config_checks_the_collector_itself() -> None:
    from otel_health.cli import _load

    config = _load(None, "127.0.0.1:9123")
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 9123)
    assert {t.kind for t in config.targets} == {"http", "tcp"}
    assert config.targets[0].options.url == "http://127.0.0.1:9123/-/healthy"
    assert config.targets[1].options.port == 9123


def test_config_files_are_read_with_a_bound_regular_files_only(tmp_path: Path, capsys) -> None:
    import os

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    deep = tmp_path / "deep.yaml"
    deep.write_text("targets: " + "[" * 50_000 + "]" * 50_000 + "\n")
    cases = ((fifo, "not a regular file"), (zero, "not a regular file"), ("/dev/zero", "not a regular file"),
             (deep, "nested deeper than a config can be"))
    for path, reason in cases:
        assert main(["validate", str(path)]) == 1
        out = capsys.readouterr()
        lines = out.err.strip().splitlines()
        assert len(lines) == 1 and reason in lines[0] and str(path) in lines[0], out.err
        assert "Traceback" not in out.err


def test_target_files_that_are_not_regular_or_too_deep_are_problems(tmp_path: Path) -> None:
    import os

    (tmp_path / "targets.d").mkdir()
    os.mkfifo(tmp_path / "targets.d" / "a.yaml")
    (tmp_path / "targets.d" / "b.yaml").write_text("[" * 50_000)
    (tmp_path / "targets.d" / "c.yaml").mkdir()  # a folder a glob matches
    with pytest.raises(ConfigError) as info:
        load_text("target_files: ['targets.d/*.yaml']\n", "c.yaml", PROBES, base_dir=tmp_path)
    problems = "\n".join(info.value.problems)
    assert "a.yaml" in problems and "not a regular file" in problems
    assert "b.yaml" in problems and "nested deeper" in problems
    assert "c.yaml" in problems and "(a FIFO, device or directory)" in problems


@pytest.mark.parametrize("token", ["", "  spaced-token  ", "two words", "t\u00f6ken"])
def test_an_api_token_no_request_could_match_is_refused(tmp_path: Path, token: str) -> None:
    (tmp_path / "token").write_text(token + "\n")
    with pytest.raises(ConfigError) as info:
        load_text("api_token_file: token\n", "c.yaml", PROBES, base_dir=tmp_path)
    assert any("must be a bearer token" in line for line in info.value.problems)
    (tmp_path / "token").write_text("s3cret-Token_0=\n")
    assert load_text("api_token_file: token\n", "c.yaml", PROBES, base_dir=tmp_path).api_token is not None


def test_a_secret_file_that_is_a_device_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pw").symlink_to("/dev/zero")
    with pytest.raises(ConfigError) as info:
        load_text("api_token_file: pw\n", "c.yaml", PROBES, base_dir=tmp_path)
    assert any("not a regular file" in line for line in info.value.problems)


def test_target_files_in_a_folder_that_cannot_be_read_are_a_problem_not_zero_targets(tmp_path: Path) -> None:
    (tmp_path / "targets.d").write_text("not a folder\n")  # as good as unreadable: nothing can be listed
    with pytest.raises(ConfigError) as info:
        load_text("target_files: ['targets.d/*.yaml']\n", "c.yaml", PROBES, base_dir=tmp_path)
    assert any("targets.d" in line and "cannot be read" in line for line in info.value.problems)
    (tmp_path / "empty.d").mkdir()
    assert load_text("target_files: ['empty.d/*.yaml']\n", "c.yaml", PROBES, base_dir=tmp_path).targets == ()


def test_http_headers_one_per_name_credentials_by_reference_and_redacted(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    from otel_health.probes import ProbeSettings
    from otel_health.probes._credentials import credential_header
    from otel_health.probes.http import HttpProbe

    monkeypatch.setenv("OTEL_HEALTH_VAULT", "s.vault-token-from-env")
    (tmp_path / "key").write_text("api-key-from-file\n")
    text = (
        "targets:\n  - name: api\n    kind: http\n    url: http://faß.example:8080/x\n"
        "    headers:\n      Host: Vhost.Bücher.example:8443\n      User-Agent: custom-agent\n"
        "      X-Vault-Token: ${OTEL_HEALTH_VAULT}\n      Billing-Api-Key: {file: key}\n      X-Plain: 1\n"
        "      traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n"
    )
    config = load_text(text, "t.yaml", PROBES, base_dir=tmp_path)
    options = config.targets[0].options
    assert options.host == "vhost.xn--bcher-kva.example:8443"
    public = options.public()
    assert public["headers"]["X-Vault-Token"] == "REDACTED (env:OTEL_HEALTH_VAULT)"
    assert public["headers"]["Billing-Api-Key"].startswith("REDACTED (file:")
    assert "s.vault-token-from-env" not in repr(public) and "api-key-from-file" not in repr(public)
    assert set(config.targets[0].secrets()) == {"s.vault-token-from-env", "api-key-from-file"}
    request = HttpProbe(ProbeSettings(user_agent="otel-health/x"))._prepare(config.targets[0]).request
    names = [name.lower() for name, _ in request.headers]
    assert len(names) == len(set(names))  # one value per name
    assert dict(request.headers)["User-Agent"] == "custom-agent"  # configured replaces derived
    assert (request.host, request.server_name) == ("vhost.xn--bcher-kva.example:8443", "vhost.xn--bcher-kva.example")
    assert {"x-vault-token", "billing-api-key", "authorization", "cookie"} <= request.private
    assert "x-plain" not in request.private
    prepared = HttpProbe(ProbeSettings())._prepare(config.targets[0])
    assert prepared.traceparent is False  # a configured traceparent is sent instead of ours
    for name in ("X-Vault-Token", "Private-Token", "X-Api-Token", "Billing-Api-Key", "Token", "Cookie",
                 "X-Auth-Token", "Proxy-Authorization", "X-Session-Id", "Secret-Key"):
        assert credential_header(name), name
    for name in ("X-Request-Id", "Accept", "X-Idempotency-Key", "Keep-Alive", "X-Tokenizer-Mode"):
        assert not credential_header(name), name


def test_validate_without_secrets_checks_their_form_and_reads_none(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """Where validators run (CI, a pre-commit hook) the production secrets are absent: with
    --no-secrets a reference passes on its form, a credential written inline still fails, and
    nothing the references name is read or printed."""
    monkeypatch.delenv("OTEL_HEALTH_TEST_TOKEN", raising=False)
    monkeypatch.setenv("REDIS_PASSWORD", "Zq7-never-read")
    path = tmp_path / "c.yaml"
    path.write_text("api_token_file: /run/secrets/absent-token\ntargets:\n"
                    "  - {name: cache, kind: redis, host: 127.0.0.1, port: 6379, password: '${REDIS_PASSWORD}'}\n"
                    "  - {name: api, kind: http, url: 'http://127.0.0.1/', headers: {X-Api-Token: '${NOT_SET}'}}\n"
                    "  - {name: job, kind: heartbeat, period: 1h, token_file: absent/token}\n")
    assert main(["validate", str(path)]) == 1
    assert "absent-token" in capsys.readouterr().err
    assert main(["validate", "--no-secrets", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "ok, 3 targets; secrets checked for form only" in out and not err and "Zq7" not in out
    config = load(path, PROBES, resolve_secrets=False)
    assert config.targets[0].options.password.source == "env:REDIS_PASSWORD"
    assert "Zq7" not in config.targets[0].options.password.reveal()
    path.write_text("targets:\n  - {name: cache, kind: redis, host: 127.0.0.1, port: 6379, password: hunter2}\n")
    assert main(["validate", "--no-secrets", str(path)]) == 1
    assert "credentials are not accepted inline" in capsys.readouterr().err


def test_an_unknown_kind_says_what_was_meant_once_and_its_name_stays_a_target() -> None:
    text = ("targets:\n"
            "  - {name: postgres, kind: postgresql, host: db, port: 5432, user: app, database: app, sslmode: disable}\n"
            "  - {name: cache, kind: Redis, host: r, port: 6379}\n"
            "  - {name: web, kind: http2, url: 'http://x/'}\n"
            "  - {name: api, kind: http, url: 'http://api/', depends_on: [postgres, cache, web]}\n")
    with pytest.raises(ConfigError) as refused:
        load_text(text, "c.yaml", PROBES)
    assert refused.value.problems == [
        "c.yaml:2:28: targets[0] (postgres): field 'kind': unknown kind 'postgresql'; did you mean 'postgres'? "
        f"(kinds: {', '.join(sorted(PROBES))})",
        f"c.yaml:3:25: targets[1] (cache): field 'kind': unknown kind 'Redis'; did you mean 'redis'? "
        f"(kinds: {', '.join(sorted(PROBES))})",
        f"c.yaml:4:23: targets[2] (web): field 'kind': unknown kind 'http2'; did you mean 'http' with 'http2: true'? "
        f"(kinds: {', '.join(sorted(PROBES))})",
    ]  # one line each: no cascade of unknown fields, no false unknown dependency
    fixed = text.replace("postgresql", "postgres").replace("Redis", "redis").replace(
        "kind: http2, url: 'http://x/'", "kind: http, url: 'https://x/', http2: true")
    assert [t.kind for t in load_text(fixed, "c.yaml", PROBES).targets] == ["postgres", "redis", "http", "http"]


def test_a_problem_in_defaults_is_said_once_where_it_is_written() -> None:
    text = ("defaults:\n  interval: 5s\n  timeout: 10s\ntargets:\n"
            + "".join(f"  - {{name: t{i}, kind: tcp, host: 127.0.0.1, port: 1}}\n" for i in range(5))
            + "  - {name: own, kind: tcp, host: 127.0.0.1, port: 1, interval: 20s, timeout: 30s}\n")
    with pytest.raises(ConfigError) as refused:
        load_text(text, "c.yaml", PROBES)
    assert refused.value.problems == [
        "c.yaml:3:12: defaults: field 'timeout': 10s is longer than the interval 5s; make the timeout at most the "
        "interval",
        "c.yaml:10:78: targets[5] (own): field 'timeout': 30s is longer than the interval 20s; make the timeout at "
        "most the interval"]


HINTED = [  # (config, what the fix hint names), each with a credential the way it must not be written
    ("api_token: hunter2\ntargets: []\n", "api_token"),
    ("targets:\n  - {name: a, kind: http, url: 'http://x/', headers: {X-Vault-Token: hunter2}}\n", "headers"),
    ("targets:\n  - {name: b, kind: grpc, host: x, port: 1, metadata: {authorization: '${NOT_SET_ANYWHERE}'}}\n",
     "metadata"),
    ("targets:\n  - {name: c, kind: redis, host: x, port: 1, password: '${NOT_SET_ANYWHERE}'}\n", "password"),
]


@pytest.mark.parametrize(("text", "field"), HINTED, ids=[f for _, f in HINTED])
def test_every_fix_hint_names_a_form_the_loader_takes(text: str, field: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The form a hint suggests, written back into the config, loads."""
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    (tmp_path / "secret").write_text("s3cret-value")
    with pytest.raises(ConfigError) as refused:
        load_text(text, "c.yaml", PROBES, base_dir=tmp_path)
    (problem,) = refused.value.problems
    suggested = re.search(r"(\{file: /path/to/file\}|'(\w+)_file: /path/to/file')$", problem)
    assert suggested is not None, problem
    if suggested.group(2):  # NAME_file: path, beside the other fields
        fixed = re.sub(rf"{suggested.group(2)}: ('[^']*'|[^,}}\n]+)", f"{suggested.group(2)}_file: secret", text)
    else:  # the value becomes {file: path}
        fixed = re.sub(r"(X-Vault-Token|authorization): ('[^']*'|[^,}]+)", r"\1: {file: secret}", text)
    load_text(fixed, "c.yaml", PROBES, base_dir=tmp_path)
