"""A response body's ``Content-Encoding`` undone in bounded steps.

httpx's decoders inflate each network read whole: one 64 KiB read of a gzip bomb becomes
64 MiB in memory before any size cap can look at it, and with ``brotli`` or ``zstandard``
installed (other packages pull them in) httpx also accepts encodings whose ratio has no
practical bound. The sessions ask for ``gzip, deflate`` only, read the raw body and inflate it
here, never more than ``size`` bytes per step, so the caller's cap (``max_response_bytes``,
``max_output_bytes``) is checked before the next step is taken. An encoding the client did not
ask for is refused, named.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

import httpx

#: what the sessions accept; anything else in an answer's Content-Encoding is refused
ACCEPT_ENCODING = "gzip, deflate"
#: the largest piece one decoding step hands on
STEP = 64 * 1024


class Inflater:
    """One body's decoder: ``feed`` raw bytes, take pieces of at most ``size`` bytes each."""

    def __init__(self, content_encoding: str | None, size: int = STEP) -> None:
        encoding = (content_encoding or "").strip().lower()
        self.size = size
        self._raw_deflate_tried = False
        if encoding in ("", "identity"):
            self._z = None
        elif encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":  # zlib-wrapped, as the RFC says; raw deflate as servers often send
            self._z = zlib.decompressobj()
        else:
            raise httpx.DecodingError(
                f"the answer is Content-Encoding {content_encoding!r}, which this client does not accept "
                f"(it asks for {ACCEPT_ENCODING!r} or none): a proxy or server ignoring Accept-Encoding"
            )
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._z is None:
            if data:
                yield data
            return
        while data:
            try:
                out = self._z.decompress(data, self.size)
            except zlib.error as exc:
                if self._started or self._raw_deflate_tried or self._z.unused_data:
                    raise httpx.DecodingError(f"the answer's compressed body is damaged: {exc}") from None
                self._raw_deflate_tried = True  # "deflate" without its zlib wrapper
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            self._started = True
            data = self._z.unconsumed_tail
            if out:
                yield out

    def end(self) -> bytes:
        if self._z is None:
            return b""
        try:
            return self._z.flush()  # what is left once every input byte went in: under one step
        except zlib.error as exc:
            raise httpx.DecodingError(f"the answer's compressed body is cut short: {exc}") from None


def iter_decoded(response: httpx.Response, raw: Iterable[bytes] | None = None, size: int = STEP) -> Iterator[bytes]:
    """The decoded body of a streamed ``response`` in pieces of at most ``size`` bytes."""
    inflater = Inflater(response.headers.get("content-encoding"), size)
    for data in response.iter_raw() if raw is None else raw:
        yield from inflater.feed(data)
    if tail := inflater.end():
        yield tail


async def aiter_decoded(
    response: httpx.Response, raw: AsyncIterable[bytes] | None = None, size: int = STEP
) -> AsyncIterator[bytes]:
    """The async twin of :func:`iter_decoded`."""
    inflater = Inflater(response.headers.get("content-encoding"), size)
    async for data in response.aiter_raw() if raw is None else raw:
        for piece in inflater.feed(data):
            yield piece
    if tail := inflater.end():
        yield tail
