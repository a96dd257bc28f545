"""Redis probe: connect (and AUTH), PING, then INFO for the version and the role."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio.connection as rconn
from redis import exceptions as rexc
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, PasswordOptions, Probe, Rule, classify, classify_os_error, close_within, os_cause
from ._kept import Kept

__all__ = ["RedisOptions", "RedisProbe"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]_]{1,253}$")


@dataclass(frozen=True, slots=True)
class RedisOptions(PasswordOptions):
    host: str
    port: int = 6379
    db: int = 0
    tls: bool = False
    tls_verify: bool = True
    ca_file: Path | None = None
    username: str | None = None
    password: Secret | None = None
    reuse_connection: bool = False

    @classmethod
    def parse(cls, f: Fields) -> RedisOptions | None:
        url = f.text("url")
        host, port, db, tls = None, 6379, 0, False
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("redis", "rediss") or not parts.hostname:
                f.problem("url", "must be redis://HOST[:PORT][/DB] or rediss:// for TLS")
            elif parts.username or parts.password:
                f.problem("url", "must not hold credentials; use 'username' and 'password: ${ENV_VAR}'")
            else:
                host, port, tls = parts.hostname, parts.port or 6379, parts.scheme == "rediss"
                path = parts.path.strip("/")
                if path and not path.isdigit():
                    f.problem("url", f"the path must be a database number, got {path[:20]!r}")
                db = int(path) if path.isdigit() else 0
        if f.has("host") or url is None:
            host = f.text("host", required=url is None, pattern=_HOST_RE, hint="use a host name or an IP address")
            port = f.whole("port", 6379, minimum=1, maximum=65535)
            db = f.whole("db", 0, minimum=0, maximum=100_000)
            tls = f.flag("tls", False)
        options = cls(
            host=host or "", port=port, db=db, tls=tls,
            tls_verify=f.flag("tls_verify", True),
            ca_file=f.path("ca_file"),
            username=f.text("username"),
            password=f.secret("password"),
            reuse_connection=f.flag("reuse_connection", False),
        )
        return options if host else None

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "db": self.db, "tls": self.tls,
                "username": self.username, "password": self.password.source if self.password else None,
                "reuse_connection": self.reuse_connection}


class RedisProbe(Probe):
    kind = "redis"
    component_type = "datastore"
    check_name = "connectivity"
    options_type = RedisOptions
    schemes = ("redis", "rediss")

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self._kept: Kept[rconn.Connection] = Kept(lambda conn: close_within(conn.disconnect()))

    @classmethod
    def options_from_url(cls, url: str) -> RedisOptions:
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError("a Redis URL needs a host: redis://[USER:PASSWORD@]HOST[:PORT][/DB]")
        path = parts.path.strip("/")
        return RedisOptions(
            host=parts.hostname, port=parts.port or 6379, db=int(path) if path.isdigit() else 0,
            tls=parts.scheme == "rediss", username=unquote(parts.username) if parts.username else None,
            password=Secret(unquote(parts.password), "url") if parts.password else None,
        )

    def _connection(self, o: RedisOptions) -> rconn.Connection:
        common: dict[str, Any] = {
            "host": o.host, "port": o.port, "db": o.db, "username": o.username,
            "password": o.password.reveal() if o.password else None,
            "socket_timeout": None, "socket_connect_timeout": None,  # run()'s timeout bounds it all
            "retry": Retry(NoBackoff(), 0), "client_name": "otel-health",
        }
        if o.tls:
            return rconn.SSLConnection(ssl_ca_certs=str(o.ca_file) if o.ca_file else None,
                                       ssl_cert_reqs="required" if o.tls_verify else "none",
                                       ssl_check_hostname=o.tls_verify, **common)
        return rconn.Connection(**common)

    async def _check(self, target: Target, attempt: Attempt) -> None:
        o: RedisOptions = target.options
        attributes: dict[str, str | int] = {"db.system.name": "redis", "server.address": o.host,
                                            "server.port": o.port, "db.namespace": str(o.db)}
        async with self._kept.session(target.key, o, keep=o.reuse_connection) as held:
            if held.conn is None:
                held.conn = self._connection(o)
                with self.step(attempt, "connect", "connect", attributes):
                    await held.conn.connect()  # type: ignore[no-untyped-call]
            conn = held.conn
            with self.step(attempt, "ping", "PING", {**attributes, "db.operation.name": "PING"}):
                await conn.send_command("PING")
                pong = await conn.read_response()
                if pong not in (b"PONG", "PONG", True):
                    raise ProbeFailure(ErrorType.PROTOCOL, "PING was not answered with PONG")
            with self.step(attempt, "info", "INFO", {**attributes, "db.operation.name": "INFO"}):
                await conn.send_command("INFO", "server")
                server = _parse_info(await conn.read_response())
                await conn.send_command("INFO", "replication")
                replication = _parse_info(await conn.read_response())
            attempt.version = server.get("redis_version")
            attempt.info["role"] = replication.get("role", "")

    async def retain(self, live: set[tuple[str, str]]) -> None:
        await self._kept.retain(live)

    async def close(self) -> None:
        await self._kept.close()

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        found = classify(exc, _RULES)  # first: some of these are also response or connection errors
        if found is not None:
            return found
        if isinstance(exc, rexc.ResponseError):
            return _response_error(str(exc))
        if isinstance(exc, rexc.ConnectionError):
            return _connection_error(exc)
        return classify_os_error(exc)


_LOADING = "Redis is loading its dataset into memory"
_NOT_REDIS = "the peer does not speak the Redis protocol"
_RULES: tuple[Rule, ...] = (
    (rexc.BusyLoadingError, ErrorType.LOADING, _LOADING),
    ((rexc.AuthenticationError, rexc.AuthenticationWrongNumberOfArgsError), ErrorType.AUTH, "authentication failed"),
    (rexc.InvalidResponse, ErrorType.PROTOCOL, _NOT_REDIS),
    (rexc.TimeoutError, ErrorType.TIMEOUT, "timed out"),
)
# A connection error with no OS error under it, by what its message says (lower case).
_CONNECTION_TEXTS: tuple[tuple[str, ErrorType, str], ...] = (
    ("protocol", ErrorType.PROTOCOL, _NOT_REDIS),
    ("connection closed by server", ErrorType.CONNECTION_RESET, "the server closed the connection"),
)


def _response_error(text: str) -> tuple[ErrorType, str]:
    """An error reply, by its first word (the error code)."""
    code = text.split(" ", 1)[0]
    if text.startswith(("WRONGPASS", "NOAUTH", "NOPERM")) or "AUTH" in code:
        return ErrorType.AUTH, f"authentication failed ({code})"
    if text.startswith("LOADING"):
        return ErrorType.LOADING, _LOADING
    return ErrorType.PROTOCOL, f"Redis answered with an error: {code}"


def _connection_error(exc: BaseException) -> tuple[ErrorType, str]:
    cause = os_cause(exc)
    if cause is not None:
        return classify_os_error(cause)
    text = str(exc).lower()
    for needle, error_type, detail in _CONNECTION_TEXTS:
        if needle in text:
            return error_type, detail
    return ErrorType.UNKNOWN, f"connection error: {type(exc).__name__}"


def _parse_info(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    out: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip()
    return out
