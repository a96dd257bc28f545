"""The cookie jar a check keeps across its redirects and a suite across its steps: the
standard library's policy, as a browser sends cookies back."""

from __future__ import annotations

from otel_health.probes._cookies import Jar


def _set(url: str, *cookies: str) -> list[tuple[str, str]]:
    return [(url, c) for c in cookies]


def test_the_jar_sends_cookies_back_by_domain_path_and_secure() -> None:
    jar = Jar()
    hidden = jar.take_all(_set("https://shop.example.com/shop/login", "sid=abc; Path=/shop; HttpOnly",
                              "pref=dark; Domain=example.com; Path=/", "lang=en", "safe=1; Secure",
                              "other=x; Domain=elsewhere.example.net", "tld=x; Domain=com"))
    assert sorted(hidden) == ["1", "abc", "dark", "en"]  # no cookie for another site, nor for a whole TLD
    assert _cookies(jar, "https://shop.example.com/shop/orders/1") == {"sid=abc", "pref=dark", "lang=en", "safe=1"}
    # without Path, a cookie's path is the directory of the URL that set it (/shop); /shopping is outside it
    assert _cookies(jar, "https://shop.example.com/shopping") == {"pref=dark"}
    assert _cookies(jar, "http://shop.example.com/shop/x") == {"sid=abc", "pref=dark", "lang=en"}  # Secure: https
    assert _cookies(jar, "https://api.example.com/") == {"pref=dark"}  # Domain= covers the subdomains
    assert _cookies(jar, "https://api.shop.example.com/") == {"pref=dark"}  # host-only cookies stay with the host
    assert jar.header("https://elsewhere.example.net/") is None
    jar.take("https://shop.example.com/shop/logout", "sid=; Path=/shop; Max-Age=0")
    assert _cookies(jar, "https://shop.example.com/shop/orders/1") == {"pref=dark", "lang=en", "safe=1"}


def _cookies(jar: Jar, url: str) -> set[str]:
    header = jar.header(url)
    return set(header.split("; ")) if header else set()
