"""Connections kept between checks, for targets that ask for ``reuse_connection``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["Kept"]

C = TypeVar("C")


class Kept(Generic[C]):
    """One connection per target, valid only for the options it was opened with.

    A check ``take``s the connection (so no other check can use it meanwhile) and ``put``s it
    back only after a successful check; any failure closes it. Changed options or a target
    removed by a reload close it too: nothing is left open behind the collector's back.
    """

    def __init__(self, close: Callable[[C], Awaitable[None]]) -> None:
        self._close = close
        self._held: dict[tuple[str, str], tuple[Any, C]] = {}

    async def take(self, key: tuple[str, str], options: Any) -> C | None:
        held = self._held.pop(key, None)
        if held is None:
            return None
        if held[0] != options:
            await self._close(held[1])
            return None
        return held[1]

    def put(self, key: tuple[str, str], options: Any, conn: C) -> None:
        self._held[key] = (options, conn)

    async def retain(self, live: set[tuple[str, str]]) -> None:
        for key in [k for k in self._held if k not in live]:
            await self._close(self._held.pop(key)[1])

    async def close(self) -> None:
        held, self._held = self._held, {}
        for _, conn in held.values():
            await self._close(conn)
