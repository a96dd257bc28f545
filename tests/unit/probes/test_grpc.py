"""The gRPC kind's error table: grpcio's status codes and its words for a connection that
failed. (The protocol itself is proven against grpcio's health service in tests/integration.)"""

from __future__ import annotations

from typing import Any

import pytest

from otel_health.errors import ErrorType
from otel_health.probes import ProbeSettings
from otel_health.probes import grpc as grpc_probe


# grpcio's own words for a connection that failed (UNAVAILABLE), as grpcio 1.85 writes them.
@pytest.mark.parametrize(("details", "expected"), [
    ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50559: Failed to connect to remote "
     "host: Connection refused", (ErrorType.CONNECTION_REFUSED, "connection refused")),
    ("errors resolving no-such-host.invalid:50559: [field:hostname lookup error:address lookup failed for "
     "no-such-host.invalid:50559: Domain name not found]", (ErrorType.DNS, "the name could not be resolved")),
    ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50551: Tls handshake failed "
     "(TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER",
     (ErrorType.TLS, "the server does not speak TLS on this port")),
    ("last error: UNKNOWN: ipv4:127.0.0.1:50552: Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: "
     "error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: self signed certificate",
     (ErrorType.TLS, "certificate verify failed: self-signed certificate")),
    ("last error: UNKNOWN: ipv4:127.0.0.1:50552: Custom verification check failed with error: UNAUTHENTICATED: "
     "Hostname Verification Check failed.", (ErrorType.TLS, "the certificate does not match the server name")),
    ("failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:50552: Socket closed",
     (ErrorType.CONNECTION_RESET, "the server closed the connection (is it a gRPC server, and does it speak TLS "
                                  "as configured?)")),
    ("something grpcio has not said before", (ErrorType.UNAVAILABLE, "the server is unavailable")),
])
def test_grpc_connection_failures_are_read_from_grpcio_words(details: str, expected: tuple[ErrorType, str]) -> None:
    assert grpc_probe._unavailable(details) == expected


def test_every_grpc_status_code_maps_into_the_closed_set() -> None:
    grpc = grpc_probe.grpc_modules()[0]
    probe = grpc_probe.GrpcProbe(ProbeSettings())

    class _Failed(grpc.aio.AioRpcError):  # type: ignore[misc]
        def __init__(self, code: Any) -> None:
            super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="server words")

    for code in grpc.StatusCode:
        if code is grpc.StatusCode.OK:
            continue
        error_type, detail = probe._classify(_Failed(code))
        assert error_type in ErrorType and error_type is not ErrorType.UNKNOWN, code
        assert f"({code.name})" in detail, detail
