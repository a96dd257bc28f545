"""Browser probe: a page loaded in headless Chromium, as a visitor's browser loads it (its
scripts run, its resources fetched), on Playwright; up when the document's status is expected,
the page loaded, and what must be on it is there.

One Chromium is started on the first check of this kind and shared by every browser target;
each check has a browser context of its own (no cookie, cache or storage from another check),
closed at its end. At most :data:`PAGES` pages are open at once: a check waits for a turn
within its own timeout. A browser that died is started again at the next check; one that
cannot be started gives no verdict (the target's state stays as it was; the log says why):
the browser failing is not the site failing. The timings the page itself measured (Navigation
Timing) are the check's phases."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import re
import shutil
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .._redact import redact_url
from ..config import Fields, Secret, Target
from ..errors import ErrorType, NoVerdict, ProbeFailure
from ._base import (
    Attempt,
    Probe,
    answer_by,
    classify_os_error,
    close_within,
    pair_secrets,
    server_words,
    shown_pairs,
)
from ._http_options import StatusRange, parse_headers, parse_status, parse_url
from ._match import Pattern, pattern_field

__all__ = ["BrowserOptions", "BrowserProbe", "chromium"]

log = logging.getLogger(__name__)
T = TypeVar("T")

PAGES = 8  # pages open at once, across every browser target
SHOWN = 80  # characters of the page's text a failure's detail shows
_WAIT_UNTIL = ("load", "domcontentloaded", "networkidle")
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Chromium without what a server has no use for: no GPU, no sync, no background fetches of its
# own (they would fail, and count in the check), no QUIC unless the site asks (Alt-Svc).
_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
         "--disable-extensions", "--mute-audio")


def chromium() -> Path | None:
    """The Chromium this host has: ``OTEL_HEALTH_CHROMIUM``, or the first of the usual names
    on ``PATH``."""
    named = os.environ.get("OTEL_HEALTH_CHROMIUM")
    if named:
        return Path(named) if os.access(named, os.X_OK) else None
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


@dataclass(frozen=True, slots=True)
class BrowserOptions:
    url: str
    headers: tuple[tuple[str, str | Secret], ...] = ()
    tls_verify: bool = True
    expect_status: tuple[StatusRange, ...] = (StatusRange(200, 399),)
    expect_text: Pattern | None = None
    expect_selector: str | None = None
    wait_until: str = "load"
    fail_on_page_error: bool = False

    @classmethod
    def parse(cls, f: Fields) -> BrowserOptions | None:
        url = parse_url(f, ("http", "https"), "an http:// or https://")
        headers, host = parse_headers(f)
        if host is not None:
            f.problem("headers", "header 'Host' is the URL's host in a browser; remove it")
        selector = f.text("expect_selector")
        if selector is not None and not selector.strip():
            f.problem("expect_selector", "is empty: give a CSS selector ('#status.ok', 'main h1')")
        options = cls(url=url or "", headers=headers, tls_verify=f.flag("tls_verify", True),
                      expect_status=parse_status(f), expect_text=pattern_field(f, "expect_text"),
                      expect_selector=selector,
                      wait_until=f.text("wait_until", "load", choices=_WAIT_UNTIL) or "load",
                      fail_on_page_error=f.flag("fail_on_page_error", False))
        if url and importlib.util.find_spec("playwright") is None:
            f.problem("kind", "browser needs Playwright: pip install 'otel-health[browser]' (and Chromium on this "
                              "host)")
        elif url and chromium() is None:
            f.problem("kind", "browser needs Chromium on this host: install it (Debian: apt-get install chromium) "
                              "or set OTEL_HEALTH_CHROMIUM to its path")
        return options if url else None

    def secrets(self) -> Iterator[Secret]:
        return pair_secrets(self.headers)

    def where(self) -> str:
        return redact_url(self.url)

    def public(self) -> dict[str, Any]:
        return {"url": redact_url(self.url), "expect_status": [str(r) for r in self.expect_status],
                "expect_text": self.expect_text.pattern if self.expect_text is not None else None,
                "expect_selector": self.expect_selector, "wait_until": self.wait_until,
                "fail_on_page_error": self.fail_on_page_error,
                "headers": shown_pairs(self.headers)}


class BrowserProbe(Probe):
    kind = "browser"
    component_type = "frontend"
    check_name = "page"
    options_type = BrowserOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._playwright: Any = None
        self._browser: Any = None
        self._starting: asyncio.Lock | None = None
        self._pages: asyncio.Semaphore | None = None
        self._broken = False

    def _load(self) -> None:
        import playwright.async_api  # noqa: F401 - imported once, off the loop, before the first check

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        return _classify_browser(exc) or classify_os_error(exc)

    async def _ready(self) -> None:
        if self._browser is None or not self._browser.is_connected():
            try:
                await self._started()
            except NoVerdict:
                pass  # the check tries again, and gives no verdict

    async def _started(self) -> Any:
        """The shared browser, started (again) when there is none or it died."""
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            from playwright.async_api import async_playwright

            try:
                if self._playwright is None:
                    self._playwright = await async_playwright().start()
                path = chromium()
                if path is None:
                    raise RuntimeError("no Chromium on this host (OTEL_HEALTH_CHROMIUM, or chromium on PATH)")
                self._browser = await self._playwright.chromium.launch(executable_path=str(path), args=list(_ARGS),
                                                                       headless=True)
            except Exception as exc:  # the browser, not the site: no verdict
                if not self._broken:  # said once until it starts again
                    log.warning("browser: Chromium could not be started, browser targets get no verdict: %s",
                                server_words(str(exc)))
                self._broken = True
                raise NoVerdict() from exc
            if self._broken:
                log.warning("browser: Chromium started again")
            self._broken = False
            return self._browser

    async def _check(self, target: Target, attempt: Attempt) -> None:
        o: BrowserOptions = target.options
        if self._pages is None:
            self._pages = asyncio.Semaphore(PAGES)
        deadline = answer_by(target.timeout)  # what did not come by then is named
        browser = await self._started()
        headers = {name: value.reveal() if isinstance(value, Secret) else value for name, value in o.headers}
        try:
            async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
                await self._pages.acquire()
        except TimeoutError:
            raise ProbeFailure(ErrorType.TIMEOUT, f"no page of the browser came free within the timeout ({PAGES} "
                                                  "browser checks were running: give browser targets longer "
                                                  "intervals)") from None
        opening = asyncio.ensure_future(_opened(browser, o, headers))
        try:
            with self.step(attempt, "open", "new page", {}):
                done, _ = await asyncio.wait({opening}, timeout=max(0.0, deadline - time.perf_counter()))
                if not done:
                    raise ProbeFailure(ErrorType.TIMEOUT, "the browser did not open a page within the timeout (the "
                                                          "host is busy: see the browser's CPU in performance.md)")
                _, page = opening.result()
            await self._visit(o, deadline, attempt, page)
        except Exception as exc:
            if not browser.is_connected():  # the browser went away under the check: not the site
                log.warning("browser: Chromium stopped during a check; it starts again at the next")
                raise NoVerdict() from exc
            raise
        finally:
            # closed after the verdict, the page's turn given back once it is: a close that lags
            # costs the next check its turn, never this one its timeout
            closing = asyncio.ensure_future(_closed(opening, self._pages))
            _closing.add(closing)
            closing.add_done_callback(_closing.discard)

    async def _visit(self, o: BrowserOptions, deadline: float, attempt: Attempt, page: Any) -> None:
        """The page loaded and judged by ``deadline``. Playwright's calls are not cut short when
        cancelled (each waits for the browser's answer, late when the host is busy): each runs
        as a task the check stops waiting for at the deadline, its browser timer a second later."""
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(getattr(error, "message", error))))
        stage, seen = "navigate", [""]
        late_ms = _left_ms(deadline) + 1000
        try:
            with self.step(attempt, "navigate", f"GET {redact_url(o.url)}", {"url.full": redact_url(o.url)}) as span:
                response = await _by(deadline, page.goto(o.url, wait_until=o.wait_until, timeout=late_ms))
                if response is None:
                    raise ProbeFailure(ErrorType.PROTOCOL, "the browser loaded no document (the URL is not a page)")
                span.set_attribute("http.response.status_code", response.status)
            stage = "timings"
            attempt.phases.update(await _timings(page, deadline))
            if not any(response.status in r for r in o.expect_status):
                raise ProbeFailure(ErrorType.HTTP_STATUS, f"the document's status {response.status}, expected "
                                                          f"{', '.join(str(r) for r in o.expect_status)}")
            if o.expect_selector is not None:
                stage = "selector"
                with self.step(attempt, "selector", "wait for selector", {}):
                    await _by(deadline, page.wait_for_selector(o.expect_selector, state="visible", timeout=late_ms))
            if o.expect_text is not None:
                stage = "text"
                await _by(deadline, _text_found(page, o.expect_text, seen))
        except TimeoutError:
            hidden = await _hidden(page, o.expect_selector) if stage == "selector" and o.expect_selector else ""
            raise _late(o, stage, seen[0], hidden) from None
        if errors and o.fail_on_page_error:
            raise ProbeFailure(ErrorType.ASSERTION, f"the page threw {len(errors)} uncaught error"
                                                    f"{'s' if len(errors) != 1 else ''}; the first: "
                                                    f"{server_words(errors[0])[:SHOWN]!r}")

    async def close(self) -> None:
        browser, driver = self._browser, self._playwright
        self._browser = self._playwright = None
        for closing in (browser.close() if browser is not None else None,
                        driver.stop() if driver is not None else None):
            if closing is not None:
                try:
                    async with asyncio.timeout(5):
                        await closing
                except Exception:  # noqa: BLE001, S110 - stopping: what is left goes with the process
                    pass


async def _text_found(page: Any, expect: Pattern, seen: list[str]) -> None:
    """The page's visible text, read now and every tenth of a second while its scripts may still
    be writing it, until it matches ``expect`` (the caller's clock ends the wait; ``seen`` keeps
    the last text read)."""
    while True:
        seen[0] = str(await page.evaluate("document.body ? document.body.innerText : ''"))
        if expect.found(seen[0]):
            return
        await asyncio.sleep(0.1)


def _late(o: BrowserOptions, stage: str, text: str, hidden: str) -> ProbeFailure:
    """What was still awaited when the check's time was up."""
    if stage == "navigate":
        return ProbeFailure(ErrorType.TIMEOUT, f"the page did not reach {o.wait_until} within the timeout")
    if stage == "selector":
        return ProbeFailure(ErrorType.ASSERTION, f"no visible element matches {o.expect_selector!r} within the "
                                                 f"timeout{hidden}")
    if stage == "text" and o.expect_text is not None:
        return ProbeFailure(ErrorType.ASSERTION, f"the page's text did not match {o.expect_text.pattern!r} within "
                                                 f"the timeout (it begins {server_words(text)[:SHOWN]!r})")
    return ProbeFailure(ErrorType.TIMEOUT, "the browser did not answer within the timeout")


_closing: set[asyncio.Task[None]] = set()


async def _closed(opening: asyncio.Future[tuple[Any, Any]], pages: asyncio.Semaphore) -> None:
    """The check's context closed, once the browser opened it, and its page's turn given back."""
    try:
        async with asyncio.timeout(5):
            context, _ = await opening
            await context.close()
    except Exception:  # noqa: BLE001, S110 - the check is over; the browser drops the context either way
        pass
    finally:
        pages.release()


def _left_ms(deadline: float) -> float:
    return max(1.0, (deadline - time.perf_counter()) * 1000)


async def _opened(browser: Any, o: BrowserOptions, headers: dict[str, str]) -> tuple[Any, Any]:
    context = await browser.new_context(ignore_https_errors=not o.tls_verify, extra_http_headers=headers,
                                        service_workers="block")
    try:
        return context, await context.new_page()
    except BaseException:
        await close_within(context.close())
        raise


async def _by(deadline: float, call: Coroutine[Any, Any, T]) -> T:
    """``call``'s result, or TimeoutError at ``deadline`` without waiting for ``call`` to stop
    (it ends with its context; what it raises then is taken, not logged)."""
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.perf_counter()))
    if task in done:
        return task.result()
    task.cancel()
    task.add_done_callback(lambda ended: ended.cancelled() or ended.exception())
    raise TimeoutError


