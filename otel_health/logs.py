"""Log lines in logfmt: ``time=… level=… logger=… msg=EVENT key=value …``, one line each.

otel-health logs events (:func:`event`) whose fields become pairs; a library's free-text
message becomes one quoted ``msg``. Values are quoted by go-logfmt's rule (a character at or
below space, ``=``, ``"``, DEL or U+FFFD), with ``\\ " \\n \\r \\t`` escaped and other control
characters as ``\\u00XX``, so what a target sent (an escape sequence, a carriage return) can
neither forge a line nor colour a terminal. ``tests/unit/test_logs.py`` parses every line
with a strict logfmt parser.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sys
from typing import Any

__all__ = ["LogfmtFormatter", "event", "iso_time", "setup", "value"]

_NEEDS_QUOTE = re.compile('[\\x00-\\x20="\\x7f\\ufffd\\ud800-\\udfff]')
_TO_ESCAPE = re.compile('[\\x00-\\x1f"\\\\\\x7f\\ufffd\\ud800-\\udfff]')
_NAMED = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Library loggers that can print request details (URLs, headers): kept at WARNING or above.
_QUIET = ("aiohttp", "opentelemetry", "urllib3", "asyncio", "neo4j", "redis", "asyncpg", "asyncmy", "grpc", "dns",
          "websockets", "asyncssh", "aioquic", "quic", "mqtt", "aiomqtt", "paho",
          "pysnmp", "pyrad", "pamqp", "pymongo", "playwright", "a2s")
# Libraries that log each failed connection or bootstrap as an error of their own: the check reports it
_SILENT = ("aiormq", "aiokafka")


def value(item: Any) -> str:
    """``item`` as one logfmt value, quoted only when it must be."""
    text = str(item)
    if text and text != "null" and not _NEEDS_QUOTE.search(text):
        return text
    return '"' + _TO_ESCAPE.sub(_escape, text) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    return f"\\u{ord(char):04x}" if char < " " or char == "\x7f" else "\\ufffd"


def iso_time(ts: float, timespec: str = "milliseconds") -> str:
    """Unix time as every output writes it: ISO 8601 in UTC with a Z, to the millisecond."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """Log the event ``name`` (a word such as ``target_down``) with ``fields`` as pairs."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [f"time={iso_time(record.created)}", f"level={record.levelname.lower()}",
                 f"logger={value(record.name)}"]
        fields = getattr(record, "fields", None)
        parts.append(f"msg={value(record.msg if fields is not None else record.getMessage())}")
        if fields:
            parts.extend(f"{key}={value(item)}" for key, item in fields.items())
        if record.exc_info:
            parts.append(f"exception={value(self.formatException(record.exc_info))}")
        return " ".join(parts)


def setup(level: str) -> None:
    """Log to stderr in logfmt at ``level``; libraries at WARNING or above (those in ``_SILENT`` only
    at CRITICAL)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for silent in _SILENT:
        logging.getLogger(silent).setLevel(logging.CRITICAL)
