"""A field of a JSON answer by its dotted path (``status``, ``checks.0.state``): what the HTTP
kind asserts on (``json_field``, ``version_field``) and a suite step extracts."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["ABSENT", "json_path", "short_json"]


class _Absent:
    """No value at the path (a JSON ``null`` is a value: None)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def json_path(document: Any, path: str) -> Any:
    """The value at ``path`` (keys of objects, indexes of arrays, split at dots), or ABSENT."""
    node = document
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return ABSENT
    return node


def short_json(value: Any) -> str:
    """A value as JSON, at most 80 characters: for a problem's one line."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
