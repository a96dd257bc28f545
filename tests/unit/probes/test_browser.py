"""The browser kind's options, where it finds Chromium, and its reading of Chromium's network
errors (pure logic: pages are loaded in tests/integration/test_browser.py, in Chromium)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Error
from playwright.async_api import TimeoutError as PlaywrightTimeout

from otel_health.errors import ErrorType
from otel_health.probes import ProbeSettings
from otel_health.probes.browser import BrowserOptions, BrowserProbe, chromium
from tests.harness.checks import options_of


def test_headers_are_by_reference_and_shown_by_their_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN", "Bearer unit-7781")
    options = options_of(BrowserOptions, "kind: browser, url: 'https://shop.example.com/?session=abc', "
                                         "headers: {Authorization: '${TOKEN}'}, expect_text: 'Add to cart'")
    assert [s.reveal() for s in options.secrets()] == ["Bearer unit-7781"]
    assert "7781" not in repr(options.public()) and options.public()["headers"]["Authorization"].startswith(
        "REDACTED")
    assert options.where() == "https://shop.example.com/?session=REDACTED"
    assert (options.wait_until, options.fail_on_page_error) == ("load", False)


def test_chromium_is_the_one_named_or_the_first_on_the_path(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    own = tmp_path / "my-chromium"
    own.write_text("#!/bin/sh\n")
    own.chmod(0o755)
    monkeypatch.setenv("OTEL_HEALTH_CHROMIUM", str(own))
    assert chromium() == own
    monkeypatch.setenv("OTEL_HEALTH_CHROMIUM", str(tmp_path / "missing"))
    assert chromium() is None
    monkeypatch.delenv("OTEL_HEALTH_CHROMIUM")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert chromium() is None
    (tmp_path / "chromium").symlink_to(own)
    assert chromium() == tmp_path / "chromium"


def test_chromiums_network_errors_are_named() -> None:
    probe = BrowserProbe(ProbeSettings())
    for said, error_type, words in (
        ("Page.goto: net::ERR_CONNECTION_REFUSED at http://x/", ErrorType.CONNECTION_REFUSED, "connection refused"),
        ("Page.goto: net::ERR_NAME_NOT_RESOLVED at http://x/", ErrorType.DNS, "does not resolve"),
        ("Page.goto: net::ERR_CERT_DATE_INVALID at https://x/", ErrorType.TLS, "(ERR_CERT_DATE_INVALID)"),
        ("Page.goto: net::ERR_SSL_PROTOCOL_ERROR at https://x/", ErrorType.TLS, "TLS failed"),
        ("Page.goto: net::ERR_EMPTY_RESPONSE at http://x/", ErrorType.PROTOCOL, "without answering"),
        ("Page.goto: net::ERR_ADDRESS_UNREACHABLE at http://x/", ErrorType.UNREACHABLE, "unreachable"),
        ("Page.goto: net::ERR_BLOCKED_BY_CLIENT at http://x/", ErrorType.PROTOCOL, "(ERR_BLOCKED_BY_CLIENT)"),
    ):
        got = probe._classify(Error(said))
        assert got[0] is error_type and words in got[1], (said, got)
    assert probe._classify(PlaywrightTimeout("Timeout 4950ms exceeded."))[0] is ErrorType.TIMEOUT


def test_a_host_without_chromium_is_told_at_config_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from otel_health.config import ConfigError

    monkeypatch.setenv("OTEL_HEALTH_CHROMIUM", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="browser needs Chromium on this host: install it "
                                          r"\(Debian: apt-get install chromium\) or set OTEL_HEALTH_CHROMIUM"):
        options_of(BrowserOptions, "kind: browser, url: 'https://shop.example.com/'")


async def test_a_chromium_that_cannot_start_gives_no_verdict_and_is_said_once(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.harness.checks import check_once

    monkeypatch.setenv("OTEL_HEALTH_CHROMIUM", "/bin/false")  # exists, runs, is no browser
    results = await check_once("  - {name: shop, kind: browser, url: 'http://127.0.0.1:9/', timeout: 5s}\n"
                               "  - {name: blog, kind: browser, url: 'http://127.0.0.1:9/blog', timeout: 5s}\n")
    assert [r.known for r in results.values()] == [False, False]
    said = [r.getMessage() for r in caplog.records if "could not be started" in r.getMessage()]
    assert len(said) == 1, said
