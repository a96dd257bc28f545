"""Content codings a health check decodes: gzip (every member), deflate (zlib-wrapped or raw,
told apart by the first two bytes however the body is split) and brotli, each capped.

A decoder takes the body as it arrives and returns what it decoded, never more than it is
allowed; the cap holds for the decoded bytes, so a small compressed body that expands to
gigabytes (a compression bomb) is stopped at the cap, not after it.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli

from ._messages import invalid

__all__ = ["ACCEPT_ENCODING", "Body", "Decoder", "InvalidCoding", "decoder_for"]

# What the probe asks for: exactly the codings it decodes.
ACCEPT_ENCODING = "gzip, deflate, br"


class InvalidCoding(Exception):
    """The body is not valid in its declared coding; the message says how."""


class Decoder(Protocol):
    def feed(self, data: bytes, limit: int) -> bytes:
        """Decode ``data``; at most ``limit`` bytes come out (the rest is not wanted)."""

    def finish(self) -> None:
        """The body has ended: raise InvalidCoding when it ended inside a stream."""


class _Gzip:
    """Every member of a gzip body, as gzip(1), curl and Go read it, not only the first."""

    __slots__ = ("_inner", "_seen")

    def __init__(self) -> None:
        self._inner = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._seen = False

    def feed(self, data: bytes, limit: int) -> bytes:
        out = bytearray()
        while data and len(out) < limit:
            self._seen = True
            try:
                out += self._inner.decompress(data, limit - len(out))
            except zlib.error as exc:
                raise InvalidCoding(f"body is not valid gzip ({_reason(exc)})") from None
            if self._inner.eof:
                data = self._inner.unused_data
                if data:
                    self._inner = zlib.decompressobj(16 + zlib.MAX_WBITS)  # the next member
            else:
                data = self._inner.unconsumed_tail  # only left when the limit was reached
        return bytes(out)

    def finish(self) -> None:
        if self._seen and not self._inner.eof:
            raise InvalidCoding("body ends inside its gzip stream")


class _Deflate:
    """zlib-wrapped deflate as RFC 9110 says, or raw deflate as some servers send it: the
    first two bytes decide, held back until both have come."""

    __slots__ = ("_held", "_inner")

    def __init__(self) -> None:
        self._inner: zlib._Decompress | None = None
        self._held = b""

    def feed(self, data: bytes, limit: int) -> bytes:
        if self._inner is None:
            data = self._held + data
            if len(data) < 2:
                self._held = data
                return b""
            self._held = b""
            wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        if self._inner.eof or limit <= 0:
            return b""  # bytes after the end of the stream are not part of the body
        try:
            return self._inner.decompress(data, limit)
        except zlib.error as exc:
            raise InvalidCoding(f"body is not valid deflate ({_reason(exc)})") from None

    def finish(self) -> None:
        if self._held or (self._inner is not None and not self._inner.eof):
            raise InvalidCoding("body ends inside its deflate stream")


class _Brotli:
    """brotli's own output limit is soft (it may return more), so the size is checked here."""

    __slots__ = ("_inner", "_seen")

    def __init__(self) -> None:
        self._inner = brotli.Decompressor()
        self._seen = False

    def feed(self, data: bytes, limit: int) -> bytes:
        if not data or limit <= 0:
            return b""
        self._seen = True
        try:
            out: bytes = self._inner.process(data, output_buffer_limit=limit)
        except brotli.error:
            raise InvalidCoding("body is not valid brotli") from None
        return out[:limit]

    def finish(self) -> None:
        if self._seen and not self._inner.is_finished():
            raise InvalidCoding("body ends inside its brotli stream")


_DECODERS: dict[str, type[_Gzip] | type[_Deflate] | type[_Brotli]] = {
    "gzip": _Gzip, "x-gzip": _Gzip, "deflate": _Deflate, "br": _Brotli,
}


def decoder_for(coding: str) -> Decoder | None:
    """The decoder for a Content-Encoding value; None for identity; InvalidCoding for one
    the probe did not ask for (or a stack of several, which no server sends unasked)."""
    name = coding.strip().lower()
    if name in ("", "identity"):
        return None
    cls = _DECODERS.get(name)
    if cls is None:
        raise InvalidCoding(f"unsupported content coding {name[:40]!r}")
    return cls()


def _reason(exc: zlib.error) -> str:
    text = str(exc)
    return text.split(": ", 1)[-1] if ": " in text else text


class Body:
    """Where a response's body goes: decoded, cut at the cap. A coding the probe did not ask for
    is kept as it came and said in ``undecodable``: a check that reads nothing of the body passes
    (as blackbox_exporter's does), one with a body assertion fails on it."""

    __slots__ = ("cap", "coding", "cut", "decoder", "out", "undecodable")

    def __init__(self, coding: str, cap: int) -> None:
        self.cap = cap
        self.coding = coding
        self.undecodable: str | None = None
        try:
            self.decoder: Decoder | None = decoder_for(self.coding)
        except InvalidCoding as exc:
            self.decoder, self.undecodable = None, str(exc)
        self.out = bytearray()
        self.cut = False

    def __call__(self, data: bytes) -> bool:
        if self.decoder is not None:
            try:
                data = self.decoder.feed(data, self.cap + 1 - len(self.out))
            except InvalidCoding as exc:
                raise invalid(str(exc)) from None
        self.out += data
        if len(self.out) > self.cap:
            self.cut = True
            del self.out[self.cap:]
            return False
        return True

    def finish(self) -> None:
        if self.decoder is not None and not self.cut:
            try:
                self.decoder.finish()
            except InvalidCoding as exc:
                raise invalid(str(exc)) from None
