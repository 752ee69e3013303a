"""A response body's ``Content-Encoding`` undone in bounded steps.

httpx's decoders inflate each network read whole: one 64 KiB read of a gzip bomb becomes
64 MiB in memory before any size cap can look at it, and with ``brotli`` or ``zstandard``
installed (other packages pull them in) httpx also accepts encodings whose ratio has no
practical bound. The sessions ask for ``gzip, deflate`` only, read the raw body and inflate it
here, never more than ``size`` bytes per step, so the caller's cap (``max_response_bytes``,
``max_output_bytes``) is checked before the next step is taken.

Checked on the way, as a careful reader would: the gzip magic and every member's CRC and length
(zlib checks them; a body of several gzip members is read whole), ``deflate`` with or without
its zlib wrapper (told apart by the header, not by a failed first try), a body cut before its
compressed stream ended, bytes after its end (refused: zlib would otherwise keep them all), and
compressed input that inflates to (almost) nothing, which no decoded-size cap would count.
An encoding the client did not ask for is refused, named, as is deflate that needs a preset dictionary.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

import httpx

#: what the sessions accept; anything else in an answer's Content-Encoding is refused
ACCEPT_ENCODING = "gzip, deflate"
#: the largest piece one decoding step hands on
STEP = 64 * 1024
_GZIP = zlib.MAX_WBITS | 16
_GZIP_MAGIC = b"\x1f\x8b"
#: compressed input allowed per decoded byte, and over it (see ``Inflater._count``)
_RATIO, _SLACK = 2, 64 * 1024
#: compressed bytes zlib is given at a gzip member's first step, from a body's second member on
_PIECE = 1024
#: ... doubling at each further step of that member, up to this
_MAX_PIECE = STEP


class UndecodableBody(httpx.DecodingError):
    """The body could not be decoded; ``retryable`` says whether asking again may help (a body
    cut short may come whole next time; an encoding refused or trailing junk will not)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Inflater:
    """One body's decoder: ``feed`` raw bytes, take pieces of at most ``size`` bytes each; ``end``."""

    def __init__(self, content_encoding: str | None, size: int = STEP) -> None:
        encoding = (content_encoding or "").strip().lower()
        self.size = size
        self._z: zlib._Decompress | None = None
        self._held = b""  # the first bytes of a stream, until its header says how to read it
        self._members = 0  # compressed streams begun
        self._raw = 0  # compressed bytes zlib consumed
        self._out = 0  # decoded bytes handed on
        self._piece = _PIECE  # compressed bytes for zlib's next step (after the first member)
        if encoding in ("", "identity"):
            self._kind: str | None = None
        elif encoding in ("gzip", "x-gzip"):
            self._kind = "gzip"
        elif encoding == "deflate":
            self._kind = "deflate"
        else:
            shown = content_encoding if len(content_encoding or "") <= 60 else f"{(content_encoding or '')[:60]}..."
            raise UndecodableBody(
                f"the answer is Content-Encoding {shown!r}, which this client does not accept "
                f"(it asks for {ACCEPT_ENCODING!r} or none): a proxy or server ignoring Accept-Encoding",
                retryable=False,
            )

    def _begin(self) -> zlib._Decompress | None:
        """The next stream's decompressor, once two bytes of it are held (None: wait for more)."""
        if len(self._held) < 2:
            return None
        if self._kind == "gzip":
            if not self._held.startswith(_GZIP_MAGIC):
                raise (
                    self._junk()
                    if self._members
                    else UndecodableBody("the answer says Content-Encoding gzip but is not gzip data", retryable=False)
                )
            z = zlib.decompressobj(_GZIP)
        elif self._members:  # deflate is one stream
            raise self._junk()
        else:  # RFC 9110 deflate is zlib-wrapped; many servers send it raw: the header tells
            cmf, flg = self._held[0], self._held[1]
            wrapped = cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0
            if wrapped and flg & 0x20:  # FDICT
                raise UndecodableBody(
                    "the answer's deflate body needs a preset dictionary (zlib FDICT), which HTTP has no way "
                    "to name: a server fault",
                    retryable=False,
                )
            z = zlib.decompressobj() if wrapped else zlib.decompressobj(-zlib.MAX_WBITS)
        self._members += 1
        return z

    def _count(self, raw: int, out: int) -> None:
        """Refuse compressed input that inflates to (almost) nothing: no cap counts it otherwise.

        Empty gzip members (20 bytes each), empty deflate blocks or an endless gzip file name
        decode to nothing, so a decoded-size cap never trips and the read never ends. An honest
        encoder sends little more than it decodes to: deflate falls back to stored blocks (5 bytes
        per 64 KiB), a gzip member adds 18 bytes and its header's name or extra field, a streaming
        encoder ~5 bytes per flush. Twice the decoded size plus 64 KiB is well above all of them
        (a flush every 8 bytes of random data, a header field of tens of KiB) and keeps the network bytes
        a body can cost within a fixed multiple of the caller's decoded cap. Refused, though valid:
        a gzip extra field at its 64 KiB maximum around a small body (no server sends one).
        """
        self._raw += raw
        self._out += out
        if self._raw > _RATIO * self._out + _SLACK:
            raise UndecodableBody(
                f"{self._raw} bytes of the answer's compressed body inflated to only {self._out} bytes, "
                "far more input than any encoder sends (empty gzip members or deflate blocks?): "
                "a proxy or server fault",
                retryable=False,
            )

    @staticmethod
    def _junk() -> UndecodableBody:
        return UndecodableBody("the answer has data after the end of its compressed body", retryable=False)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._kind is None:
            if data:
                yield data
            return
        view = memoryview(data)  # taken by moving along it: the rest of a read is never copied
        while view:
            if self._z is None:
                if len(self._held) + len(view) < 2:  # a stream's first byte: its header needs two
                    self._held += bytes(view)
                    return
                held = self._held
                self._held += bytes(view[: 2 - len(held)])
                self._z = self._begin()
                self._held = b""
                if held:  # the byte held back from the last read opens this stream
                    used, out = self._inflate(memoryview(held))  # one byte cannot end it
                    if out:
                        yield out
            used, out = self._inflate(view)
            view = view[used:]
            if out:
                yield out

    def _inflate(self, view: memoryview) -> tuple[int, bytes]:
        """One zlib step from the start of ``view``: (bytes it took, bytes it decoded).

        zlib hands back what it did not take as a copy. After the first stream, a read may hold
        thousands of tiny gzip members, and copying the rest of the read at each one's end is
        quadratic. From the second stream on zlib gets ``_PIECE`` bytes, then twice as many at
        each step within the same stream (up to ``_MAX_PIECE``): a tiny member's end copies at
        most a KiB, a large member is inflated in large steps.
        """
        z = self._z
        assert z is not None
        piece = view if self._members == 1 else view[: self._piece]
        try:
            out = z.decompress(piece, self.size)
        except zlib.error as exc:
            raise UndecodableBody(f"the answer's compressed body is damaged ({exc})", retryable=True) from None
        used = len(piece) - len(z.unused_data if z.eof else z.unconsumed_tail)
        self._count(used, len(out))
        if z.eof:  # this stream ended: what follows may only be another gzip member
            self._z = None
            self._piece = _PIECE
        else:  # a large member: pieces double, so its copies stay in proportion to it
            self._piece = min(self._piece * 2, _MAX_PIECE)
        return used, out

    def end(self) -> bytes:
        """What is left once the body is read; a compressed stream that did not end is refused."""
        if self._kind is None:
            return b""
        if self._z is None:
            if not self._held:
                return b""  # every stream ended, or nothing came at all (HEAD, 204, 304)
            if self._members and (self._kind == "deflate" or not _GZIP_MAGIC.startswith(self._held)):
                raise self._junk()  # what a gzip member cannot start with; deflate is one stream
            raise UndecodableBody("the answer's compressed body is cut short", retryable=True)
        try:
            tail = self._z.flush()  # what zlib still holds: under one step
        except zlib.error as exc:
            raise UndecodableBody(f"the answer's compressed body is damaged ({exc})", retryable=True) from None
        if not self._z.eof:
            raise UndecodableBody("the answer's compressed body is cut short", retryable=True)
        return tail


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
