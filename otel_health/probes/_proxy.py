"""Forward proxies for HTTP checks: which proxy a URL goes through, and which it bypasses.

A :class:`Proxies` is worked out once per configuration (from ``proxy_url`` and
``no_proxy``, or from ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``) and asked once per hop,
so a redirect to a host in ``no_proxy`` goes direct. Only ``http://`` proxies are spoken:
``CONNECT`` for https targets, absolute-form requests for http ones (``_http1``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from ..config import Fields, Secret
from ..errors import ProbeFailure
from ._credentials import basic_authorization, basic_credentials
from ._resolver import ascii_host

__all__ = ["NoProxy", "Proxies", "Proxy", "ProxySettings", "ProxyURL", "environment_proxies", "parse_proxy_settings",
           "parse_proxy_url"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str  # ASCII; an IPv6 literal without brackets
    port: int
    authorization: str | None = field(default=None, repr=False)  # "Basic ...": never printed

    @property
    def label(self) -> str:
        """How details name the proxy: ``host:port``."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class NoProxy:
    """Hosts reached directly, as ``NO_PROXY`` lists them in Go and curl: ``*`` (every host),
    a domain (``example.com`` is that name and every name under it; ``.example.com`` only
    the names under it), an IP address, a CIDR block; each with an optional ``:port``."""

    everything: bool = False
    names: tuple[tuple[str, bool, int | None], ...] = ()  # (domain, subdomains only, port)
    networks: tuple[tuple[IPNetwork, int | None], ...] = ()

    @classmethod
    def parse(cls, entries: list[str]) -> NoProxy:
        """Raises ValueError naming the first entry that is neither a name nor an address."""
        names: list[tuple[str, bool, int | None]] = []
        networks: list[tuple[IPNetwork, int | None]] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry == "*":
                return cls(everything=True)
            if any(c in entry for c in " @") or "://" in entry:
                raise ValueError(f"{raw.strip()[:60]!r} is not a host name, domain, IP address or CIDR block")
            host, port = _split_port(entry)
            try:
                networks.append((ipaddress.ip_network(host.strip("[]"), strict=False), port))
                continue
            except ValueError:
                pass
            subdomains_only = host.startswith(".")
            host = host.lstrip(".").removeprefix("*.")
            if not host or any(c in host for c in "/ @[]"):
                raise ValueError(f"{raw.strip()[:60]!r} is not a host name, domain, IP address or CIDR block")
            names.append((host.rstrip("."), subdomains_only, port))
        return cls(False, tuple(names), tuple(networks))

    def bypass(self, host: str, port: int) -> bool:
        if self.everything:
            return True
        host = host.lower().rstrip(".")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None:
            return any(address in net and p in (None, port) for net, p in self.networks)
        for name, subdomains_only, p in self.names:
            if p not in (None, port):
                continue
            if host.endswith("." + name) or (host == name and not subdomains_only):
                return True
        return False


@dataclass(frozen=True, slots=True)
class Proxies:
    http: Proxy | None = None   # for http:// URLs
    https: Proxy | None = None  # for https:// URLs
    no_proxy: NoProxy = NoProxy()

    def for_url(self, scheme: str, host: str, port: int) -> Proxy | None:
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or self.no_proxy.bypass(host, port):
            return None
        return proxy


@dataclass(frozen=True, slots=True)
class ProxyURL:
    host: str
    port: int
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def shown(self) -> str:
        """The proxy as outputs may show it: no credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_proxy_url(text: str) -> ProxyURL:
    """An ``http://host[:port]`` proxy URL (a bare ``host:port`` too, as the environment
    variables are often written). Raises ValueError with a reason that never holds the
    credentials."""
    text = text.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme.lower() != "http":
        raise ValueError(f"has the scheme {parts.scheme[:20]!r}; only http:// proxies are supported "
                         "(https targets go through them with CONNECT)")
    if not parts.hostname:
        raise ValueError("has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be only http://host:port")
    if port == 0:
        raise ValueError("has port 0; give the proxy's port")
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return ProxyURL(parts.hostname, port or 80, user, password)


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        return entry, None
    if port and not port.isdigit():
        raise ValueError(f"{entry[:60]!r} has an invalid port")
    return host, int(port) if port else None


def environment_proxies(environ: Mapping[str, str]) -> tuple[tuple[str, str] | None, tuple[str, str] | None,
                                                          tuple[str, str] | None]:
    """``(variable, value)`` of the http proxy, the https proxy and the bypass list, as Go
    reads them: the upper-case name first, then the lower-case one; unset or empty is None."""

    def pick(name: str) -> tuple[str, str] | None:
        for var in (name, name.lower()):
            value = environ.get(var, "").strip()
            if value:
                return var, value
        return None

    return pick("HTTP_PROXY"), pick("HTTPS_PROXY"), pick("NO_PROXY")


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Where the proxy settings came from, for ``/api/v1/targets``, and its secrets."""

    proxies: Proxies
    shown: dict[str, Any]
    secrets: tuple[Secret, ...] = field(default=(), repr=False)


