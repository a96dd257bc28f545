"""The HTTP face of the collector: ``/metrics``, ``/health``, ``/-/healthy``.

``/metrics`` is rendered on a worker thread so a large scrape never stalls the scheduler's
event loop; scrapes that arrive while a render runs share its result.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .config import Target
from .exposition import CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, BridgeReader
from .result import CheckResult

__all__ = ["HEALTH_CONTENT_TYPE", "make_app"]

HEALTH_CONTENT_TYPE = "application/health+json"

Snapshot = Callable[[], list[tuple[Target, CheckResult | None]]]


class _MetricsHandler:
    def __init__(self, reader: BridgeReader, keep: Callable[[str, str], bool]) -> None:
        self._reader = reader
        self._keep = keep
        self._inflight: dict[bool, asyncio.Future[bytes]] = {}

    async def __call__(self, request: web.Request) -> web.Response:
        openmetrics = "application/openmetrics-text" in request.headers.get("Accept", "")
        future = self._inflight.get(openmetrics)
        if future is None:
            future = asyncio.ensure_future(
                asyncio.to_thread(self._reader.render, openmetrics=openmetrics, keep=self._keep)
            )
            self._inflight[openmetrics] = future
            future.add_done_callback(lambda _: self._inflight.pop(openmetrics, None))
        body = await asyncio.shield(future)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT
        return response


def health_document(snapshot: list[tuple[Target, CheckResult | None]]) -> tuple[int, dict[str, Any]]:
    """The stack's health in the IETF health-check response format, and the HTTP status."""
    checks: dict[str, list[dict[str, Any]]] = {}
    worst = "pass"
    for target, result in snapshot:
        if result is None:
            continue
        status = "pass" if result.up else ("fail" if target.critical else "warn")
        if status == "fail" or (status == "warn" and worst == "pass"):
            worst = status
        item: dict[str, Any] = {
            "componentId": target.name,
            "componentType": _COMPONENT_TYPES.get(target.kind, "component"),
            "status": status,
            "observedValue": round(result.duration, 6),
            "observedUnit": "s",
            "time": dt.datetime.fromtimestamp(result.started_at + result.duration, dt.UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        if target.environment:
            item["environment"] = target.environment
        if not result.up:
            item["output"] = f"{result.error_type}: {result.detail}" if result.detail else str(result.error_type)
        checks.setdefault(f"{target.name}:{_CHECK_NAMES.get(target.kind, 'check')}", []).append(item)
    doc = {"status": worst, "description": "health of the checked services", "checks": checks}
    return (503 if worst == "fail" else 200), doc


_COMPONENT_TYPES = {"http": "http", "tcp": "tcp", "redis": "datastore", "postgres": "datastore",
                    "neo4j": "datastore"}
_CHECK_NAMES = {"http": "responseTime", "tcp": "connectivity"}


def make_app(*, reader: BridgeReader, keep: Callable[[str, str], bool], snapshot: Snapshot) -> web.Application:
    app = web.Application()
    render = _MetricsHandler(reader, keep)

    async def metrics(request: web.Request) -> web.Response:
        return await render(request)

    async def health(_: web.Request) -> web.Response:
        code, doc = health_document(snapshot())
        return web.Response(status=code, text=json.dumps(doc), content_type=HEALTH_CONTENT_TYPE)

    async def healthy(_: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/-/healthy", healthy)
    return app
