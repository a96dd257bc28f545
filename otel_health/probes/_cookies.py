"""Cookies as a browser keeps them, by the standard library's :class:`http.cookiejar.CookieJar`
(its default policy: domain, path, ``Secure``, expiry and ``Max-Age``, no cookie for another
site or a whole top-level domain). A check keeps one across its redirects (a login that sets
a session cookie on its 302), a suite one across its steps."""

from __future__ import annotations

import email.message
import http.cookiejar
import urllib.request
from collections.abc import Iterable

__all__ = ["Jar"]


class Jar:
    """The cookies of one check or one suite run."""

    __slots__ = ("_jar",)

    def __init__(self) -> None:
        self._jar = http.cookiejar.CookieJar()

    def take(self, url: str, set_cookie: str) -> None:
        """Store what one ``Set-Cookie`` field of the answer from ``url`` sets."""
        # A Request is only the jar's view of the URL: nothing is opened.
        self._jar.extract_cookies(_Headers(set_cookie), urllib.request.Request(url))  # type: ignore[arg-type]  # noqa: S310

    def take_all(self, cookies_set: Iterable[tuple[str, str]]) -> list[str]:
        """Store every (URL, Set-Cookie) given; the values the jar holds, to hide."""
        for url, header in cookies_set:
            self.take(url, header)
        return [c.value for c in self._jar if c.value]

    def header(self, url: str) -> str | None:
        """The Cookie header a request to ``url`` carries, or None."""
        request = urllib.request.Request(url)  # noqa: S310 - the jar's view of the URL, never opened
        self._jar.add_cookie_header(request)
        return request.get_header("Cookie")


class _Headers:
    """The one Set-Cookie header of an answer, as ``CookieJar.extract_cookies`` reads a response."""

    __slots__ = ("_message",)

    def __init__(self, set_cookie: str) -> None:
        self._message = email.message.Message()
        self._message["Set-Cookie"] = set_cookie

    def info(self) -> email.message.Message:
        return self._message