def parse_proxy_settings(f: Fields, environ: Mapping[str, str]) -> ProxySettings | None:
    """The HTTP kind's proxy options (``proxy_url``, ``proxy_from_environment``, ``no_proxy``,
    ``proxy_basic_auth``); None when there is no proxy, or a problem (reported)."""
    url_text: str | None = f.text("proxy_url")
    from_env = f.flag("proxy_from_environment", False)
    raw_no_proxy = f.raw("no_proxy")
    auth, user, password = basic_credentials(f, "proxy_basic_auth")
    if isinstance(raw_no_proxy, str):
        entries = _comma_list(raw_no_proxy)
    elif isinstance(raw_no_proxy, list) and all(isinstance(e, str) for e in raw_no_proxy):
        entries = [e.strip() for e in raw_no_proxy if e.strip()]
    else:
        entries = []
        if raw_no_proxy is not None:
            f.problem("no_proxy", "must be a list of hosts, domains and CIDR blocks (or one comma-separated string)")
    if url_text is None and not from_env:
        if raw_no_proxy is not None:
            f.problem("no_proxy", "applies only with proxy_url or proxy_from_environment; remove it or add one")
        if auth is not None:
            f.problem("proxy_basic_auth", "needs proxy_url; remove it or add one")
        return None
    if url_text is not None and from_env:
        f.problem("proxy_url", "and proxy_from_environment: true both choose the proxy; keep one")
        return None
    secrets: list[Secret] = []
    if url_text is not None:
        proxy_url = _proxy_url(f, "proxy_url", url_text)
        if proxy_url is None:
            return None
        if proxy_url.user is not None:
            f.problem("proxy_url", "must not hold credentials; use 'proxy_basic_auth' with 'password: ${ENV_VAR}'")
            return None
        authorization = None
        if user is not None and password is not None:
            authorization = basic_authorization(user, password.reveal())
            secrets.append(password)
        proxy = Proxy(proxy_url.host, proxy_url.port, authorization)
        http_proxy: Proxy | None = proxy
        https_proxy: Proxy | None = proxy
        shown: dict[str, Any] = {"url": proxy_url.shown, "auth": "basic" if authorization else None}
    else:
        if auth is not None:
            f.problem("proxy_basic_auth", "does not apply with proxy_from_environment: the variables' URLs "
                                          "carry the proxy credentials")
        http_var, https_var, no_var = environment_proxies(environ)
        made: list[Proxy | None] = []
        shown = {"from_environment": True}
        for var in (http_var, https_var):
            if var is None:
                made.append(None)
                continue
            proxy_url = _proxy_url(f, "proxy_from_environment", var[1], variable=var[0])
            if proxy_url is None:
                return None
            authorization = None
            if proxy_url.user is not None:
                secret = Secret(proxy_url.password or "", f"env:{var[0]}")
                authorization = basic_authorization(proxy_url.user, secret.reveal())
                secrets.append(secret)
            made.append(Proxy(proxy_url.host, proxy_url.port, authorization))
            shown[var[0]] = proxy_url.shown
        http_proxy, https_proxy = made
        if no_var is not None:
            entries = _comma_list(no_var[1]) + entries
    try:
        no_proxy = NoProxy.parse(entries)
    except ValueError as exc:
        f.problem("no_proxy", f"{exc}; fix the entry")
        return None
    shown["no_proxy"] = entries
    return ProxySettings(Proxies(http_proxy, https_proxy, no_proxy), shown, tuple(secrets))


def _comma_list(text: str) -> list[str]:
    return [e.strip() for e in text.split(",") if e.strip()]


def _proxy_url(f: Fields, name: str, text: str, *, variable: str | None = None) -> ProxyURL | None:
    what = f"the variable {variable}" if variable else "it"
    try:
        proxy_url = parse_proxy_url(text)
        proxy_url = dataclasses.replace(proxy_url, host=ascii_host(proxy_url.host))
    except ValueError as exc:
        f.problem(name, f"{what} {exc}" if variable else str(exc))
        return None
    except ProbeFailure as exc:
        f.problem(name, f"{what}: {exc.detail}; fix the host name")
        return None
    return proxy_url
