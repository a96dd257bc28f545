"""Redis probe: connect (and AUTH), PING, then INFO for the version, the role and the state.

It runs only what the check needs, so a least-privilege user is enough: ``+ping +info``
(``+select`` for a database other than 0, ``+cluster|info`` on a cluster node). It speaks
RESP2 (no HELLO, which Redis before 6 and some proxies refuse), sets no client name and no
library info. A refusal is classified by its error code (``WRONGPASS``, ``NOPERM``,
``LOADING``, ``MASTERDOWN``…) and shown in the server's own words.
"""

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
from ._base import (
    Attempt,
    PasswordOptions,
    Probe,
    Rule,
    classify,
    classify_os_error,
    close_within,
    closes_finished,
    host_port,
    os_cause,
    server_words,
)
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
    fail_if_master_link_down: bool = False

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
            fail_if_master_link_down=f.flag("fail_if_master_link_down", False),
        )
        return options if host else None

    def where(self) -> str:
        return f"{host_port(self.host, self.port)} db {self.db}" if self.db else host_port(self.host, self.port)

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "db": self.db, "tls": self.tls,
                "username": self.username, "password": self.password.source if self.password else None,
                "reuse_connection": self.reuse_connection,
                "fail_if_master_link_down": self.fail_if_master_link_down}


class RedisProbe(Probe):
    kind = "redis"
    component_type = "datastore"
    check_name = "connectivity"
    info_labels = ("role", "redis_mode", "master_link_status", "cluster_state")
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
            "retry": Retry(NoBackoff(), 0),
            # RESP2, no CLIENT SETNAME, no CLIENT SETINFO: AUTH (and SELECT) is all that connecting sends.
            "protocol": 2, "client_name": None, "driver_info": None,
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
                await conn.send_command("INFO")  # the default sections: server, replication, cluster…
                info = _parse_info(await conn.read_response())
                cluster = None
                if info.get("cluster_enabled") == "1":
                    await conn.send_command("CLUSTER", "INFO")
                    cluster = _parse_info(await conn.read_response())
        attempt.version = info.get("redis_version")
        _report(info, cluster, attempt)
        if cluster is not None and cluster.get("cluster_state") != "ok":
            raise ProbeFailure(ErrorType.UNAVAILABLE, f"cluster_state is {cluster.get('cluster_state', 'unknown')}: "
                                                      "this node does not serve "
                                                      f"({cluster.get('cluster_slots_ok', '?')} of 16384 slots ok)")
        if o.fail_if_master_link_down and info.get("master_link_status") == "down":
            raise ProbeFailure(ErrorType.UNAVAILABLE, "the replica's link to its master is down "
                                                      "(fail_if_master_link_down)")

    async def retain(self, live: set[tuple[str, str]]) -> None:
        await self._kept.retain(live)

    async def close(self) -> None:
        await self._kept.close()
        await closes_finished()

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        if isinstance(exc, rexc.RedisError) and (refusal := _refusal(exc)) is not None:
            return refusal
        found = classify(exc, _RULES)
        if found is not None:
            return found
        if isinstance(exc, rexc.ConnectionError):
            return _connection_error(exc)
        return classify_os_error(exc)


def _report(info: dict[str, str], cluster: dict[str, str] | None, attempt: Attempt) -> None:
    """What an operator reads first: role and mode; a replica's link; a cluster node's state."""
    for key in ("role", "redis_mode"):
        if info.get(key):
            attempt.info[key] = info[key]
    if info.get("role") == "slave" and info.get("master_link_status"):
        attempt.info["master_link_status"] = info["master_link_status"]
    if cluster is not None:
        attempt.info["cluster_state"] = cluster.get("cluster_state", "unknown")


_NOT_REDIS = "the peer does not speak the Redis protocol"
# Error replies by their code (the first word), as the server sends them.
_CODES: dict[str, ErrorType] = {
    "WRONGPASS": ErrorType.AUTH, "NOAUTH": ErrorType.AUTH, "NOPERM": ErrorType.AUTH,
    "LOADING": ErrorType.LOADING,
    "MASTERDOWN": ErrorType.UNAVAILABLE, "MISCONF": ErrorType.UNAVAILABLE, "CLUSTERDOWN": ErrorType.UNAVAILABLE,
    "TRYAGAIN": ErrorType.UNAVAILABLE, "BUSY": ErrorType.UNAVAILABLE,
}
# Plain ERR replies that mean one thing.
_ERR_MESSAGES: dict[str, ErrorType] = {
    "max number of clients reached": ErrorType.TOO_MANY_CONNECTIONS,
    "invalid password": ErrorType.AUTH,
}
# Exceptions without an error reply behind them.
_RULES: tuple[Rule, ...] = (
    (rexc.BusyLoadingError, ErrorType.LOADING, "Redis is loading its dataset into memory"),
    (rexc.AuthenticationError, ErrorType.AUTH, "authentication failed"),
    (rexc.InvalidResponse, ErrorType.PROTOCOL, _NOT_REDIS),
    (rexc.TimeoutError, ErrorType.TIMEOUT, "timed out"),
)
# A connection error with no OS error under it, by what its message says (lower case).
_CONNECTION_TEXTS: tuple[tuple[str, ErrorType, str], ...] = (
    ("protocol", ErrorType.PROTOCOL, _NOT_REDIS),
    ("connection closed by server", ErrorType.CONNECTION_RESET, "the server closed the connection"),
)


def _refusal(exc: rexc.RedisError) -> tuple[ErrorType, str] | None:
    """An error reply of the server, by its code, with the server's whole message; None when
    ``exc`` is not one. redis-py strips the code of the replies it knows into ``status_code``."""
    body = str(exc)
    code = exc.status_code
    if code is None:
        if not isinstance(exc, rexc.ResponseError):
            return None
        first, _, rest = body.partition(" ")
        code, body = (first, rest) if first.isupper() and first.isalpha() else ("ERR", body)
    message = server_words(f"{code} {body}")
    if code == "NOPERM":
        return ErrorType.AUTH, f"the user may not run a command the check needs (+ping +info): {message}"
    if isinstance(exc, (rexc.AuthenticationError, rexc.AuthenticationWrongNumberOfArgsError)):
        return ErrorType.AUTH, f"authentication failed: {message}"
    error_type = _CODES.get(code) or (_ERR_MESSAGES.get(body) if code == "ERR" else None)
    if error_type is ErrorType.AUTH:
        return error_type, f"authentication failed: {message}"
    if error_type is not None:
        return error_type, f"Redis refused: {message}"
    if isinstance(exc, rexc.ResponseError):
        return ErrorType.PROTOCOL, f"Redis answered with an error: {message}"
    return None


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
