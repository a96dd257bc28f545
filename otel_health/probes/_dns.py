"""The thread pool name resolution runs on.

getaddrinfo blocks, so it runs on threads; not the event loop's default pool, the one that
also renders /metrics, where a slow DNS server would hold every thread and stall checks of
other names and the scrape alike, but a small pool of its own (``_http1.Names`` keeps its
cache and its one-lookup-per-name rule in front of it).

The pool's threads are daemons: a lookup hung in getaddrinfo cannot be interrupted, and a
standard ThreadPoolExecutor would make the process wait for it at exit, past every timeout.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

__all__ = ["DNS_THREADS", "DaemonPool"]

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
