"""Decode one OCI ``RunOutputData`` item into the object bytes the task wrote.

In this order:

1. ``isBase64``: the value is base64 (whitespace tolerated); otherwise it is text and its
   bytes are the value encoded in ``charset`` (UTF_8, or UTF_16 as big-endian without BOM);
2. ``compression``: GZIP (gzip members), DEFLATE (zlib-wrapped or raw, detected from the
   header), BZIP2, COMPRESS (Unix ``compress`` LZW ``.Z``, via the ``ncompress`` library);
3. ``charset`` for text types: UTF_8, or UTF_16 (a BOM decides the byte order; big-endian
   without one, as the Unicode standard and Java do).

``length`` is checked against the bytes after steps 1 and 2, before charset decoding: the
size of the object as the task wrote it. Anything that does not add up fails the task with
:class:`~airflow_task_runs.core.errors.OutputIntegrityError`; nothing is silently truncated.

The value arrives as text pieces (the streamed ``fetchOutput`` response hands them over
from a spool, a few MiB at a time); every step below works piece by piece, so memory stays
bounded whatever the size of the item. Only COMPRESS (LZW) holds a whole item: ncompress
has no incremental API.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_task_runs.oci.models import RunOutputData

#: text types and the extension of the object each becomes
TEXT_TYPES = {
    "TEXT_PLAIN": ".txt",
    "NOTEBOOK": ".ipynb",
    "TEXT_HTML": ".html",
    "IMAGE_SVG": ".svg",
    "APPLICATION_JSON": ".json",
}
BINARY_TYPES = {"IMAGE_PNG": ".png", "IMAGE_JPEG": ".jpg", "APPLICATION_PDF": ".pdf"}
#: items whose value is a path in the workspace, not content
REFERENCE_TYPES = frozenset({"FILE_PATH", "NOTEBOOK_PATH"})
CHARSETS = ("UTF_8", "UTF_16")
COMPRESSIONS = ("GZIP", "DEFLATE", "COMPRESS", "BZIP2")

_B64_CHARS_PER_CHUNK = 4 * 1024 * 1024  # 3 MiB of bytes per decoded chunk
_OUT_CHUNK = 1024 * 1024
_WHITESPACE = re.compile(r"\s")


def _integrity(message: str) -> Exception:
    from airflow_task_runs.core.errors import OutputIntegrityError

    return OutputIntegrityError(message)


def describe_item(index: int, item: RunOutputData) -> str:
    return f"output item {index} ({item.type or 'no type'})"


def is_text(item: RunOutputData) -> bool:
    """Text types, and unknown types sent as plain (not base64) strings."""
    kind = item.type or ""
    if kind in TEXT_TYPES:
        return True
    if kind in BINARY_TYPES:
        return False
    return not item.isBase64


def extension(item: RunOutputData) -> str:
    kind = item.type or ""
    return TEXT_TYPES.get(kind) or BINARY_TYPES.get(kind) or (".txt" if is_text(item) else ".bin")


def declared_length(index: int, item: RunOutputData) -> int | None:
    if item.length is None or item.length == "":
        return None
    try:
        length = int(item.length)
    except (TypeError, ValueError):
        raise _integrity(f"{describe_item(index, item)}: length {item.length!r} is not a number of bytes") from None
    if length < 0:
        raise _integrity(f"{describe_item(index, item)}: length {length} is negative")
    return length


def _charset(index: int, item: RunOutputData) -> str | None:
    if item.charset in (None, ""):
        return None
    if item.charset not in CHARSETS:
        raise _integrity(
            f"{describe_item(index, item)}: charset {item.charset!r} is not one this provider decodes "
            f"({', '.join(CHARSETS)}); refusing to guess"
        )
    return item.charset


class _TextValidator:
    """Incremental strict decoder for a charset; UTF_16 picks its byte order from a BOM."""

    def __init__(self, charset: str | None, what: str) -> None:
        import codecs

        self._what = what
        self._charset = charset or "UTF_8"
        self._head = b""
        self._decoder: codecs.IncrementalDecoder | None = None
        if self._charset == "UTF_8":
            self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.offset = 0

    def _start_utf16(self, final: bool) -> None:
        import codecs

        if len(self._head) < 2 and not final:
            return
        name = "utf-16" if self._head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-16-be"
        self._decoder = codecs.getincrementaldecoder(name)("strict")

    def feed(self, data: bytes, final: bool = False) -> str:
        if self._decoder is None:
            self._head += data
            self._start_utf16(final)
            if self._decoder is None:
                return ""
            data, self._head = self._head, b""
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            raise _integrity(
                f"{self._what}: the content is not valid {self._charset} "
                f"({exc.reason} near byte {self.offset + exc.start}); refusing to pass on mojibake"
            ) from None
        self.offset += len(data)
        return text


def value_pieces(value: str | None) -> Iterator[str]:
    """An in-memory value as pieces of at most ``_B64_CHARS_PER_CHUNK`` characters."""
    value = value or ""
    for start in range(0, len(value), _B64_CHARS_PER_CHUNK):
        yield value[start : start + _B64_CHARS_PER_CHUNK]


def _b64_chunks(pieces: Iterable[str], what: str) -> Iterator[bytes]:
    carry = ""
    position = 0
    for raw in pieces:
        piece = raw
        if _WHITESPACE.search(piece):
            piece = _WHITESPACE.sub("", piece)
        piece = carry + piece
        cut = len(piece) - len(piece) % 4
        piece, carry = piece[:cut], piece[cut:]
        if not piece:
            continue
        try:
            yield base64.b64decode(piece, validate=True)
        except (binascii.Error, ValueError):
            raise _integrity(
                f"{what}: isBase64 is true but the value is not valid base64 "
                f"(between characters {position} and {position + len(piece)})"
            ) from None
        position += len(piece)
    if carry:
        raise _integrity(f"{what}: the base64 value ends with {len(carry)} stray character(s) (truncated?)")


def _text_chunks(pieces: Iterable[str], charset: str | None, what: str) -> Iterator[bytes]:
    codec = "utf-16-be" if charset == "UTF_16" else "utf-8"
    for piece in pieces:
        try:
            yield piece.encode(codec)
        except UnicodeEncodeError as exc:
            raise _integrity(f"{what}: the value holds text that is not valid Unicode ({exc.reason})") from None


def _zlib_chunks(chunks: Iterable[bytes], what: str, name: str, wbits: int | None) -> Iterator[bytes]:
    """GZIP (every member) or DEFLATE; output bounded per step so a bomb cannot flood memory."""
    import zlib

    decompressor: Any = None
    seen_end = False
    for chunk in chunks:
        data = chunk
        while data:
            if decompressor is None:
                bits = wbits
                if bits is None:  # DEFLATE: zlib-wrapped (RFC 1950) or raw (RFC 1951)?
                    if len(data) < 2:
                        break
                    bits = 15 if (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1]) % 31 == 0 else -15
                decompressor = zlib.decompressobj(bits)
                seen_end = False
            try:
                out = decompressor.decompress(data, _OUT_CHUNK)
                while out:
                    yield out
                    out = decompressor.decompress(decompressor.unconsumed_tail, _OUT_CHUNK)
            except zlib.error as exc:
                raise _integrity(f"{what}: the {name} data is corrupt ({exc})") from None
            if decompressor.eof:
                seen_end = True
                data = decompressor.unused_data
                decompressor = None
                if wbits is None and data:
                    raise _integrity(f"{what}: {len(data)} byte(s) follow the end of the {name} stream")
            else:
                data = b""
    if decompressor is not None:
        tail = decompressor.flush()
        if tail:
            yield tail
        if not decompressor.eof:
            raise _integrity(f"{what}: the {name} data ends before its stream does (truncated)")
    elif not seen_end:
        raise _integrity(f"{what}: the {name} data is empty or truncated")


def _bz2_chunks(chunks: Iterable[bytes], what: str) -> Iterator[bytes]:
    import bz2

    decompressor: Any = None
    for chunk in chunks:
        data = chunk
        while data or (decompressor is not None and not decompressor.needs_input and not decompressor.eof):
            if decompressor is None:
                decompressor = bz2.BZ2Decompressor()
            try:
                out = decompressor.decompress(data, _OUT_CHUNK)
            except (OSError, EOFError) as exc:
                raise _integrity(f"{what}: the BZIP2 data is corrupt ({exc})") from None
            data = b""
            if out:
                yield out
            if decompressor.eof:
                data = decompressor.unused_data
                if data:
                    decompressor = None  # another stream follows
    if decompressor is None or not decompressor.eof:
        raise _integrity(f"{what}: the BZIP2 data ends before its stream does (truncated)")


def _lzw_chunks(chunks: Iterable[bytes], what: str) -> Iterator[bytes]:
    """Unix ``compress`` (.Z). ncompress decodes whole buffers: this holds the item in memory."""
    try:
        import ncompress  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        raise ImportError(
            "COMPRESS (.Z) outputs need the ncompress library: pip install 'airflow-task-runs[oci]'"
        ) from None
    data = b"".join(chunks)
    try:
        out = ncompress.decompress(data)
    except Exception as exc:
        raise _integrity(f"{what}: the COMPRESS (.Z) data is corrupt ({exc})") from None
    view = memoryview(out)
    for start in range(0, len(view), _OUT_CHUNK):
        yield bytes(view[start : start + _OUT_CHUNK])


def item_chunks(index: int, item: RunOutputData, pieces: Iterable[str] | None = None) -> Iterator[bytes]:
    """The item's object bytes (base64 and compression undone), streamed, length-checked at the end.

    ``pieces`` is the value as text pieces (from the streamed response); ``None`` reads ``item.value``.
    """
    what = describe_item(index, item)
    charset = _charset(index, item)
    if pieces is None:
        pieces = value_pieces(item.value)
    chunks: Iterable[bytes]
    if item.isBase64:
        chunks = _b64_chunks(pieces, what)
    elif item.compression:
        raise _integrity(f"{what}: compression {item.compression} needs a base64 value, but isBase64 is false")
    else:
        chunks = _text_chunks(pieces, charset, what)
    compression = item.compression or None
    if compression == "GZIP":
        chunks = _zlib_chunks(chunks, what, "GZIP", 31)
    elif compression == "DEFLATE":
        chunks = _zlib_chunks(chunks, what, "DEFLATE", None)
    elif compression == "BZIP2":
        chunks = _bz2_chunks(chunks, what)
    elif compression == "COMPRESS":
        chunks = _lzw_chunks(chunks, what)
    elif compression is not None:
        raise _integrity(
            f"{what}: compression {compression!r} is not one this provider decodes ({', '.join(COMPRESSIONS)})"
        )
    return _checked(
        chunks, declared_length(index, item), what, _TextValidator(charset, what) if is_text(item) else None
    )


def _checked(
    chunks: Iterable[bytes], declared: int | None, what: str, validator: _TextValidator | None
) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if declared is not None and total > declared:
            raise _integrity(f"{what}: more bytes than its declared length {declared} (over {total} so far)")
        if validator is not None:
            validator.feed(chunk)
        yield chunk
    if validator is not None:
        validator.feed(b"", final=True)
    if declared is not None and total != declared:
        raise _integrity(f"{what}: decoded to {total} bytes but its length says {declared}; the output is incomplete")


def decode_item(index: int, item: RunOutputData, pieces: Iterable[str] | None = None) -> bytes:
    """All of an item's object bytes (for XCom and tests)."""
    return b"".join(item_chunks(index, item, pieces))


def decode_text(index: int, item: RunOutputData, data: bytes) -> str:
    validator = _TextValidator(_charset(index, item), describe_item(index, item))
    return validator.feed(data) + validator.feed(b"", final=True)
