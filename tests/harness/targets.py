"""One target builder for every test: a target is a mapping, dumped with ``yaml.safe_dump``
(values quoted as YAML needs them, whatever they hold), never a string template.

Each builder returns one entry of a ``targets:`` list as YAML text, so entries join with
``"targets:\\n" + "".join(...)`` or :func:`config`. ``extra`` takes more fields as a mapping,
or as the YAML fragment a test finds clearer to read (``"    body_contains: ok\\n"``): it is
parsed and merged, never pasted. Defaults are the builders' own; a test that wants other
timings says so at the call."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ["config", "entry", "heartbeat", "http", "neo4j", "postgres", "redis", "tcp"]


def _fields(extra: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(extra, Mapping):
        return dict(extra)
    parsed = yaml.safe_load(textwrap.dedent(extra)) if extra.strip() else None
    if parsed is None:
        return {}
    assert isinstance(parsed, dict), f"extra fields must be a mapping, got {extra!r}"
    return parsed


def entry(name: str, kind: str, extra: str | Mapping[str, Any] = "", **fields: Any) -> str:
    """One target (``name``, ``kind``, ``fields`` and then ``extra``, which wins) as an entry of
    a ``targets:`` list. A field given None is left out."""
    target = {"name": name, "kind": kind, **{k: v for k, v in fields.items() if v is not None}, **_fields(extra)}
    text = yaml.safe_dump([target], sort_keys=False, default_flow_style=False, width=10_000, allow_unicode=True)
    return textwrap.indent(text, "  ")


def config(*entries: str, **top: Any) -> str:
    """A whole config: ``top``-level fields, then the targets."""
    head = yaml.safe_dump(top, sort_keys=False, width=10_000) if top else ""
    return head + "targets:\n" + "".join(entries)


def http(name: str, url: str, extra: str | Mapping[str, Any] = "", *, interval: str | None = "1s",
         timeout: str | None = "0.8s", **fields: Any) -> str:
    return entry(name, "http", extra, url=url, interval=interval, timeout=timeout, **fields)


def tcp(name: str, host: str = "127.0.0.1", port: int = 1, extra: str | Mapping[str, Any] = "", **fields: Any) -> str:
    return entry(name, "tcp", extra, host=host, port=port, **fields)


def redis(name: str, port: int, extra: str | Mapping[str, Any] = "", *, password: str = "${DS_PASSWORD}",
          timeout: str | None = "1s", **fields: Any) -> str:
    return entry(name, "redis", extra, host="127.0.0.1", port=port, password=password, timeout=timeout, **fields)


def postgres(name: str, port: int, extra: str | Mapping[str, Any] = "", *, user: str = "postgres",
             password: str = "${DS_PASSWORD}", database: str = "postgres", sslmode: str = "disable",
             timeout: str | None = "1s", **fields: Any) -> str:
    return entry(name, "postgres", extra, host="127.0.0.1", port=port, user=user, password=password,
                 database=database, sslmode=sslmode, timeout=timeout, **fields)


def neo4j(name: str, port: int, extra: str | Mapping[str, Any] = "", *, user: str = "neo4j",
          password: str = "${DS_PASSWORD}", timeout: str | None = "1s", **fields: Any) -> str:
    return entry(name, "neo4j", extra, uri=f"bolt://127.0.0.1:{port}", user=user, password=password,
                 timeout=timeout, **fields)


def heartbeat(name: str, extra: str | Mapping[str, Any] = "", **fields: Any) -> str:
    return entry(name, "heartbeat", extra, **fields)
