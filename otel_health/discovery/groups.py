"""Target groups as Prometheus writes them (``file_sd`` files, ``http_sd`` answers), read
with bounds on their size, their labels and their addresses; and the files a ``file_sd``
source's patterns match."""

from __future__ import annotations

import glob
import ipaddress
import json
import os
from collections.abc import Mapping

import yaml

from ..config.values import HOST_NAME_RE, LABEL_RE, describe, split_host_port
from ..config.yamldoc import read_yaml
from .model import MAX_LABEL_NAME, MAX_LABEL_VALUE, MAX_LABELS, MAX_SD_BYTES, FileSd, Group

__all__ = ["SdError", "matched_files", "parse_groups", "split_address"]


class SdError(Exception):
    """Target groups that are not valid (the message says where and why)."""


def parse_groups(data: bytes | str, fmt: str, limit: int = MAX_SD_BYTES) -> tuple[Group, ...]:
    """Prometheus target groups from ``data`` (``json`` or ``yaml``): a list of
    ``{targets: [...], labels: {...}}``. Raises :class:`SdError`."""
    if len(data) > limit:
        raise SdError(f"larger than {limit} bytes")
    try:
        text = data.decode("utf-8", errors="strict") if isinstance(data, bytes) else data
        raw = json.loads(text) if fmt == "json" else read_yaml(text)
    except UnicodeDecodeError:
        raise SdError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SdError(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except yaml.YAMLError as exc:
        raise SdError(f"not valid YAML ({getattr(exc, 'problem', None) or str(exc).splitlines()[0]})") from None
    if raw is None and fmt == "yaml":
        return ()
    if not isinstance(raw, list):
        raise SdError(f"must be a list of target groups ({{targets: [...], labels: {{...}}}}), got {describe(raw)}")
    groups = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise SdError(f"group {i} must be a mapping, got {describe(item)}")
        unknown = set(item) - {"targets", "labels"}
        if unknown:
            raise SdError(f"group {i} has unknown field {sorted(map(str, unknown))[0]!r}; a group has targets "
                          "and labels")
        targets = item.get("targets")
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise SdError(f"group {i}: 'targets' must be a list of addresses (host:port)")
        labels = item.get("labels") or {}
        if not isinstance(labels, Mapping):
            raise SdError(f"group {i}: 'labels' must be a mapping of label names to values")
        if len(labels) > MAX_LABELS:
            raise SdError(f"group {i} has {len(labels)} labels, more than {MAX_LABELS}; keep the ones you route "
                          "and query by")
        for key, value in labels.items():
            if not isinstance(key, str) or not LABEL_RE.fullmatch(key):
                raise SdError(f"group {i}: label name {str(key)[:60]!r} is not valid; use [a-zA-Z_][a-zA-Z0-9_]*")
            if len(key) > MAX_LABEL_NAME:
                raise SdError(f"group {i}: label name {key[:60]!r}… is longer than {MAX_LABEL_NAME} characters")
            if not isinstance(value, str):
                raise SdError(f"group {i}: label {key!r} must be text, got {describe(value)}")
            if len(value) > MAX_LABEL_VALUE:
                raise SdError(f"group {i}: label {key!r} is {len(value)} characters long, longer than "
                              f"{MAX_LABEL_VALUE}; a label is a name to route and query by, not a document")
        groups.append(Group(tuple(targets), tuple(sorted(labels.items()))))
    return tuple(groups)


def split_address(address: str) -> tuple[str, str]:
    """``host:port``, ``host`` or ``[v6]:port`` as (host, port); port "" when absent. SdError
    for anything else: a discovered address is never a URL or a user name."""
    problem = SdError(f"address {address[:60]!r} is not host:port (a host name or IP address, and a port)")
    if ":" not in address:
        host, port = address, ""
    else:
        try:
            host, number = split_host_port(address)
        except ValueError:
            raise problem from None
        port = str(number)
        if number == 0 or address.startswith("[") != ("]" in address):
            raise problem
    if address.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise problem from None
    elif not HOST_NAME_RE.fullmatch(host):
        raise problem
    return host, port


def matched_files(file_sd: FileSd) -> list[str]:
    out: list[str] = []
    for pattern in file_sd.patterns:
        out.extend(sorted(glob.glob(pattern)) if glob.has_magic(pattern) else
                   [pattern] if os.path.exists(pattern) else [])
    return list(dict.fromkeys(out))
