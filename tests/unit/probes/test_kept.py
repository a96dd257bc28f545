"""Kept connections (``probes/_kept.py``): one goes back only after a check that succeeded."""

from __future__ import annotations

import asyncio

import pytest

from otel_health.probes._base import close_within, closes_finished
from otel_health.probes._kept import Kept


class _Conn:
    def __init__(self, name: str, usable: bool = True) -> None:
        self.name, self.usable, self.closed = name, usable, False


async def _close(conn: _Conn) -> None:
    conn.closed = True


async def test_a_kept_connection_goes_back_only_after_success() -> None:
    kept: Kept[_Conn] = Kept(_close)
    key = ("db", "prod")
    async with kept.session(key, "opts", keep=True) as held:
        assert held.conn is None
        first = held.conn = _Conn("first")
    async with kept.session(key, "opts", keep=True) as held:
        assert held.conn is first  # taken back out
    with pytest.raises(RuntimeError):
        async with kept.session(key, "opts", keep=True) as held:
            assert held.conn is first
            raise RuntimeError("check failed")
    assert first.closed  # a failure closes it
    async with kept.session(key, "opts", keep=True) as held:
        assert held.conn is None


async def test_a_connection_not_kept_changed_or_unusable_is_closed() -> None:
    kept: Kept[_Conn] = Kept(_close, usable=lambda c: c.usable)
    key = ("db", "prod")
    async with kept.session(key, "opts", keep=False) as held:
        once = held.conn = _Conn("once")
    assert once.closed  # the target does not keep connections
    async with kept.session(key, "v1", keep=True) as held:
        v1 = held.conn = _Conn("v1")
    async with kept.session(key, "v2", keep=True) as held:
        assert held.conn is None and v1.closed  # options changed by a reload
        v2 = held.conn = _Conn("v2", usable=False)
    async with kept.session(key, "v2", keep=True) as held:
        assert held.conn is None and v2.closed  # the server closed it meanwhile
        held.conn = _Conn("v3")
    await kept.retain(set())
    await asyncio.sleep(0)
    async with kept.session(key, "v2", keep=True) as held:
        assert held.conn is None  # removed by a reload


async def test_a_close_goes_on_when_the_check_that_began_it_is_cancelled() -> None:
    # A check that fails just before its timeout closes its connection as the timeout
    # expires: the close must still happen, not be cut short before it began.
    closing_started, may_finish = asyncio.Event(), asyncio.Event()
    conn = _Conn("near-deadline")

    async def slow_close(c: _Conn) -> None:
        closing_started.set()
        await may_finish.wait()
        c.closed = True

    kept: Kept[_Conn] = Kept(lambda c: close_within(slow_close(c)))

    async def check() -> None:
        async with kept.session(("db", "prod"), "opts", keep=False) as held:
            held.conn = conn

    task = asyncio.create_task(check())
    await asyncio.sleep(0)  # the check is now waiting on the close, which has not begun
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not conn.closed
    may_finish.set()
    await asyncio.wait_for(closing_started.wait(), 2)
    await closes_finished()
    assert conn.closed
