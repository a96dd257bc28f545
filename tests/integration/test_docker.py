"""The docker kind against a real engine speaking the Docker Engine API (Podman's compatible
service, with containers of its own): a running container, one whose health check passes; and
each way a check fails named: a container that exited (its code), one whose health check fails
(what it printed), one that does not exist, a socket nothing serves, an engine that is not one."""

from __future__ import annotations

import pytest

from otel_health.errors import ErrorType
from tests.harness import servers, targets
from tests.harness.checks import assert_failed, check_once

pytestmark = pytest.mark.integration


def _container(name: str, container: str, endpoint: str, **fields: object) -> str:
    return targets.entry(name, "docker", container=container, endpoint=endpoint, timeout="5s", **fields)


async def test_running_and_healthy_containers_are_up(docker_engine: servers.Podman) -> None:
    e = docker_engine.endpoint
    results = await check_once(
        _container("web", "web", e)
        + _container("healthy", "healthy", e)
        + _container("sick-but-running", "sick", e, require_healthy=False))
    for name, result in results.items():
        assert result.up, (name, result.detail)
    assert results["web"].info["image"] == servers.PODMAN_IMAGE, results["web"].info
    assert set(results["web"].phases) == {"inspect"}


async def test_each_way_a_container_check_fails_is_named(docker_engine: servers.Podman,
                                                         http_targets: servers.HttpTargets) -> None:
    e = docker_engine.endpoint
    results = await check_once(
        _container("crashed", "crashed", e)
        + _container("sick", "sick", e)
        + _container("missing", "nothing-here", e)
        + _container("no-engine", "web", "unix:///nonexistent/docker.sock")
        + _container("not-an-engine", "web", f"http://127.0.0.1:{http_targets.port}"))
    assert_failed(results, {
        "crashed": (ErrorType.UNAVAILABLE, "the container is exited (exit code 3)"),
        "sick": (ErrorType.NOT_SERVING, "the container runs but its health check says unhealthy"),
        "missing": (ErrorType.ASSERTION, f"container nothing-here at {e}: no such container on this engine"),
        "no-engine": (ErrorType.CONNECTION_REFUSED, "no engine's socket there"),
        "not-an-engine": (ErrorType.PROTOCOL, "the endpoint does not answer as a Docker Engine API does"),
    })
    assert "database unreachable" in results["sick"].detail, results["sick"].detail
