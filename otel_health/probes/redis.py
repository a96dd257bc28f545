"""Redis probe: connect (and AUTH), PING, then INFO for the version and the role."""

from __future__ import annotations

import re
from collections.abc import Iterator
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
from ._base import Attempt, Probe, classify_os_error, close_within
from ._kept import Kept

__all__ = ["RedisOptions", "RedisProbe"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]_]{1,253}$")


@dataclass(frozen=True, slots=True)
class RedisOptions:
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

    def secrets(self) -> Iterator[Secret]:
        if self.password is not None:
            yield self.password

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "db": self.db, "tls": self.tls,
                "username": self.username, "password": self.password.source if self.password else None,
                "reuse_connection": self.reuse_connection}


class RedisProbe(Probe):
    kind = "redis"
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
        conn = await self._kept.take(target.key, o) if o.reuse_connection else None
        ok = False
        try:
            if conn is None:
                conn = self._connection(o)
                with self.step(attempt, "connect", "connect", attributes):
                    await conn.connect()  # type: ignore[no-untyped-call]
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
            ok = True
        finally:
            if conn is not None:
                if ok and o.reuse_connection:
                    self._kept.put(target.key, o, conn)
                else:
                    await close_within(conn.disconnect())

    async def retain(self, live: set[tuple[str, str]]) -> None:
        await self._kept.retain(live)

    async def close(self) -> None:
        await self._kept.close()

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        if isinstance(exc, rexc.BusyLoadingError):
            return ErrorType.LOADING, "Redis is loading its dataset into memory"
        if isinstance(exc, (rexc.AuthenticationError, rexc.AuthenticationWrongNumberOfArgsError)):
            return ErrorType.AUTH, "authentication failed"
        if isinstance(exc, rexc.ResponseError):
            text = str(exc)
            if text.startswith(("WRONGPASS", "NOAUTH", "NOPERM")) or "AUTH" in text.split(" ", 1)[0]:
                return ErrorType.AUTH, f"authentication failed ({text.split(' ', 1)[0]})"
            if text.startswith("LOADING"):
                return ErrorType.LOADING, "Redis is loading its dataset into memory"
            return ErrorType.PROTOCOL, f"Redis answered with an error: {text.split(' ', 1)[0]}"
        if isinstance(exc, (rexc.InvalidResponse,)):
            return ErrorType.PROTOCOL, "the peer does not speak the Redis protocol"
        if isinstance(exc, rexc.TimeoutError):
            return ErrorType.TIMEOUT, "timed out"
        if isinstance(exc, rexc.ConnectionError):
            cause = _os_cause(exc)
            if cause is not None:
                return classify_os_error(cause)
            if "Protocol Error" in str(exc) or "protocol" in str(exc).lower():
                return ErrorType.PROTOCOL, "the peer does not speak the Redis protocol"
            if "Connection closed by server" in str(exc):
                return ErrorType.CONNECTION_RESET, "the server closed the connection"
            return ErrorType.UNKNOWN, f"connection error: {type(exc).__name__}"
        return classify_os_error(exc)


def _os_cause(exc: BaseException) -> BaseException | None:
    seen = exc.__cause__ or exc.__context__
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


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
