"""Every log line is logfmt that a strict parser (go-logfmt's rules) reads back field for field."""

from __future__ import annotations

import asyncio
import io
import logging
import sys

import logfmtkv
import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_health.collector import Collector
from otel_health.config.loader import load_text
from otel_health.errors import ErrorType
from otel_health.logs import LogfmtFormatter, event, value
from otel_health.probes import PROBES
from tests.unit.test_collector import CONFIG, Scripted, _until


def _line(name: str, **fields: object) -> str:
    record = logging.LogRecord("otel_health", logging.WARNING, __file__, 1, name, None, None)
    record.fields = fields
    return LogfmtFormatter().format(record)


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=60))
def test_any_text_survives_a_round_trip(text: str) -> None:
    parsed = logfmtkv.parse(_line("target_down", detail=text, service="api"), strict=True)
    assert parsed["detail"] == text and parsed["service"] == "api" and parsed["msg"] == "target_down"
    assert set(parsed) == {"time", "level", "logger", "msg", "detail", "service"}


def test_a_line_cannot_be_forged_or_colour_a_terminal() -> None:
    line = _line("target_down", detail='\x1b[31mred\r\ntime=0 level=error msg="forged"', lone="\ud800")
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    parsed = logfmtkv.parse(line, strict=True)
    assert parsed["detail"] == '\x1b[31mred\r\ntime=0 level=error msg="forged"'
    assert parsed["lone"] == "\ufffd"
    assert parsed["level"] == "warning" and parsed["time"].endswith("Z") and "T" in parsed["time"]
    assert value("") == '""' and value("null") == '"null"' and value("plain") == "plain"


def test_a_librarys_free_text_is_one_quoted_message() -> None:
    record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request %s", ("x y",),
                               None)
    parsed = logfmtkv.parse(LogfmtFormatter().format(record), strict=True)
    assert parsed["msg"] == "Error handling request x y" and parsed["logger"] == "aiohttp.server"
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    parsed = logfmtkv.parse(LogfmtFormatter().format(record), strict=True)
    assert "ValueError: boom" in parsed["exception"]


async def test_what_a_running_collector_logs_parses(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogfmtFormatter())
    logger = logging.getLogger("otel_health")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    Scripted.outcomes = {"api": [None, ErrorType.PROTOCOL, None]}
    collector = Collector(load_text(CONFIG, "c.yaml", PROBES), probes={"http": Scripted}, otlp=False)
    try:
        await collector.start()
        try:
            await _until(lambda: stream.getvalue().count("target_") >= 3, "three state changes")
            event(logger, logging.WARNING, "reload_rejected", problem="c.yaml: field 'x': bad\nnext")
        finally:
            await collector.stop(grace=1)
    finally:
        logger.removeHandler(handler)
        await asyncio.sleep(0)
    lines = stream.getvalue().splitlines()
    events = [logfmtkv.parse(line, strict=True) for line in lines]
    assert [e["msg"] for e in events if e["msg"].startswith("target_")][:3] == ["target_up", "target_down",
                                                                               "target_up"]
    down = next(e for e in events if e["msg"] == "target_down")
    assert down["error_type"] == "protocol" and down["detail"] == "http://127.0.0.1:9/: scripted protocol"
    assert next(e for e in events if e["msg"] == "reload_rejected")["problem"] == "c.yaml: field 'x': bad\nnext"
    assert events[0]["msg"] == "started" and events[-1]["msg"] == "stopped"
    for e in events:
        assert {"time", "level", "logger", "msg"} <= set(e) and all(v is not True for v in e.values()), e
