"""Name resolution on threads of its own.

aiohttp resolves names with getaddrinfo on the event loop's default thread pool, the pool
that also renders /metrics. A slow DNS server would then hold every thread and stall checks
of other names and the scrape alike. This resolver keeps lookups on a small pool of their
own; aiohttp's DNS cache and its one-lookup-per-name rule stay in front of it.
"""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp.resolver import ThreadedResolver

__all__ = ["DNS_THREADS", "OwnPoolResolver"]

DNS_THREADS = 32


class _PoolLoop:
    """The two loop methods ThreadedResolver calls, run on our pool instead of the default one."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor) -> None:
        self._loop = loop
        self._pool = pool

    async def getaddrinfo(self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0,
                          flags: int = 0) -> Any:
        return await self._loop.run_in_executor(self._pool, socket.getaddrinfo, host, port, family, type, proto,
                                                flags)

    async def getnameinfo(self, sockaddr: Any, flags: int = 0) -> Any:
        return await self._loop.run_in_executor(self._pool, socket.getnameinfo, sockaddr, flags)


class OwnPoolResolver(ThreadedResolver):
    def __init__(self, threads: int = DNS_THREADS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="otel-health-dns")
        super().__init__(loop=_PoolLoop(asyncio.get_running_loop(), self._pool))  # type: ignore[arg-type]

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
