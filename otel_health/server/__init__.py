"""The HTTP face of the collector.

``/`` (the status page), ``/metrics`` (Prometheus bridge), ``/health`` (the stack,
application/health+json), ``/-/healthy`` (the collector itself), ``/api/v1/targets`` (settings
without secrets, state and recent history), ``/api/v1/maintenance`` (windows: list, open, end),
``/api/v1/heartbeat/{name}`` (a job reports in) and ``POST /-/reload``. Who may use which is in
docs/http-api.md, "Who can do what". A large render never stalls the scheduler; requests that
arrive during one share it.

A render has two parts. Collecting the SDK's data cannot be split, so it runs on a worker
thread, and while it does the interpreter switches threads more often than every 5 ms
(``tuning.fine_switching``: otherwise checks falling due during a scrape started seconds late).
Formatting runs on the event loop itself in steps of a few milliseconds, between checks.

The package: ``documents`` (what the API answers with), ``guard`` (who may reach what, and
what a connection may hold), ``requests`` (what a write asks for), ``app`` (the routes).
"""

from .app import PageSettings, Reload, make_app
from .documents import HEALTH_CONTENT_TYPE, Kinds, health_document, targets_document, window_document
from .guard import HEAD_TIMEOUT, MAX_BODY, SCRAPE_RESERVE, GuardedSite, cross_site, host_allowed, loopback, make_runner
from .requests import MaintenanceApi

__all__ = ["HEAD_TIMEOUT", "HEALTH_CONTENT_TYPE", "MAX_BODY", "SCRAPE_RESERVE", "GuardedSite", "Kinds",
           "MaintenanceApi", "PageSettings", "Reload", "cross_site", "health_document", "host_allowed",
           "loopback", "make_app", "make_runner", "targets_document", "window_document"]
