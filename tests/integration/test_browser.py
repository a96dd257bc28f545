"""The browser kind in a real headless Chromium (Debian's) against the HTTP targets' pages: text a
page's script writes, an element that must be visible, a header by reference, the page's own
timings as phases, DOMContentLoaded where the load event never comes; and each way a check fails
named: a status, text that is not there, an element that is hidden, an uncaught error when asked,
a page that never loads, a port nothing listens on, a certificate not trusted."""

from __future__ import annotations

import hashlib

import pytest

from otel_health.errors import ErrorType
from tests.harness import servers, targets
from tests.harness.checks import assert_failed, check_once

pytestmark = pytest.mark.integration


def _page(name: str, url: str, *, timeout: str = "10s", **fields: object) -> str:
    # a page costs Chromium half a CPU-second: ten seconds hold on a host that is busy elsewhere
    return targets.entry(name, "browser", url=url, timeout=timeout, **fields)


async def test_a_page_as_a_browser_renders_it(http_targets: servers.HttpTargets,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    h = http_targets
    monkeypatch.setenv("PAGE_TOKEN", "Bearer page-token-5521")
    digest = hashlib.sha256(b"Bearer page-token-5521").hexdigest()[:12]
    results = await check_once(
        _page("scripted", h.url("/page/app"), expect_text="all systems go", expect_selector="#status.ok")
        + _page("header", h.url("/page/whoami"), headers={"Authorization": "${PAGE_TOKEN}"},
                expect_text=f"authorized as {digest}")
        + _page("errors-ignored", h.url("/page/broken"), expect_text="shell rendered")
        + _page("dom-only", h.url("/page/stuck"), wait_until="domcontentloaded", expect_text="text first")
        + _page("tls", h.url("/page/app", tls=True), tls_verify=False, expect_text="all systems go"))
    for name, result in results.items():
        assert result.up, (name, result.detail)
    phases = results["scripted"].phases
    assert {"navigate", "dns", "connect", "ttfb", "dom_content_loaded", "load", "selector"} <= set(phases), phases
    assert 0 < phases["ttfb"] <= phases["dom_content_loaded"] <= phases["load"] < 5, phases
    assert "tls" in results["tls"].phases and "tls" not in phases


async def test_each_way_a_page_fails_is_named(http_targets: servers.HttpTargets) -> None:
    h = http_targets
    results = await check_once(
        _page("status", h.url("/status/503"))
        + _page("page-error", h.url("/page/broken"), fail_on_page_error=True)
        + _page("closed", f"http://127.0.0.1:{h.closed_port}/")
        + _page("untrusted", h.url("/page/app", tls=True)))
    # the three that wait out their timeout, apart, and only for what they are about
    results |= await check_once(
        _page("no-text", h.url("/page/app"), expect_text="maintenance", wait_until="domcontentloaded", timeout="4s")
        + _page("hidden", h.url("/page/hidden"), expect_selector="#status.ok", wait_until="domcontentloaded",
                timeout="4s")
        + _page("never-loads", h.url("/page/stuck"), timeout="3s"))
    assert_failed(results, {
        "status": (ErrorType.HTTP_STATUS, "the document's status 503, expected 200-399"),
        "no-text": (ErrorType.ASSERTION, "the page's text did not match 'maintenance' within the timeout (it "
                                         "begins 'Status"),
        "hidden": (ErrorType.ASSERTION, "no visible element matches '#status.ok' within the timeout (1 hidden)"),
        "page-error": (ErrorType.ASSERTION, "the page threw 1 uncaught error; the first: 'render failed: "
                                            "undefined is not a function'"),
        "never-loads": (ErrorType.TIMEOUT, "the page did not reach load within the timeout"),
        "closed": (ErrorType.CONNECTION_REFUSED, "connection refused (ERR_CONNECTION_REFUSED)"),
        "untrusted": (ErrorType.TLS, "certificate not accepted (ERR_CERT_AUTHORITY_INVALID)"),
    })
    assert results["never-loads"].duration < 3.5, results["never-loads"].duration
