"""Connections kept between checks, for targets that ask for ``reuse_connection``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["Held", "Kept"]

C = TypeVar("C")


class Held(Generic[C]):
    """The connection of one check: the kept one, or None until the check opens its own."""

    __slots__ = ("conn",)

    def __init__(self, conn: C | None) -> None:
        self.conn = conn


class Kept(Generic[C]):
    """One connection per target, valid only for the options it was opened with.

    A check runs in a :meth:`session`: it takes the kept connection (so no other check can
    use it meanwhile), or opens one, and the connection is put back only after a successful
    check of a target that keeps it; any failure, or a target that does not keep it, closes
    it. Changed options or a target removed by a reload close it too: nothing is left open
    behind the collector's back.
    """

    def __init__(self, close: Callable[[C], Awaitable[None]], *, usable: Callable[[C], bool] = lambda _: True,
                 close_after_failure: Callable[[C], Awaitable[None]] | None = None) -> None:
        self._close = close
        self._usable = usable
        # A failed check may have left work on the server (a query cut short by the timeout).
        self._close_failed = close_after_failure or close
        self._held: dict[tuple[str, str], tuple[Any, C]] = {}

    @contextlib.asynccontextmanager
    async def session(self, key: tuple[str, str], options: Any, *, keep: bool) -> AsyncIterator[Held[C]]:
        """``held.conn`` is the kept connection (when ``keep``) or None: the check then
        opens one and sets ``held.conn`` before using it, so it is closed whatever happens."""
        held: Held[C] = Held(await self._take(key, options) if keep else None)
        ok = False
        try:
            yield held
            ok = True
        finally:
            if held.conn is not None:
                if ok and keep:
                    self._held[key] = (options, held.conn)
                elif ok:
                    await self._close(held.conn)
                else:
                    await self._close_failed(held.conn)

    async def _take(self, key: tuple[str, str], options: Any) -> C | None:
        found = self._held.pop(key, None)
        if found is None:
            return None
        if found[0] != options or not self._usable(found[1]):
            await self._close(found[1])
            return None
        return found[1]

    async def retain(self, live: set[tuple[str, str]]) -> None:
        for key in [k for k in self._held if k not in live]:
            await self._close(self._held.pop(key)[1])

    async def close(self) -> None:
        held, self._held = self._held, {}
        for _, conn in held.values():
            await self._close(conn)
