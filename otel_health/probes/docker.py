"""Docker probe: a container's state as the engine reports it (Docker Engine API: Docker, or
Podman's compatible service), on aiohttp: up when it runs and, where it has a health check,
when that says healthy.

The engine is asked over its Unix socket (``unix:///var/run/docker.sock`` by default) or over
TCP (``http://`` or ``https://``, with TLS options). A container that exited says how (its exit
code, killed for memory), one that restarts says how often, one that is unhealthy says what its
last health check printed: the reason a page needs, in the check's detail."""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, Probe, classify_os_error, os_cause, server_words
from ._tls import client_context

__all__ = ["DockerOptions", "DockerProbe"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
SHOWN = 120  # characters of a health check's output a failure's detail shows
MAX_ANSWER = 1 << 20  # the most of the engine's answer read


@dataclass(frozen=True, slots=True)
class DockerOptions:
    container: str
    endpoint: str = "unix:///var/run/docker.sock"
    tls_verify: bool = True
    ca_file: Path | None = None
    require_healthy: bool = True

    @classmethod
    def parse(cls, f: Fields) -> DockerOptions | None:
        container = f.text("container", required=True, pattern=_NAME_RE,
                           hint="use the container's name or id (letters, digits, '_', '.', '-')")
        endpoint = f.text("endpoint", "unix:///var/run/docker.sock") or "unix:///var/run/docker.sock"
        parts = urlsplit(endpoint)
        if parts.scheme == "unix" and not parts.path.startswith("/"):
            f.problem("endpoint", "a Unix socket is an absolute path: unix:///var/run/docker.sock")
        elif parts.scheme not in ("unix", "http", "https") or (parts.scheme != "unix" and not parts.hostname):
            f.problem("endpoint", f"must be unix:///path/to/docker.sock, http://HOST:2375 or https://HOST:2376, "
                                  f"got {endpoint[:80]!r}")
        options = cls(container=container or "", endpoint=endpoint, tls_verify=f.flag("tls_verify", True),
                      ca_file=f.path("ca_file"), require_healthy=f.flag("require_healthy", True))
        if parts.scheme != "https" and (f.has("ca_file") or f.has("tls_verify")):
            f.problem("ca_file" if f.has("ca_file") else "tls_verify", "applies to an https:// endpoint")
        return options if container else None

    def secrets(self) -> Iterator[Secret]:
        return iter(())  # the engine's socket is the credential: nothing in the configuration

    def where(self) -> str:
        return f"container {self.container} at {self.endpoint}"

    def public(self) -> dict[str, Any]:
        return {"container": self.container, "endpoint": self.endpoint, "require_healthy": self.require_healthy}


class DockerProbe(Probe):
    kind = "docker"
    component_type = "system"
    check_name = "container"
    info_labels = ("image",)
    options_type = DockerOptions

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        cause = exc if isinstance(exc, OSError) else os_cause(exc)
        code = getattr(cause, "errno", None) or getattr(getattr(cause, "os_error", None), "errno", None)
        if code in (errno.EACCES, errno.EPERM):
            return ErrorType.AUTH, "the collector may not use the engine's socket (add its user to the socket's group)"
        if code == errno.ENOENT:
            return ErrorType.CONNECTION_REFUSED, "no engine's socket there (is the engine running?)"
        return classify_os_error(exc)

    async def _check(self, target: Target, attempt: Attempt) -> None:
        import aiohttp

        o: DockerOptions = target.options
        parts = urlsplit(o.endpoint)
        if parts.scheme == "unix":
            connector: aiohttp.BaseConnector = aiohttp.UnixConnector(path=parts.path)
            base = "http://docker"
        else:
            connector = aiohttp.TCPConnector(ssl=client_context(verify=o.tls_verify, ca_file=o.ca_file)
                                             if parts.scheme == "https" else False)
            base = f"{parts.scheme}://{parts.netloc}"
        attributes: dict[str, str | int] = {"container.name": o.container}
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
            with self.step(attempt, "inspect", "GET /containers/{name}/json", attributes) as span:
                async with session.get(f"{base}/containers/{quote(o.container, safe='')}/json",
                                       allow_redirects=False) as response:
                    body = await response.content.read(MAX_ANSWER)
                    if response.status == 404:
                        said = _message(body)
                        if said is None:  # an engine says why in JSON; a web server's 404 does not
                            raise ProbeFailure(ErrorType.PROTOCOL, "the endpoint does not answer as a Docker Engine "
                                                                   "API does (404 without the engine's message)")
                        raise ProbeFailure(ErrorType.ASSERTION, f"no such container on this engine ({said})")
                    if response.status != 200:
                        said = _message(body) or server_words(body.decode("utf-8", "replace"))[:SHOWN]
                        raise ProbeFailure(ErrorType.HTTP_STATUS, f"the engine answered {response.status}: {said}")
                described = _json(body)
                span.set_attribute("container.id", str(described.get("Id", ""))[:64])
                restarts = described.get("RestartCount", (described.get("State") or {}).get("RestartCount"))
                if isinstance(restarts, int):
                    span.set_attribute("tta.container.restarts", restarts)
        image = (described.get("Config") or {}).get("Image") or described.get("ImageName") or ""
        attempt.info["image"] = server_words(str(image))
        _judge(o, described.get("State") or {})


def _message(body: bytes) -> str | None:
    """The engine's own words in an error's JSON body (``{"message": ...}``), or None."""
    import json

    try:
        said = json.loads(body)
    except ValueError:
        return None
    return server_words(str(said["message"]))[:SHOWN] if isinstance(said, dict) and "message" in said else None


def _json(body: bytes) -> dict[str, Any]:
    import json

    try:
        said = json.loads(body)
    except ValueError:
        raise ProbeFailure(ErrorType.PROTOCOL, "the engine's answer is not JSON: is this a Docker Engine API?") \
            from None
    if not isinstance(said, dict):
        raise ProbeFailure(ErrorType.PROTOCOL, "the engine's answer is not a container's description")
    return said


def _judge(o: DockerOptions, state: dict[str, Any]) -> None:
    status = str(state.get("Status") or "").lower()
    if state.get("Restarting") or status == "restarting":
        raise ProbeFailure(ErrorType.UNAVAILABLE, "the container is restarting"
                                                  + (f" (exit code {state.get('ExitCode')} last time)"
                                                     if state.get("ExitCode") is not None else ""))
    if state.get("Paused") or status == "paused":
        raise ProbeFailure(ErrorType.UNAVAILABLE, "the container is paused")
    if not state.get("Running") and status != "running":
        how = [f"exit code {state.get('ExitCode')}"] if state.get("ExitCode") is not None else []
        if state.get("OOMKilled"):
            how.append("killed for memory (OOM)")
        if state.get("Error"):
            how.append(server_words(str(state["Error"]))[:SHOWN])
        raise ProbeFailure(ErrorType.UNAVAILABLE, f"the container is {status or 'not running'}"
                                                  + (f" ({', '.join(how)})" if how else ""))
    health = state.get("Health") or state.get("Healthcheck") or {}
    verdict = str(health.get("Status") or "").lower()
    if o.require_healthy and verdict and verdict not in ("healthy", "none"):
        logs = health.get("Log") or []
        last = logs[-1] if logs and isinstance(logs[-1], dict) else {}
        said = server_words(str(last.get("Output") or "")).strip()[:SHOWN]
        raise ProbeFailure(ErrorType.NOT_SERVING, f"the container runs but its health check says {verdict}"
                                                  + (f" ({health.get('FailingStreak')} failing in a row)"
                                                     if health.get("FailingStreak") else "")
                                                  + (f": {said!r}" if said else ""))
