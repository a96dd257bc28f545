"""How a config writes values, and how a problem shows one: durations (``5s``, ``250ms``),
names, label names, host names, ``HOST:PORT``; a value in a message, shortened and never
more than one line."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_LISTEN",
    "ENV_REF_RE",
    "HOST_NAME_RE",
    "LABEL_RE",
    "NAME_RE",
    "describe",
    "format_seconds",
    "idna_name",
    "is_ip_address",
    "parse_duration",
    "short",
    "split_host_port",
]


DEFAULT_LISTEN = "127.0.0.1:8090"


HOST_NAME_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.\-]{0,251}[A-Za-z0-9_.])?$")


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


ENV_REF_RE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) and value >= 0 else None
    if isinstance(value, str):
        match = _DURATION_RE.fullmatch(value)
        if match:
            seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            return seconds if math.isfinite(seconds) else None
    return None


def format_seconds(seconds: float) -> str:
    """A duration as a config would write it: 250ms, 90s, 15m, 24h."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def split_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv6 host in brackets) as (host, port); ValueError when it is not one.
    Port 0 is allowed: the system picks a free port."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"must be HOST:PORT such as {DEFAULT_LISTEN}, got {short(text)!r}")
    return host, int(port_text)


def describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    return f"{type(value).__name__} {short(repr(value))}"


def short(value: Any, limit: int = 60) -> str:
    text = str(value).replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def idna_name(host: str) -> str:
    """The name as DNS and the Host header carry it: ASCII names unchanged (underscores too),
    others mapped by UTS-46 (non-transitional, as browsers and curl do) to A-labels; raises
    ValueError with the reason when it cannot be."""
    if host.isascii():
        return host
    import idna

    try:
        mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
        return ".".join(label if label.isascii() else idna.alabel(label).decode("ascii")
                        for label in mapped.split("."))
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"the host name cannot be encoded for DNS ({exc})") from None


def is_ip_address(text: str) -> bool:
    """Whether ``text`` is an IPv4 or IPv6 address (no brackets, no port)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
