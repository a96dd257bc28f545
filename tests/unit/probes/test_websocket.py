"""The websocket kind's options and error table (pure logic: the handshake against a real
server is tests/integration/test_websocket.py)."""

from __future__ import annotations

import pytest
from websockets import exceptions as wse
from websockets.datastructures import Headers
from websockets.frames import Close
from websockets.http11 import Response

from otel_health.config.loader import load_text
from otel_health.errors import ErrorType
from otel_health.probes import PROBES, ProbeSettings
from otel_health.probes.websocket import WebSocketProbe


def test_a_credential_header_is_taken_by_reference_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEED_TOKEN", "Bearer feed-secret-77")
    config = load_text("targets:\n  - name: feed\n    kind: websocket\n    url: wss://feed.example/live?token=t1\n"
                       "    headers: {Authorization: '${FEED_TOKEN}', X-Team: core}\n", "ws.yaml", PROBES)
    options = config.targets[0].options
    assert [secret.reveal() for secret in options.secrets()] == ["Bearer feed-secret-77"]
    shown = options.public()
    assert shown["headers"] == {"Authorization": "REDACTED (env:FEED_TOKEN)", "X-Team": "core"}
    assert shown["url"] == "wss://feed.example/live?token=REDACTED" and options.where() == shown["url"]
    assert "feed-secret-77" not in repr(shown)


def _response(status: int, reason: str) -> Response:
    return Response(status, reason, Headers(), b"")


@pytest.mark.parametrize(("exc", "expected"), [
    (wse.InvalidStatus(_response(403, "Forbidden")),
     (ErrorType.HTTP_STATUS, "the upgrade was answered 403 Forbidden (a WebSocket server answers 101)")),
    (wse.ConnectionClosedError(Close(1011, "internal error"), None),
     (ErrorType.CONNECTION_RESET, "the server closed the connection with code 1011 (internal error)")),
    (wse.ConnectionClosedError(None, None),
     (ErrorType.CONNECTION_RESET, "the connection closed without a closing handshake")),
    (wse.InvalidHeaderValue("Sec-WebSocket-Accept", "x"),
     (ErrorType.PROTOCOL, "the upgrade is not a valid WebSocket handshake: invalid Sec-WebSocket-Accept header: x")),
    (wse.NegotiationError("unsupported subprotocol: other"),
     (ErrorType.PROTOCOL, "the upgrade is not a valid WebSocket handshake: unsupported subprotocol: other")),
    (wse.InvalidMessage("did not receive a valid HTTP response"),
     (ErrorType.PROTOCOL, "the answer to the upgrade is not HTTP")),
    (wse.PayloadTooBig(2_000_000, 1_048_576), (ErrorType.PROTOCOL, "a message is over max_body_bytes (1048576)")),
    (ConnectionRefusedError(), (ErrorType.CONNECTION_REFUSED, "connection refused")),
])
def test_each_failure_of_the_library_has_its_error_type(exc: BaseException, expected: tuple[ErrorType, str]) -> None:
    assert WebSocketProbe(ProbeSettings())._classify(exc) == expected
