"""Bad input never gets a traceback: config files and response bodies, fuzzed."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_health.config import ConfigError
from otel_health.config.loader import load_text
from otel_health.errors import ProbeFailure
from otel_health.probes import PROBES
from otel_health.probes._base import Attempt
from otel_health.probes._messages import Response
from otel_health.probes.http import HttpOptions, _assert_body

KEYS = ["name", "kind", "url", "host", "port", "interval", "timeout", "retries", "slow_threshold", "labels",
        "headers", "expect_status", "basic_auth", "password", "uri", "sslmode", "send", "expect", "db",
        "json_equals", "body_regex", "critical", "environment", "tls", "bogus", "ünïcødé", ""]
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
                    st.sampled_from(["http", "tcp", "redis", "postgres", "neo4j", "5s", "${X}", "http://127.0.0.1/",
                                     "[", "9" * 400, "200-399", "*a"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)), max_leaves=20)
targets = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)
configs = st.fixed_dictionaries({}, optional={
    "targets": st.one_of(st.lists(targets, max_size=4), values),
    "defaults": st.one_of(st.dictionaries(st.sampled_from(["interval", "timeout", "retries", "x"]), values), values),
    "listen": values, "environment": values, "concurrency": values, "otlp": values, "max_body_bytes": values,
    "target_files": values, "api_token": values,
})


# Where a fuzzed config's relative paths point (target_files: ['*']): an empty folder, not the
# folder the tests run in, whose files are not target files.
_EMPTY = Path(tempfile.mkdtemp(prefix="otel-health-fuzz-"))
atexit.register(shutil.rmtree, _EMPTY, ignore_errors=True)


def _check_problems(exc: ConfigError) -> None:
    assert exc.problems
    for line in exc.problems:
        assert "\n" not in line and line.startswith("fuzz.yaml")
        assert "Traceback" not in line


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_any_config_structure_gives_a_config_or_one_line_errors(doc: dict) -> None:
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        return
    try:
        load_text(text, "fuzz.yaml", PROBES, base_dir=_EMPTY)
    except ConfigError as exc:
        _check_problems(exc)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_config_or_one_line_errors(text: str) -> None:
    try:
        load_text(text, "fuzz.yaml", PROBES, base_dir=_EMPTY)
    except ConfigError as exc:
        _check_problems(exc)


def test_a_yaml_bomb_is_refused_at_once() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    try:
        load_text(bomb, "fuzz.yaml", PROBES)
    except ConfigError as exc:
        assert "aliases" in exc.problems[0]
    else:
        raise AssertionError("the bomb was loaded")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2000), st.booleans())
def test_body_assertions_on_any_bytes_pass_or_fail_cleanly(body: bytes, truncated: bool) -> None:
    options = HttpOptions(url="http://x/", body_contains="ok", json_equals=(("a.b", 1),), version_field="v")
    try:
        _assert_body(Response(200, "1.1", [], body, truncated), options, Attempt(), 2000)
    except ProbeFailure as failure:
        assert failure.error_type == "assertion"
        assert "\n" not in failure.detail
        assert ("cut at max_body_bytes" in failure.detail) == truncated
