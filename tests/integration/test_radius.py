"""The radius kind against a real server (FreeRADIUS, Debian's, an instance of its own with PAP
against a users file): an Access-Accept; an Access-Reject with the server's Reply-Message; a
wrong shared secret (the server drops what it cannot authenticate: silence, said so); a port
nothing listens on; the password and the secret kept out of every detail."""

from __future__ import annotations

import pytest

from otel_health.errors import ErrorType
from tests.harness import servers, targets
from tests.harness.checks import assert_failed, check_once
from tests.harness.procs import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch, radius_server: servers.Freeradius) -> None:
    monkeypatch.setenv("RADIUS_SECRET", radius_server.secret)
    monkeypatch.setenv("RADIUS_PASSWORD", radius_server.password)
    monkeypatch.setenv("WRONG", "not-the-right-one-at-all")


def _radius(name: str, port: int, *, password: str = "${RADIUS_PASSWORD}", secret: str = "${RADIUS_SECRET}",
            timeout: str = "3s") -> str:
    return targets.entry(name, "radius", host="127.0.0.1", port=port, username="checker", password=password,
                         secret=secret, timeout=timeout)


async def test_an_accept_a_reject_and_silence(radius_server: servers.Freeradius) -> None:
    port, closed = radius_server.port, free_port()
    results = await check_once(
        _radius("accepted", port)
        + _radius("rejected", port, password="${WRONG}")
        + _radius("wrong-secret", port, secret="${WRONG}", timeout="1s")
        + _radius("closed", closed, timeout="1s"))
    assert results["accepted"].up, results["accepted"].detail
    assert set(results["accepted"].phases) == {"auth"}
    assert_failed({k: v for k, v in results.items() if k != "accepted"}, {
        "rejected": (ErrorType.AUTH, f"radius 127.0.0.1:{port} user checker: Access-Reject: hello checker"),
        "wrong-secret": (ErrorType.TIMEOUT, "no answer within 90% of the timeout (a server given a wrong shared secret "
                                            "stays silent too)"),
        "closed": (ErrorType.TIMEOUT, f"radius 127.0.0.1:{closed} user checker: no answer"),
    })
    for name, result in results.items():
        for secret in (radius_server.secret, radius_server.password, "not-the-right-one"):
            assert secret not in result.detail, name
