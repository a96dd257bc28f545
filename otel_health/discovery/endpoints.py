"""The collector's side of discovery: noticing change. The stamps of ``file_sd`` files (a
change means a reload) and ``http_sd`` endpoints, polled with conditional requests, bounded
in time and size."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
from typing import Any

from .groups import matched_files
from .model import MAX_AGE_CAP, Answer, HttpSd, Source

__all__ = ["Endpoint", "file_stamps"]


def file_stamps(sources: tuple[Source, ...]) -> tuple[tuple[str, int, int], ...]:
    """What the files of every ``file_sd`` source look like now (path, mtime, size): a change
    in it means a reload. Run it off the loop: globs over large folders take time."""
    out = []
    for source in sources:
        if source.file_sd is None:
            continue
        for path in matched_files(source.file_sd):
            try:
                st = os.stat(path)
                out.append((path, st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((path, -1, -1))
    return tuple(out)


class Endpoint:
    """One ``http_sd`` endpoint, polled: ``fetch()`` returns a new :class:`Answer` when there is
    news (a new body, or a new problem), else None; ``delay`` says when to poll next.

    Conditional requests (``If-None-Match`` with the last ETag, ``If-Modified-Since`` with the
    last ``Last-Modified``): a 304 is no news. ``Cache-Control: max-age`` longer than the
    refresh interval lengthens the wait (up to an hour). The body is read up to ``max_bytes``
    and must be ``application/json``, as Prometheus requires.
    """

    def __init__(self, source: Source, user_agent: str) -> None:
        assert source.http_sd is not None
        self.source = source
        self.sd = source.http_sd
        self._user_agent = user_agent
        self._etag: str | None = None
        self._modified: str | None = None
        self._body: bytes | None = None
        self._problem: str | None = None
        self.delay = self.sd.refresh
        self.failed = False  # whether the last poll failed
        self._context: ssl.SSLContext | None = None
        self._unusable: str | None = None  # why no request can be made (a CA file that is not one)
        try:
            self._context = self._ssl()
        except (OSError, ssl.SSLError) as exc:
            self._unusable = f"ca_file cannot be used ({type(exc).__name__}: {str(exc)[:120]})"

    def _ssl(self) -> ssl.SSLContext:
        """Verified TLS (unless ``tls_verify: false``) for an https URL, and for an http one
        that redirects to https."""
        context = ssl.create_default_context(cafile=str(self.sd.ca_file) if self.sd.ca_file else None)
        if not self.sd.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def fetch(self, session: Any) -> Answer | None:
        self.delay = self.sd.refresh
        body, problem = (None, self._unusable) if self._unusable is not None else await self._get(session)
        self.failed = problem is not None
        if problem is not None:
            self._etag = self._modified = None  # the next good answer is read whole
            if problem == self._problem:
                return None
            self._problem = problem
            return Answer(None, problem)
        if body == self._body and self._problem is None:
            return None
        self._body, self._problem = body, None
        return Answer(body)

    async def _get(self, session: Any) -> tuple[bytes | None, str | None]:
        """(body, None), or (None, why not): one conditional request, bounded in time and size."""
        import aiohttp

        headers = {"Accept": "application/json", "User-Agent": self._user_agent,
                   "X-Prometheus-Refresh-Interval-Seconds": f"{self.sd.refresh:g}"}
        if self._etag:
            headers["If-None-Match"] = self._etag
        if self._modified:
            headers["If-Modified-Since"] = self._modified
        if self.sd.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.sd.bearer_token.reveal()}"
        too_large = f"answer larger than max_bytes ({self.sd.max_bytes})"
        try:
            async with asyncio.timeout(self.sd.timeout):
                async with session.get(self.sd.url, headers=headers, ssl=self._context, allow_redirects=True,
                                       max_redirects=3) as response:
                    self.delay = self._next_delay(response.headers.get("Cache-Control", ""))
                    if response.status == 304 and self._body is not None:
                        return self._body, None
                    if response.status != 200:
                        return None, f"answered HTTP {response.status}"
                    if response.content_type != "application/json":
                        return None, f"answered {response.content_type or 'no Content-Type'}, not application/json"
                    if (response.content_length or 0) > self.sd.max_bytes:
                        return None, too_large
                    chunks, size = [], 0
                    async for chunk in response.content.iter_any():
                        size += len(chunk)
                        if size > self.sd.max_bytes:
                            return None, too_large
                        chunks.append(chunk)
                    self._etag = response.headers.get("ETag")
                    self._modified = response.headers.get("Last-Modified")
                    return b"".join(chunks), None
        except TimeoutError:
            return None, f"no answer within {self.sd.timeout:g}s"
        except (aiohttp.ClientError, OSError, ssl.SSLError, ValueError) as exc:
            return None, f"cannot be fetched ({type(exc).__name__}: {_scrub(str(exc), self.sd)})"

    def _next_delay(self, cache_control: str) -> float:
        match = re.search(r"(?:^|,)\s*max-age\s*=\s*(\d+)", cache_control, re.IGNORECASE)
        if match is None or "no-cache" in cache_control.lower():
            return self.sd.refresh
        return max(self.sd.refresh, min(float(match.group(1)), MAX_AGE_CAP))


def _scrub(text: str, sd: HttpSd) -> str:
    if sd.bearer_token is not None:
        text = text.replace(sd.bearer_token.reveal(), "<redacted>")
    return text[:200]
