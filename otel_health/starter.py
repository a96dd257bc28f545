"""``otel-health init``: a commented starter config, or the targets for the URLs given.

Each URL is read by the parser ``otel-health probe`` uses (the kind's ``options_from_url``);
what it sets that differs from the kind's defaults is written as the config's fields, a
password as a ``${NAME}`` reference (the URL's own password is never written). The result is
loaded with the config's loader before it is shown, so what ``init`` writes validates."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ._redact import redact_url
from .config import ConfigError, Secret
from .config.loader import load_text
from .config.values import is_ip_address
from .probes import Probe

__all__ = ["InitError", "starter"]

# The targets of a starter without URLs: otel-health checks itself (so the first run has
# series), and the common kinds wait, commented, for their addresses.
_EXAMPLES = """\
  - name: otel-health             # the collector itself: remove once your own targets are in
    kind: http
    url: http://127.0.0.1:8090/-/healthy
  # An HTTP API: up when it answers 200-399 within the timeout.
  # - name: api
  #   kind: http
  #   url: https://api.example.com/health
  #   body_contains: ok               # and the body says so
  # A Redis (role, replication link and memory are reported too).
  # - name: cache
  #   kind: redis
  #   host: 127.0.0.1
  #   password: ${CACHE_PASSWORD}     # credentials only by reference: ${VARIABLE} or password_file
  # A PostgreSQL database: connects and runs SELECT 1.
  # - name: db
  #   kind: postgres
  #   host: 127.0.0.1
  #   database: app
  #   user: monitor
  #   password_file: /run/secrets/db-password
  # A cron job that reports in (otel-health ping backup -- /usr/local/bin/backup.sh).
  # - name: backup
  #   kind: heartbeat
  #   period: 24h                     # how often the job reports in
  #   grace: 1h                       # how late it may be before it is down
  #   token_file: /run/secrets/backup-token
"""

# Option names that the config writes differently from the options object.
_RENAMED: dict[str, dict[str, str]] = {"http": {"basic_auth_user": "basic_auth.username",
                                                "basic_auth_password": "basic_auth.password"}}


class InitError(Exception):
    """A URL ``init`` cannot turn into a target; the message names it and says what would work."""


def _name(url: str, kind: str, options: Any, taken: set[str]) -> str:
    """The host's first label (a DNS check: its query's), or the kind for an address; made unique."""
    host = getattr(options, "query_name", None) or urlsplit(url).hostname or ""
    first = "" if is_ip_address(host) else host.split(".")[0]
    base = re.sub(r"[^A-Za-z0-9_.\-]+", "-", first).strip("-._")[:100] or kind
    if not base[0].isalnum():
        base = f"{kind}-{base}"
    candidates = [base, *([f"{base}-{kind}"] if base != kind else [])]
    name = next((c for c in candidates if c not in taken), "")
    number = 2
    while not name:
        name = f"{base}-{number}" if f"{base}-{number}" not in taken else ""
        number += 1
    taken.add(name)
    return name


def _variable(name: str, field: str) -> str:
    """An environment variable's name for ``field`` of target ``name``: letters first, as ${...} needs."""
    text = re.sub(r"[^A-Z0-9]+", "_", f"{name}_{field}".upper())
    return re.sub(r"^[^A-Z]+", "", text).strip("_")


def _fields(kind: str, name: str, options: Any) -> tuple[dict[str, Any], list[str]]:
    """The config fields ``options`` sets beyond the kind's defaults, and the variables it needs."""
    written: dict[str, Any] = {}
    variables: list[str] = []
    renamed = _RENAMED.get(kind, {})
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = dataclasses.MISSING
        if value == default:
            continue
        if isinstance(value, Secret):
            variable = _variable(name, field.name.rsplit("_", 1)[-1])
            variables.append(variable)
            value = f"${{{variable}}}"
        elif isinstance(value, Path):
            value = str(value)
        key = renamed.get(field.name, field.name)
        head, _, rest = key.partition(".")
        if rest:
            written.setdefault(head, {})[rest] = value
        else:
            written[key] = value
    if kind == "dns":  # one field: the server's address and port
        port = written.pop("port", None)
        server = written["server"]
        if port is not None:
            written["server"] = f"[{server}]:{port}" if ":" in server else f"{server}:{port}"
    return written, variables


def starter(urls: list[str], kinds: Mapping[str, type[Probe]], *, listen: str = "127.0.0.1:8090") -> str:
    """The config text: the starter's header, then a target for each URL (or the examples)."""
    template = resources.files("otel_health").joinpath("starter.yaml").read_text(encoding="utf-8")
    template = template.replace("listen: 127.0.0.1:8090 ", f"listen: {listen} ")
    if not urls:
        text = template.replace("{targets}\n", _EXAMPLES.replace("127.0.0.1:8090", listen))
    else:
        by_scheme = {scheme: spec for spec in kinds.values() for scheme in spec.schemes}
        taken: set[str] = set()
        entries: list[str] = []
        for url in urls:
            spec = by_scheme.get(urlsplit(url).scheme.lower())
            if spec is None:
                raise InitError(f"{redact_url(url)}: unknown scheme; use one of {', '.join(sorted(by_scheme))}")
            try:
                options = spec.options_from_url(url)
            except ValueError as exc:
                raise InitError(f"{redact_url(url)}: {exc}") from None
            name = _name(url, spec.kind, options, taken)
            fields, variables = _fields(spec.kind, name, options)
            entry = yaml.safe_dump([{"name": name, "kind": spec.kind, **fields}], sort_keys=False,
                                   allow_unicode=True, width=200)
            note = f"  # from {redact_url(url)}"
            if variables:
                note += f"; set {' and '.join(variables)} in the environment (the URL's password is not written)"
            entries.append(note + "\n" + "".join(f"  {line}\n" for line in entry.splitlines()))
        text = template.replace("{targets}\n", "".join(entries))
    try:  # what init writes must load: the same loader, credentials checked for their form only
        load_text(text, "<init>", kinds, resolve_secrets=False)
    except ConfigError as exc:
        raise InitError("the starter does not load: " + "; ".join(exc.problems)) from None
    return text
