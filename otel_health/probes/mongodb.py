"""MongoDB probe: one member reached directly (TLS, a login), its ``hello`` read (its role in a
replica set, the set's name), its version, and a command run (``ping`` by default); on
PyMongo's asyncio client.

A check speaks to the member it names (``directConnection``), not to whichever member the driver
would pick: a replica set's health is its members' health, and a secondary that fell out of the
set is what a member's check is for. ``role`` asks for what the member must be (the primary, a
secondary). Every command carries ``maxTimeMS`` below the check's timeout, so a slow command is
ended by the server itself, and the client is closed at the end of each check."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import (
    Attempt,
    PasswordOptions,
    Probe,
    classify_os_error,
    close_within,
    host_port,
    os_cause,
    server_words,
)
from ._match import Pattern, pattern_field

__all__ = ["MongodbOptions", "MongodbProbe"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]_]{1,253}$")
_ROLES = ("any", "primary", "secondary")
_COMMAND_SHARE = 0.9  # the server-side limit of each command (maxTimeMS), as a share of the timeout
SHOWN = 120  # characters of a command's answer a failure's detail shows


@dataclass(frozen=True, slots=True)
class MongodbOptions(PasswordOptions):
    host: str
    port: int = 27017
    username: str | None = None
    password: Secret | None = None
    auth_source: str = "admin"
    tls: bool = False
    tls_verify: bool = True
    ca_file: Path | None = None
    database: str = "admin"
    command: tuple[tuple[str, Any], ...] = (("ping", 1),)
    expect: Pattern | None = None
    role: str = "any"

    @classmethod
    def parse(cls, f: Fields) -> MongodbOptions | None:
        host = f.text("host", required=True, pattern=_HOST_RE, hint="use a host name or an IP address")
        options = cls(
            host=host or "", port=f.whole("port", 27017, minimum=1, maximum=65535),
            username=f.text("username"), password=f.secret("password"),
            auth_source=f.text("auth_source", "admin") or "admin",
            tls=f.flag("tls", False), tls_verify=f.flag("tls_verify", True), ca_file=f.path("ca_file"),
            database=f.text("database", "admin") or "admin", command=_command(f),
            expect=pattern_field(f, "expect"), role=f.text("role", "any", choices=_ROLES) or "any",
        )
        if (f.has("password") or options.password is not None) and options.username is None:
            f.problem("password", "needs a username: add 'username'")
        if not options.tls and (f.has("ca_file") or f.has("tls_verify")):
            f.problem("ca_file" if f.has("ca_file") else "tls_verify", "applies to TLS: add 'tls: true'")
        return options if host else None

    def where(self) -> str:
        return f"mongodb://{host_port(self.host, self.port)}/{self.database}"

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "username": self.username,
                "password": self.password.source if self.password else None, "auth_source": self.auth_source,
                "tls": self.tls, "database": self.database, "command": dict(self.command), "role": self.role,
                "expect": self.expect.pattern if self.expect is not None else None}


def _command(f: Fields) -> tuple[tuple[str, Any], ...]:
    """``command``: a command's name (``ping``), or the command as a mapping, its name first
    (``{dbStats: 1, scale: 1024}``): MongoDB reads the first key as the command."""
    raw = f.raw("command")
    if raw is None:
        return (("ping", 1),)
    if isinstance(raw, str) and raw.strip():
        return ((raw.strip(), 1),)
    if isinstance(raw, dict) and raw and all(isinstance(key, str) and key for key in raw):
        return tuple(raw.items())
    f.problem("command", "must be a command's name (ping) or a mapping with the command first "
                         "({dbStats: 1, scale: 1024})")
    return (("ping", 1),)


class MongodbProbe(Probe):
    kind = "mongodb"
    component_type = "datastore"
    check_name = "connectivity"
    info_labels = ("role", "set_name")
    options_type = MongodbOptions

    def _load(self) -> None:
        import pymongo  # noqa: F401 - imported once, off the loop, before the first check

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        return _classify_mongo(exc) or classify_os_error(exc)

    async def _check(self, target: Target, attempt: Attempt) -> None:
        from bson import SON
        from pymongo import AsyncMongoClient

        o: MongodbOptions = target.options
        limit = max(1, int(target.timeout * _COMMAND_SHARE * 1000))
        attributes: dict[str, str | int] = {"db.system.name": "mongodb", "server.address": o.host,
                                            "server.port": o.port, "db.namespace": o.database}
        login: dict[str, Any] = {"username": o.username, "password": o.password.reveal() if o.password else None,
                                 "authSource": o.auth_source} if o.username else {}
        tls: dict[str, Any] = {"tls": True, "tlsAllowInvalidCertificates": not o.tls_verify,
                               "tlsAllowInvalidHostnames": not o.tls_verify,
                               **({"tlsCAFile": str(o.ca_file)} if o.ca_file else {})} if o.tls else {}
        failed = asyncio.get_running_loop().create_future()
        client: Any = AsyncMongoClient(
            o.host, o.port, directConnection=True, appname="otel-health", connect=False, maxPoolSize=1,
            retryReads=False, retryWrites=False, serverSelectionTimeoutMS=limit, connectTimeoutMS=limit,
            socketTimeoutMS=limit, heartbeatFrequencyMS=max(60_000, limit * 2),
            event_listeners=[_first_failure(failed)], **login, **tls)
        try:
            with self.step(attempt, "connect", "hello", {**attributes, "db.operation.name": "hello"}):
                hello = await _unless(client.admin.command("hello", maxTimeMS=limit), failed)
                built = await client.admin.command("buildInfo", maxTimeMS=limit)
            attempt.version = server_words(str(built.get("version", "")))
            role = _role(hello)
            attempt.info["role"] = role
            attempt.info["set_name"] = server_words(str(hello.get("setName", "")))
            if o.role != "any" and role != o.role:
                raise ProbeFailure(ErrorType.ASSERTION, f"the member is {role}, not {o.role}"
                                   + (f" (set {hello['setName']})" if hello.get("setName") else ""))
            name = o.command[0][0]
            with self.step(attempt, "command", name, {**attributes, "db.operation.name": name}):
                answer = await client[o.database].command(SON([*o.command, ("maxTimeMS", limit)]))
        finally:
            await close_within(client.close())
        if o.expect is not None:
            shown = _json(answer)
            if not o.expect.found(shown):
                raise ProbeFailure(ErrorType.ASSERTION, f"{name} answered {shown[:SHOWN]!r}, which does not match "
                                                        f"{o.expect.pattern!r}")


def _first_failure(failed: asyncio.Future[BaseException]) -> Any:
    """A listener that hands the driver's first failed look at the member to ``failed``: the
    driver would go on trying until its server selection timeout, the reason kept as text."""
    from pymongo import monitoring

    loop = failed.get_loop()

    def note(error: BaseException) -> None:
        if not failed.done():
            failed.set_result(error)

    class FirstFailure(monitoring.ServerHeartbeatListener):
        def started(self, event: Any) -> None:
            pass

        def succeeded(self, event: Any) -> None:
            pass

        def failed(self, event: Any) -> None:
            loop.call_soon_threadsafe(note, event.reply)

    return FirstFailure()


async def _unless(command: Coroutine[Any, Any, Any], failed: asyncio.Future[BaseException]) -> Any:
    """``command``'s answer, unless the driver fails to reach the member first (that error raised)."""
    running = asyncio.ensure_future(command)
    try:
        await asyncio.wait({running, failed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        while not running.done():  # the driver's server selection can let a cancellation pass once
            running.cancel()
            await asyncio.wait({running}, timeout=0.01)
    if running.done() and not running.cancelled():
        return running.result()
    raise failed.result()


def _role(hello: dict[str, Any]) -> str:
    if hello.get("msg") == "isdbgrid":
        return "mongos"
    if hello.get("arbiterOnly"):
        return "arbiter"
    if hello.get("setName"):
        if hello.get("isWritablePrimary") or hello.get("ismaster"):
            return "primary"
        return "secondary" if hello.get("secondary") else "other"
    return "standalone" if hello.get("isWritablePrimary") or hello.get("ismaster") else "other"


def _json(answer: Any) -> str:
    """A command's answer as relaxed Extended JSON, without the fields every answer carries."""
    from bson import json_util

    kept = {key: value for key, value in answer.items() if key not in ("ok", "$clusterTime", "operationTime")}
    return json_util.dumps(kept, json_options=json_util.RELAXED_JSON_OPTIONS, sort_keys=False)


_CODES: dict[int, tuple[ErrorType, str]] = {
    18: (ErrorType.AUTH, "authentication failed"),
    13: (ErrorType.AUTH, "the login may not run this"),
    59: (ErrorType.ASSERTION, "the server has no such command"),
    26: (ErrorType.ASSERTION, "the namespace does not exist"),
    50: (ErrorType.TIMEOUT, "the server ended the command at its maxTimeMS, below the check's timeout"),
    11600: (ErrorType.UNAVAILABLE, "the server is shutting down"),
    91: (ErrorType.UNAVAILABLE, "the server is shutting down"),
    189: (ErrorType.UNAVAILABLE, "the primary is stepping down"),
    10107: (ErrorType.UNAVAILABLE, "the member is not the primary"),
    13435: (ErrorType.UNAVAILABLE, "the member is not the primary and secondaryOk is off"),
}


def _classify_mongo(exc: BaseException) -> tuple[ErrorType, str] | None:
    from pymongo import errors

    if isinstance(exc, errors.OperationFailure):
        code = int(exc.code or 0)
        said = server_words(str((exc.details or {}).get("errmsg") or exc))
        found = _CODES.get(code)
        if found is not None:
            return found[0], f"{found[1]} ({code}: {said})"
        return ErrorType.ASSERTION, f"the command failed ({code}: {said})"
    if isinstance(exc, errors.ConfigurationError):
        return ErrorType.PROTOCOL, f"the server's answer is not one the driver can use ({server_words(str(exc))})"
    if isinstance(exc, errors.ServerSelectionTimeoutError):
        return _unreachable(exc)
    if isinstance(exc, errors.ProtocolError):
        return ErrorType.PROTOCOL, f"the peer does not speak MongoDB's protocol ({server_words(str(exc))})"
    if isinstance(exc, errors.ConnectionFailure):
        cause = os_cause(exc)
        if cause is not None:
            return classify_os_error(cause)
        return _unreachable(exc)
    return None


def _unreachable(exc: BaseException) -> tuple[ErrorType, str]:
    """The driver's words for a member it could not use, which hold the reason as text (the
    socket's errno among them)."""
    said = str(exc).split(" (configured timeouts", 1)[0]
    lowered = said.lower()
    errno = re.search(r"\[Errno (\d+)\]", said)
    if errno is not None:
        return classify_os_error(OSError(int(errno.group(1)), said))
    if "refused" in lowered:
        return ErrorType.CONNECTION_REFUSED, "connection refused"
    if "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
        return ErrorType.TLS, f"TLS failed ({server_words(said)})"
    if "timed out" in lowered or "timeout" in lowered:
        return ErrorType.TIMEOUT, f"the server did not answer ({server_words(said)})"
    if "reset" in lowered or "closed" in lowered:
        return ErrorType.CONNECTION_RESET, f"the connection was closed ({server_words(said)})"
    return ErrorType.PROTOCOL, f"the server could not be used ({server_words(said)})"
