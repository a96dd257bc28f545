"""Badges from a running collector: a target's and a group's state, uptime and response time, as
SVG (parsed as XML, and loaded in headless Chromium) and as shields.io's endpoint JSON;
cacheable by ETag, guarded as the status page is, and saying nothing the page does not."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import xml.etree.ElementTree as ET

import aiohttp
import pytest

from tests.harness import servers, targets
from tests.harness.browser import load
from tests.harness.running import running

pytestmark = pytest.mark.integration

SVG = "{http://www.w3.org/2000/svg}"
GROUP = 'R&D <shop> "1"'


def _said(svg: str) -> tuple[str, str]:
    """(the title, the message's colour) of a badge, read as XML."""
    root = ET.fromstring(svg)
    title = root.findtext(f"{SVG}title") or ""
    message = next(rect for rect in root.iter(f"{SVG}rect") if rect.get("x"))  # the right-hand part
    return title, message.get("fill") or ""


async def test_badges_say_the_state_uptime_and_response_time_and_nothing_else(
        http_targets: servers.HttpTargets) -> None:
    h = http_targets
    text = "targets:\n" + "".join((
        targets.http("api", h.url("/ok"), {"labels": {"group": GROUP}}),
        targets.http("checkout", h.url("/status/503"), {"labels": {"group": GROUP}}),
        targets.http("quiet", h.url("/ok"), interval="1h", timeout="0.8s"),
    ))
    async with running(text) as r:
        await r.wait_for(lambda: r.checks("api") >= 2 and r.checks("checkout") >= 2, timeout=10, what="checks")
        group = urllib.parse.quote(GROUP, safe="")
        answers = {}
        async with aiohttp.ClientSession() as session:
            for path in ("/badge/service/api/state.svg", "/badge/service/checkout/state.svg",
                         f"/badge/group/{group}/state.svg", "/badge/service/api/uptime-24h.json",
                         "/badge/service/api/response-time.json", f"/badge/group/{group}/uptime-7d.svg",
                         "/badge/service/nobody/state.svg", "/badge/service/api/mood.svg"):
                async with session.get(r.url + path) as response:
                    answers[path] = (response.status, response.headers, await response.text())
            tag = answers["/badge/service/api/state.svg"][1]["ETag"]
            async with session.get(r.url + "/badge/service/api/state.svg",
                                   headers={"If-None-Match": tag}) as response:
                again = response.status
        # on a thread: the collector answers Chromium from this test's event loop
        dom, console = await asyncio.to_thread(load, r.url + "/badge/service/checkout/state.svg")
    status, headers, body = answers["/badge/service/api/state.svg"]
    assert (status, headers["Content-Type"]) == (200, "image/svg+xml; charset=utf-8")
    assert headers["Cache-Control"] == "public, max-age=60" and again == 304
    assert _said(body) == ("api: up", "#4c1")
    assert _said(answers["/badge/service/checkout/state.svg"][2]) == ("checkout: down", "#e05d44")
    assert _said(answers[f"/badge/group/{group}/state.svg"][2]) == (f"{GROUP}: 1 of 2 down", "#fe7d37")
    title, _ = _said(answers[f"/badge/group/{group}/uptime-7d.svg"][2])
    assert title == "uptime 7d: 50.00%"  # the mean of the group's two: one always up, one always down
    assert json.loads(answers["/badge/service/api/uptime-24h.json"][2]) == {
        "schemaVersion": 1, "label": "uptime 24h", "message": "100%", "color": "brightgreen"}
    timing = json.loads(answers["/badge/service/api/response-time.json"][2])
    assert timing["label"] == "response time" and timing["message"].endswith(" ms")
    assert answers["/badge/service/nobody/state.svg"][0] == 404
    assert answers["/badge/service/api/mood.svg"][0] == 404
    for _, _, said in answers.values():
        assert "503" not in said and "http_status" not in said  # no detail of a failure
    # Chromium draws it: an SVG document with both texts, no XML error, a silent console
    assert "<svg" in dom and "checkout" in dom and ">down<" in dom, dom[:500]
    assert "error on line" not in dom and not console, console


async def test_badges_are_guarded_as_the_status_page_is(http_targets: servers.HttpTargets,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BADGE_TEST_TOKEN", "s3cret-t0ken")
    text = "api_token: ${BADGE_TEST_TOKEN}\ntargets:\n" + targets.http("api", http_targets.url("/ok"))
    async with running(text) as r:
        await r.wait_for(lambda: r.checks("api") >= 1, timeout=10, what="a check")
        async with aiohttp.ClientSession() as session:
            async with session.get(r.url + "/badge/service/api/state.svg") as response:
                refused = response.status
            async with session.get(r.url + "/badge/service/api/state.svg",
                                   headers={"Authorization": "Bearer s3cret-t0ken"}) as response:
                allowed, cache = response.status, response.headers["Cache-Control"]
    assert (refused, allowed, cache) == (401, 200, "private, max-age=60")
