"""The docker kind's options and its reading of a container's state (pure logic: the engine is
asked in tests/integration/test_docker.py, Podman's Docker-compatible service)."""

from __future__ import annotations

import pytest

from otel_health.errors import ErrorType, ProbeFailure
from otel_health.probes.docker import DockerOptions, _judge, _message
from tests.harness.checks import options_of


def _down(state: dict[str, object]) -> tuple[ErrorType, str]:
    options = options_of(DockerOptions, "kind: docker, container: api")
    with pytest.raises(ProbeFailure) as failed:
        _judge(options, state)
    return failed.value.error_type, failed.value.detail


def test_the_socket_is_the_default_and_an_endpoint_is_a_socket_or_http() -> None:
    assert options_of(DockerOptions, "kind: docker, container: api").endpoint == "unix:///var/run/docker.sock"
    options = options_of(DockerOptions, "kind: docker, container: api, endpoint: 'https://docker-1:2376'")
    assert options.where() == "container api at https://docker-1:2376"


def test_each_state_a_container_can_be_in_is_judged() -> None:
    options = options_of(DockerOptions, "kind: docker, container: api")
    _judge(options, {"Status": "running", "Running": True})
    _judge(options, {"Status": "running", "Running": True, "Health": {"Status": "healthy"}})
    assert _down({"Status": "exited", "Running": False, "ExitCode": 137, "OOMKilled": True}) == (
        ErrorType.UNAVAILABLE, "the container is exited (exit code 137, killed for memory (OOM))")
    assert _down({"Status": "restarting", "Restarting": True, "ExitCode": 1})[1] == (
        "the container is restarting (exit code 1 last time)")
    assert _down({"Status": "paused", "Running": True, "Paused": True})[1] == "the container is paused"
    sick = {"Status": "running", "Running": True, "Health": {"Status": "unhealthy", "FailingStreak": 3,
                                                            "Log": [{"Output": "db down\n"}]}}
    assert _down(sick) == (ErrorType.NOT_SERVING,
                           "the container runs but its health check says unhealthy (3 failing in a row): 'db down'")
    starting = {**sick, "Health": {"Status": "starting"}}
    assert _down(starting)[1] == "the container runs but its health check says starting"
    _judge(options_of(DockerOptions, "kind: docker, container: api, require_healthy: false"), sick)


def test_an_engines_404_says_why_in_json_and_a_web_servers_does_not() -> None:
    assert _message(b'{"message": "No such container: api"}') == "No such container: api"
    assert _message(b"<html>404 Not Found</html>") is None
    assert _message(b'["no"]') is None


def test_a_socket_missing_or_forbidden_is_named() -> None:
    from otel_health.probes import ProbeSettings
    from otel_health.probes.docker import DockerProbe

    probe = DockerProbe(ProbeSettings())
    assert probe._classify(PermissionError(13, "Permission denied"))[0] is ErrorType.AUTH
    assert probe._classify(FileNotFoundError(2, "No such file"))[1].startswith("no engine's socket there")
