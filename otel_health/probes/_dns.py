"""Name resolution on threads of its own.

aiohttp resolves names with getaddrinfo on the event loop's default thread pool, the pool
that also renders /metrics. A slow DNS server would then hold every thread and stall checks
of other names and the scrape alike. This resolver keeps lookups on a small pool of their
own; aiohttp's DNS cache and its one-lookup-per-name rule stay in front of it.

The pool's threads are daemons: a lookup hung in getaddrinfo cannot be interrupted, and a
standard ThreadPoolExecutor would make the process wait for it at exit, past every timeout.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from aiohttp.resolver import ThreadedResolver

__all__ = ["DNS_THREADS", "DaemonPool", "OwnPoolResolver"]

DNS_THREADS = 32


class DaemonPool(Executor):
    """A fixed-size pool of daemon threads: work left hanging never holds up the exit."""

    def __init__(self, threads: int, name: str) -> None:
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._max, self._name = threads, name
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._closed:
            raise RuntimeError("the DNS pool is closed")
        future: Future[Any] = Future()
        self._work.put((future, functools.partial(fn, *args, **kwargs)))
        if not self._idle.acquire(blocking=False) and len(self._threads) < self._max:
            thread = threading.Thread(target=self._serve, name=f"{self._name}-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        for _ in self._threads:
            self._work.put(None)
        if wait:
            for thread in self._threads:
                thread.join()

    def _serve(self) -> None:
        while (item := self._work.get()) is not None:
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine
                future.set_exception(exc)
            self._idle.release()


class _PoolLoop:
    """The two loop methods ThreadedResolver calls, run on our pool instead of the default one."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: Executor) -> None:
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
        self._pool = DaemonPool(threads, "otel-health-dns")
        super().__init__(loop=_PoolLoop(asyncio.get_running_loop(), self._pool))  # type: ignore[arg-type]

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
