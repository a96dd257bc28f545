"""gRPC probe: the standard health check, ``grpc.health.v1.Health/Check``, on grpcio.

A fresh channel per check (the grpcio asyncio API), closed when the check ends. grpcio
resolves, connects, speaks TLS and HTTP/2 itself and tells little of it: the probe times
``connect`` (until the channel is ready: name, TCP, TLS and the HTTP/2 preface together) and
``rpc`` (the call), and reads why a connection failed from the status details grpcio gives
(refused, name not found, TLS handshake or verification). grpcio does not show the client
the server's certificate, so no expiry is reported for these targets, and it cannot skip
verification: a private CA is given as ``ca_file``. grpcio's own proxy handling (the
``http_proxy`` variables) is off unless ``proxy_url`` is set, and so are its retries.

grpcio (22 MB) is imported when the first gRPC check runs, not before: a config without
gRPC targets never loads it.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import propagate
from opentelemetry.trace import set_span_in_context

from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, Probe, ProbeSettings, close_within, host_port, pair_secrets, shown_pairs
from ._credentials import credential_header

__all__ = ["GrpcOptions", "GrpcProbe", "grpc_modules"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]_]{1,253}$")
_SERVICE_RE = re.compile(r"^[A-Za-z0-9_.\-/]{0,200}$")
# gRPC metadata keys: lower-case ASCII, digits, "-", "_", "."; "-bin" keys carry bytes.
_METADATA_KEY = re.compile(r"^[0-9a-z_.\-]{1,100}$")
_RESERVED_METADATA = ("grpc-", ":")
_PROBE_METADATA = frozenset({"content-type", "te", "user-agent", "host", "connection", "grpc-timeout"})
_MAX_MESSAGE = 64 * 1024  # a health answer is a few bytes: anything near this is not one
_HEALTH = "grpc.health.v1.Health"
_CERT_CAP = 1 << 20


@dataclass(frozen=True, slots=True)
class GrpcOptions:
    host: str
    port: int
    service: str = ""
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None
    metadata: tuple[tuple[str, str | Secret], ...] = ()
    proxy_url: str | None = None
    traceparent: bool = True

    @classmethod
    def parse(cls, f: Fields) -> GrpcOptions | None:
        url = f.text("url")
        host, port, tls = None, 0, False
        if url is not None:
            parts = urlsplit(url)
            try:
                url_port = parts.port
            except ValueError:
                url_port = None
            if parts.scheme not in ("grpc", "grpcs") or not parts.hostname or not url_port:
                f.problem("url", "must be grpc://HOST:PORT, or grpcs://HOST:PORT for TLS")
            elif parts.username or parts.password or parts.path.strip("/") or parts.query:
                f.problem("url", "takes a host and a port only: the service goes in 'service', "
                                 "credentials in 'metadata' by reference")
            else:
                host, port, tls = parts.hostname, url_port, parts.scheme == "grpcs"
            for name in ("host", "port", "tls"):
                if f.raw(name) is not None:
                    f.problem(name, "is given by 'url' (grpcs:// for TLS); remove one of them")
        else:
            host = f.text("host", required=True, pattern=_HOST_RE, hint="use a host name or an IP address")
            port = f.whole("port", 0, minimum=1, maximum=65535)
            if not f.has("port"):
                f.problem("port", "is required: the gRPC server's port, 1-65535")
            tls = f.flag("tls", False)
        service = f.text("service", "", pattern=_SERVICE_RE,
                         hint="a service name as registered in the server's health service, such as pkg.v1.Svc")
        if f.has("tls_verify") and f.flag("tls_verify", True) is False:
            f.problem("tls_verify", "grpcio cannot skip certificate verification; set 'ca_file' to the "
                                    "server's certificate or to its CA")
        cert_file, key_file = f.path("cert_file"), f.path("key_file")
        if f.has("cert_file") != f.has("key_file"):
            f.problem("key_file" if f.has("cert_file") else "cert_file",
                      "a client certificate needs both 'cert_file' and 'key_file'")
        if key_file is not None and _encrypted(key_file):
            f.problem("key_file", "grpcio takes an unencrypted private key; decrypt it into a file only "
                                  "otel-health can read")
        proxy = f.text("proxy_url")
        if proxy is not None:
            parts = urlsplit(proxy)
            if parts.scheme != "http" or not parts.hostname or parts.username or parts.password:
                f.problem("proxy_url", "must be http://HOST:PORT (grpcio's CONNECT proxy, without credentials)")
                proxy = None
        options = cls(
            host=host or "", port=port, service=service or "", tls=tls,
            ca_file=f.path("ca_file"), cert_file=cert_file, key_file=key_file,
            server_name=f.text("server_name", pattern=_HOST_RE, hint="a DNS name"),
            metadata=_parse_metadata(f), proxy_url=proxy, traceparent=f.flag("traceparent", True),
        )
        if not options.tls and (options.ca_file or options.cert_file or options.server_name):
            f.problem("tls", "is off, but ca_file, cert_file or server_name is set: set 'tls: true' "
                             "(or use a grpcs:// URL)")
        return options if host and port else None

    def secrets(self) -> Iterator[Secret]:
        return pair_secrets(self.metadata)

    def where(self) -> str:
        return host_port(self.host, self.port)  # the service is named by the details that are about it

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "service": self.service, "tls": self.tls,
                "server_name": self.server_name, "proxy_url": self.proxy_url,
                "client_certificate": self.cert_file is not None,
                "metadata": shown_pairs(self.metadata)}


def _parse_metadata(f: Fields) -> tuple[tuple[str, str | Secret], ...]:
    out: list[tuple[str, str | Secret]] = []
    for name, value in f.mapping("metadata").items():
        key = str(name).lower()
        if not isinstance(name, str) or not _METADATA_KEY.fullmatch(key):
            f.problem("metadata", f"{str(name)[:40]!r} is not a gRPC metadata key (ASCII letters, digits, - _ .)")
            continue
        if key.endswith("-bin"):
            f.problem("metadata", f"{key!r}: binary metadata is not supported; send a text key")
            continue
        if key.startswith(_RESERVED_METADATA) or key in _PROBE_METADATA:
            f.problem("metadata", f"{key!r} is set by gRPC itself; remove it")
            continue
        reference = isinstance(value, Mapping) or (isinstance(value, str) and value.strip().startswith("${"))
        if credential_header(key) or reference:
            secret = f.secret_value(f"metadata.{key}", value)
            if secret is not None:
                if _bad_value(secret.reveal()):
                    f.problem("metadata", f"{key!r}: its referenced value holds a control character or "
                                          "non-ASCII; gRPC text metadata is printable ASCII")
                else:
                    out.append((key, secret))
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            f.problem("metadata", f"{key!r} must have a string value")
            continue
        if _bad_value(str(value)):
            f.problem("metadata", f"{key!r}: its value holds a control character or non-ASCII; "
                                  "gRPC text metadata is printable ASCII")
            continue
        out.append((key, str(value)))
    return tuple(out)


def _encrypted(path: Path) -> bool:
    try:
        return b"ENCRYPTED" in path.read_bytes()[:_CERT_CAP]
    except OSError:
        return False


def _bad_value(value: str) -> bool:
    return not value.isascii() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)


@functools.cache
def grpc_modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    """grpc, health_pb2 and health_pb2_grpc, imported on first use. grpcio's C core prints
    its own log lines on stderr from the first channel on unless told otherwise before it is
    imported: below ERROR it stays quiet (an operator's ``GRPC_VERBOSITY`` wins)."""
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    import grpc
    import grpc.aio
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    return grpc, health_pb2, health_pb2_grpc


# What a failed call's status code means for the check: (error type, what to say). Status
# codes not listed are `protocol`. UNAVAILABLE is read further (``_unavailable``).
_BY_CODE: dict[str, tuple[ErrorType, str]] = {
    "DEADLINE_EXCEEDED": (ErrorType.TIMEOUT, "no answer before the deadline"),
    "UNAUTHENTICATED": (ErrorType.AUTH, "the server refused the call's credentials"),
    "PERMISSION_DENIED": (ErrorType.AUTH, "the server denied the call"),
    "NOT_FOUND": (ErrorType.ASSERTION, "the server's health service does not know this service name"),
    "UNIMPLEMENTED": (ErrorType.PROTOCOL, "the server has no grpc.health.v1.Health service"),
    "RESOURCE_EXHAUSTED": (ErrorType.UNAVAILABLE, "the server is out of a resource (quota, memory or size)"),
    "CANCELLED": (ErrorType.CONNECTION_RESET, "the call was cancelled on the way"),
    "ABORTED": (ErrorType.UNAVAILABLE, "the server aborted the call"),
}
# UNAVAILABLE: grpcio's details say why the connection failed, in these words.
_UNAVAILABLE: tuple[tuple[re.Pattern[str], ErrorType, str], ...] = (
    (re.compile(r"connection refused", re.I), ErrorType.CONNECTION_REFUSED, "connection refused"),
    (re.compile(r"errors resolving|dns|domain name not found|name resolution", re.I), ErrorType.DNS,
     "the name could not be resolved"),
    (re.compile(r"hostname verification|certificate|tls handshake|ssl", re.I), ErrorType.TLS, ""),
    (re.compile(r"socket closed|connection reset|broken pipe|end of tcp stream", re.I), ErrorType.CONNECTION_RESET,
     "the server closed the connection (is it a gRPC server, and does it speak TLS as configured?)"),
    (re.compile(r"timed? ?out|deadline", re.I), ErrorType.TIMEOUT, "the connection timed out"),
)
_TLS_WORDS: tuple[tuple[str, str], ...] = (
    ("hostname verification", "the certificate does not match the server name"),
    ("self signed", "certificate verify failed: self-signed certificate"),
    ("certificate has expired", "certificate verify failed: certificate has expired"),
    ("unable to get local issuer", "certificate verify failed: unable to get local issuer certificate"),
    ("certificate_verify_failed", "certificate verify failed"),
    ("wrong_version_number", "the server does not speak TLS on this port"),
    ("certificate required", "the server asks for a client certificate"),
    ("alert", "the server refused the handshake"),
)


def _unavailable(details: str) -> tuple[ErrorType, str]:
    for pattern, error_type, said in _UNAVAILABLE:
        if pattern.search(details):
            if error_type is ErrorType.TLS:
                lower = details.lower()
                said = next((s for word, s in _TLS_WORDS if word in lower), "the TLS handshake failed")
            return error_type, said
    return ErrorType.UNAVAILABLE, "the server is unavailable"


class GrpcProbe(Probe):
    kind = "grpc"
    component_type = "grpc"
    check_name = "health"
    options_type = GrpcOptions
    schemes = ("grpc", "grpcs")

    @classmethod
    def options_from_url(cls, url: str) -> GrpcOptions:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or not port:
            raise ValueError("a gRPC URL needs a host and a port: grpc://HOST:PORT[/SERVICE] (grpcs:// for TLS)")
        return GrpcOptions(host=parts.hostname, port=port, tls=parts.scheme == "grpcs",
                           service=parts.path.strip("/"))

    def __init__(self, settings: ProbeSettings) -> None:
        super().__init__(settings)
        self._credentials: dict[tuple[Any, ...], Any] = {}

    def _channel(self, o: GrpcOptions) -> Any:
        grpc = grpc_modules()[0]
        address = f"[{o.host}]:{o.port}" if ":" in o.host else f"{o.host}:{o.port}"
        options: list[tuple[str, Any]] = [
            ("grpc.primary_user_agent", self.settings.user_agent),
            ("grpc.enable_retries", 0),
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
        ]
        if o.proxy_url is not None:
            options.append(("grpc.http_proxy", o.proxy_url))
        else:
            options.append(("grpc.enable_http_proxy", 0))
        if not o.tls:
            return grpc.aio.insecure_channel(address, options=options)
        if o.server_name:
            options.append(("grpc.ssl_target_name_override", o.server_name))
            options.append(("grpc.default_authority", o.server_name))
        return grpc.aio.secure_channel(address, self._tls(o), options=options)

    def _tls(self, o: GrpcOptions) -> Any:
        """Channel credentials, made again when a file changes (a rotated certificate)."""
        grpc = grpc_modules()[0]
        key = (o.ca_file, o.cert_file, o.key_file, *(_stamp(p) for p in (o.ca_file, o.cert_file, o.key_file)))
        made = self._credentials.get(key)
        if made is None:
            def read(path: Path | None) -> bytes | None:
                return path.read_bytes()[:_CERT_CAP] if path is not None else None
            try:
                made = grpc.ssl_channel_credentials(read(o.ca_file), read(o.key_file), read(o.cert_file))
            except OSError as exc:
                raise ProbeFailure(ErrorType.TLS, f"cannot read a certificate file: {exc.strerror}") from None
            if len(self._credentials) >= 256:
                self._credentials.clear()
            self._credentials[key] = made
        return made

    def _load(self) -> None:
        grpc_modules()

    async def _check(self, target: Target, attempt: Attempt) -> None:
        o: GrpcOptions = target.options
        grpc, health_pb2, health_pb2_grpc = grpc_modules()
        attributes: dict[str, str | int] = {"server.address": o.host, "server.port": o.port,
                                            "rpc.system": "grpc", "network.transport": "tcp"}
        channel = self._channel(o)
        try:
            with self.step(attempt, "connect", "connect", attributes):
                if not await _ready(grpc, channel):
                    # Not connected: the call fails at once, and its status says why.
                    await health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=o.service), timeout=target.timeout)
            metadata = [(k, v.reveal() if isinstance(v, Secret) else v) for k, v in o.metadata]
            with self.step(attempt, "rpc", f"{_HEALTH}/Check", {
                **attributes, "rpc.service": _HEALTH, "rpc.method": "Check",
            }) as span:
                if o.traceparent:
                    carrier: dict[str, str] = {}
                    propagate.inject(carrier, context=set_span_in_context(span))
                    metadata += [(k, v) for k, v in carrier.items() if k not in dict(metadata)]
                try:
                    answer = await health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=o.service), timeout=target.timeout,
                        metadata=metadata or None)
                except grpc.aio.AioRpcError as exc:
                    span.set_attribute("rpc.grpc.status_code", exc.code().value[0])
                    raise
                span.set_attribute("rpc.grpc.status_code", 0)
            if answer.status != health_pb2.HealthCheckResponse.SERVING:
                which = f"service {o.service!r}" if o.service else "the server"
                named = dict((v, k) for k, v in health_pb2.HealthCheckResponse.ServingStatus.items())
                status = named.get(answer.status, f"status {answer.status} (not in grpc.health.v1)")
                raise ProbeFailure(ErrorType.NOT_SERVING, f"{which} is {status}")
        finally:
            await close_within(channel.close())

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        grpc = grpc_modules()[0]
        if isinstance(exc, grpc.aio.AioRpcError):
            code = exc.code().name
            details = exc.details() or ""
            if code == "UNAVAILABLE":
                error_type, said = _unavailable(details)
            else:
                error_type, said = _BY_CODE.get(code, (ErrorType.PROTOCOL, "the call failed"))
            own = details.strip()
            # The server's own words, after ours, unless they only repeat grpcio's connect report.
            shown = f": {own[:200]}" if own and code != "UNAVAILABLE" else ""
            return error_type, f"{said} ({code}){shown}"
        return super()._classify(exc)


async def _ready(grpc: ModuleType, channel: Any) -> bool:
    """Wait until the channel is connected (True) or has failed to connect (False)."""
    ready, failed = grpc.ChannelConnectivity.READY, (grpc.ChannelConnectivity.TRANSIENT_FAILURE,
                                                     grpc.ChannelConnectivity.SHUTDOWN)
    state = channel.get_state(try_to_connect=True)
    while state != ready:
        if state in failed:
            return False
        await channel.wait_for_state_change(state)
        state = channel.get_state(try_to_connect=True)
    return True


def _stamp(path: Path | None) -> int:
    try:
        return path.stat().st_mtime_ns if path is not None else 0
    except OSError:
        return -1

