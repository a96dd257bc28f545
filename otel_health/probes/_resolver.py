"""Name resolution for the probes that connect by themselves: a cache, and the threads it runs on.

getaddrinfo blocks, so it runs on threads; not the event loop's default pool, the one that
also renders /metrics, where a slow DNS server would hold every thread and stall checks of
other names and the scrape alike, but a small pool of its own, with :class:`Names` (a short
cache, one lookup per name at a time) in front of it.

The pool's threads are daemons: a lookup hung in getaddrinfo cannot be interrupted, and a
standard ThreadPoolExecutor would make the process wait for it at exit, past every timeout.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import queue
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from ..config.values import idna_name
from ..errors import ErrorType, ProbeFailure

__all__ = ["DNS_THREADS", "DaemonPool", "Names", "ascii_host"]

DNS_THREADS = 32
_DNS_TTL = 10.0
_LITERALS: dict[str, int | None] = {}  # host -> address family, None for a name


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


class Names:
    """getaddrinfo on a pool of daemon threads, each name cached for 10 s and looked up once
    at a time however many checks ask for it (a slow DNS server costs those checks their
    timeouts and nothing else: the loop's default pool, and the scrape, never wait on it)."""

    def __init__(self, threads: int = DNS_THREADS, ttl: float = _DNS_TTL) -> None:
        self._pool = DaemonPool(threads, "otel-health-dns")
        self._ttl = ttl
        self._cache: dict[tuple[str, int], tuple[float, list[tuple[int, Any]]]] = {}
        self._pending: dict[tuple[str, int], asyncio.Future[list[tuple[int, Any]]]] = {}

    @staticmethod
    def literal(host: str) -> int | None:
        """The address family when ``host`` is an IP address, else None."""
        family = _LITERALS.get(host, -1)
        if family == -1:
            try:
                family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
            except ValueError:
                family = None
            if len(_LITERALS) >= 4096:
                _LITERALS.clear()
            _LITERALS[host] = family
        return family

    async def resolve(self, host: str, port: int) -> list[tuple[int, Any]]:
        key = (host, port)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        lookup = self._pending.get(key)
        if lookup is None:
            # The lookup is a task of its own: a check that times out leaves it running,
            # and its answer lands in the cache for the next check.
            lookup = asyncio.ensure_future(self._lookup(key))
            self._pending[key] = lookup
            lookup.add_done_callback(functools.partial(self._settled, key))
        return await asyncio.shield(lookup)

    def _settled(self, key: tuple[str, int], lookup: asyncio.Future[Any]) -> None:
        self._pending.pop(key, None)
        if not lookup.cancelled():
            lookup.exception()  # retrieved here: every check that asked may have timed out

    async def _lookup(self, key: tuple[str, int]) -> list[tuple[int, Any]]:
        loop = asyncio.get_running_loop()
        infos = await loop.run_in_executor(self._pool, socket.getaddrinfo, key[0], key[1], 0, socket.SOCK_STREAM)
        addresses = _unique([(info[0], info[4]) for info in infos])
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "no address")
        now = time.monotonic()
        if len(self._cache) >= 4096:
            self._expire(now)
        self._cache[key] = (now + self._ttl, addresses)
        return addresses

    def _expire(self, now: float) -> None:
        for key in [k for k, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[key]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _unique(addresses: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    seen: set[Any] = set()
    out = []
    for family, sockaddr in addresses:
        if sockaddr not in seen:
            seen.add(sockaddr)
            out.append((family, sockaddr))
    return out


def ascii_host(host: str) -> str:
    """The name as DNS and the Host header carry it (``config.values.idna_name``); a name that
    cannot be is a ``dns`` failure."""
    try:
        return idna_name(host)
    except ValueError as exc:
        raise ProbeFailure(ErrorType.DNS, str(exc)) from None