async def _hidden(page: Any, selector: str) -> str:
    """" (N hidden)" when the page says at once that it has elements the selector matches, hidden."""
    try:
        found = await _by(time.perf_counter() + 0.1, page.locator(selector).count())  # the verdict does not wait
    except Exception:  # noqa: BLE001 - a detail's addition, not the verdict
        return ""
    return f" ({found} hidden)" if found else ""


_TIMINGS_JS = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  if (!n) return null;
  return [n.domainLookupStart, n.domainLookupEnd, n.connectStart, n.secureConnectionStart, n.connectEnd,
          n.requestStart, n.responseStart, n.responseEnd, n.domContentLoadedEventEnd, n.loadEventEnd];
}"""


async def _timings(page: Any, deadline: float) -> dict[str, float]:
    """The check's phases from the page's own Navigation Timing entry, in seconds."""
    got = await _by(deadline, page.evaluate(_TIMINGS_JS))
    if not got:
        return {}
    dns0, dns1, conn0, tls0, conn1, req, first, last, dom, load = (float(v or 0) for v in got)
    phases = {"dns": dns1 - dns0, "connect": (tls0 or conn1) - conn0, "ttfb": first - req,
              "transfer": last - first, "dom_content_loaded": dom, "load": load}
    if tls0:
        phases["tls"] = conn1 - tls0
    return {name: max(0.0, value) / 1000 for name, value in phases.items()}


_NET = (("ERR_CONNECTION_REFUSED", ErrorType.CONNECTION_REFUSED, "connection refused"),
        ("ERR_NAME_NOT_RESOLVED", ErrorType.DNS, "the name does not resolve"),
        ("ERR_NAME_RESOLUTION_FAILED", ErrorType.DNS, "the name could not be resolved"),
        ("ERR_CERT_", ErrorType.TLS, "certificate not accepted"),
        ("ERR_SSL_", ErrorType.TLS, "TLS failed"),
        ("ERR_BAD_SSL_CLIENT_AUTH_CERT", ErrorType.TLS, "TLS failed"),
        ("ERR_CONNECTION_RESET", ErrorType.CONNECTION_RESET, "connection reset"),
        ("ERR_CONNECTION_CLOSED", ErrorType.CONNECTION_RESET, "the connection was closed"),
        ("ERR_EMPTY_RESPONSE", ErrorType.PROTOCOL, "the server closed the connection without answering"),
        ("ERR_INVALID_HTTP_RESPONSE", ErrorType.PROTOCOL, "the answer is not HTTP"),
        ("ERR_TOO_MANY_REDIRECTS", ErrorType.PROTOCOL, "too many redirects"),
        ("ERR_CONNECTION_TIMED_OUT", ErrorType.TIMEOUT, "the connection timed out"),
        ("ERR_TIMED_OUT", ErrorType.TIMEOUT, "timed out"),
        ("ERR_ADDRESS_UNREACHABLE", ErrorType.UNREACHABLE, "the address is unreachable"),
        ("ERR_NETWORK_UNREACHABLE", ErrorType.UNREACHABLE, "the network is unreachable"),
        ("ERR_UNSAFE_PORT", ErrorType.PROTOCOL, "the browser refuses this port (an unsafe port: use another)"))
_NET_RE = re.compile(r"net::(ERR_[A-Z_]+)")


def _classify_browser(exc: BaseException) -> tuple[ErrorType, str] | None:
    from playwright.async_api import Error
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    if isinstance(exc, PlaywrightTimeout):
        return ErrorType.TIMEOUT, "the page did not load within the timeout"
    if not isinstance(exc, Error):
        return None
    said = str(exc)
    code = _NET_RE.search(said)
    if code is not None:
        for prefix, error_type, words in _NET:
            if code.group(1).startswith(prefix):
                return error_type, f"{words} ({code.group(1)})"
        return ErrorType.PROTOCOL, f"the browser could not load the page ({code.group(1)})"
    return ErrorType.PROTOCOL, f"the browser could not load the page ({server_words(said.splitlines()[0])})"
