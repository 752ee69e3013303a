"""Read a ``fetchOutput`` response incrementally: bounded memory whatever the output's size.

The answer is one JSON document whose ``data[].value`` strings carry the objects (base64,
often tens of MiB). :class:`ValueSplitter` walks the raw bytes with a small structural
scanner; each ``data[i].value`` string is unescaped straight into a :class:`SpooledValue`
(memory up to 1 MiB, a temporary file beyond) and replaced by ``null`` in what it passes on
to ijson, which parses and validates the rest of the document (small) incrementally.

The item's metadata (``isBase64``, ``compression``, ``charset``, ``length``) may come after
its ``value`` in the object, so values are spooled, not decoded, while the response is read;
the operator decodes them afterwards, piece by piece. The whole document is read and
checked before anything is written: a truncated or garbled response leaves nothing behind.
"""

from __future__ import annotations

import codecs
import re
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow_task_runs.core.bounded_json import MAX_JSON_DEPTH

if TYPE_CHECKING:
    from airflow_task_runs.oci.models import TaskRunOutput

#: a value stays in memory up to this size, then moves to a temporary file
SPOOL_IN_MEMORY = 1024 * 1024
PIECE_BYTES = 1024 * 1024

_STRUCTURAL = re.compile(rb'[{}\[\],:"]')
_STRING_STOP = re.compile(rb'["\\]')
_CONTROL = re.compile(rb"[\x00-\x1f]")
_HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")
_SIMPLE_ESCAPES = {
    ord('"'): b'"',
    ord("\\"): b"\\",
    ord("/"): b"/",
    ord("b"): b"\b",
    ord("f"): b"\f",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
}
_KEY_LIMIT = 64  # only "data" and "value" matter; longer keys are just "something else"


class MalformedJson(ValueError):
    """The response is not the JSON document it claims to be (the caller maps it to an API error)."""


class DocumentTooLarge(MalformedJson):
    """The JSON around the output values (what ijson parses in memory) is over its limit."""


class JsonNestedTooDeep(MalformedJson):
    """The response nests deeper than :data:`~airflow_task_runs.core.bounded_json.MAX_JSON_DEPTH`.

    Checked by the scanner as bytes arrive, before ijson (whose memory grows with depth) sees them.
    """


class SpooledValue:
    """One ``data[i].value`` string, unescaped, as UTF-8 bytes in a spooled temporary file."""

    def __init__(self) -> None:
        self._file: Any = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
        self.size = 0

    def write(self, data: bytes) -> None:
        if data:
            self._file.write(data)
            self.size += len(data)

    def pieces(self) -> Iterator[str]:
        """The value as text pieces of about ``PIECE_BYTES`` (validated UTF-8 when spooled)."""
        self._file.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        while chunk := self._file.read(PIECE_BYTES):
            yield decoder.decode(chunk)
        tail = decoder.decode(b"", True)
        if tail:
            yield tail

    def text(self) -> str:
        return "".join(self.pieces())

    def close(self) -> None:
        self._file.close()


class _Frame:
    __slots__ = ("index", "is_object", "key", "want_key")

    def __init__(self, is_object: bool) -> None:
        self.is_object = is_object
        self.want_key = is_object
        self.key: str | None = None
        self.index = 0


class ValueSplitter:
    """Feed raw response bytes; get back the same JSON with ``data[].value`` strings as ``null``.

    The diverted strings go to :class:`SpooledValue` objects, in :attr:`values` by item index.
    Escapes are decoded exactly (``\\uXXXX`` with surrogate pairs); raw control characters and
    invalid UTF-8 inside a diverted string are rejected, as a JSON parser would.
    """

    def __init__(self) -> None:
        self.values: dict[int, SpooledValue] = {}
        self._stack: list[_Frame] = []
        self._mode = 0  # 0 structure, 1 passed-on string, 2 diverted string
        self._escaped = False  # mode 1: the last byte was a backslash
        self._key: bytearray | None = None  # mode 1: collecting an object key
        self._pending = b""  # mode 2: an escape cut by a chunk boundary
        self._spool: SpooledValue | None = None
        self._spool_index = 0
        self._utf8: codecs.IncrementalDecoder | None = None

    # -- feeding -----------------------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        pos = 0
        end = len(data)
        if self._mode == 2 and self._pending:
            data, self._pending = self._pending + data, b""
            end = len(data)
        while pos < end:
            if self._mode == 2:
                pos = self._divert(data, pos, out)
            elif self._mode == 1:
                pos = self._pass_string(data, pos, out)
            else:
                pos = self._structure(data, pos, out)
        return b"".join(out)

    def finish(self) -> None:
        if self._mode == 2:
            raise MalformedJson(f"the response ends inside the value of data[{self._spool_index}] (truncated)")

    def close(self) -> None:
        for value in self.values.values():
            value.close()
        self.values.clear()

    # -- outside strings ---------------------------------------------------------------------
    def _structure(self, data: bytes, pos: int, out: list[bytes]) -> int:
        match = _STRUCTURAL.search(data, pos)
        if match is None:
            out.append(data[pos:])
            return len(data)
        at = match.start()
        char = data[at]
        top = self._stack[-1] if self._stack else None
        if char == 0x22:  # '"'
            if top is not None and top.is_object and top.want_key:
                self._key = bytearray()
            elif self._is_data_value(top):
                out.append(data[pos:at])
                out.append(b"null")
                self._begin_value()
                return at + 1
            else:
                self._key = None
            self._mode, self._escaped = 1, False
        elif char in (0x7B, 0x5B):  # '{' '['
            if len(self._stack) >= MAX_JSON_DEPTH:
                raise JsonNestedTooDeep(
                    f"the response nests deeper than {MAX_JSON_DEPTH} levels (refused before parsing)"
                )
            self._stack.append(_Frame(char == 0x7B))
        elif char in (0x7D, 0x5D):  # '}' ']'
            if self._stack:
                self._stack.pop()
        elif char == 0x2C:  # ','
            if top is not None:
                if top.is_object:
                    top.want_key, top.key = True, None
                else:
                    top.index += 1
        elif top is not None and top.is_object:  # ':'
            top.want_key = False
        out.append(data[pos : at + 1])
        return at + 1

    def _is_data_value(self, top: _Frame | None) -> bool:
        stack = self._stack
        return (
            top is not None
            and len(stack) == 3
            and top.is_object
            and not top.want_key
            and top.key == "value"
            and stack[0].is_object
            and stack[0].key == "data"
            and not stack[1].is_object
        )

    # -- strings passed on to ijson ------------------------------------------------------------
    def _pass_string(self, data: bytes, pos: int, out: list[bytes]) -> int:
        scan = pos
        if self._escaped:  # the byte after a backslash that ended the last chunk
            self._escaped = False
            self._collect_key(data[scan : scan + 1])
            scan += 1
        while True:
            match = _STRING_STOP.search(data, scan)
            if match is None:
                self._collect_key(data[scan:])
                out.append(data[pos:])
                return len(data)
            at = match.start()
            self._collect_key(data[scan : at + 1])
            if data[at] == 0x22:
                out.append(data[pos : at + 1])
                self._mode = 0
                self._end_key()
                return at + 1
            if at + 1 >= len(data):
                self._escaped = True
                out.append(data[pos:])
                return len(data)
            self._collect_key(data[at + 1 : at + 2])
            scan = at + 2

    def _collect_key(self, raw: bytes) -> None:
        if self._key is not None and len(self._key) <= _KEY_LIMIT:
            self._key += raw[: _KEY_LIMIT + 1 - len(self._key)]

    def _end_key(self) -> None:
        raw, self._key = self._key, None
        if raw is None or not self._stack:
            return
        text: str | None = None
        if len(raw) <= _KEY_LIMIT:
            import json

            try:
                text = json.loads(b'"' + bytes(raw))  # raw ends with the closing quote
            except ValueError:
                text = None  # ijson reports the broken key
        self._stack[-1].key = text

    # -- a data[].value string, into its spool -----------------------------------------------------
    def _begin_value(self) -> None:
        index = self._stack[1].index
        old = self.values.pop(index, None)
        if old is not None:  # a repeated key: the last one wins, as with json.loads
            old.close()
        self._spool = self.values[index] = SpooledValue()
        self._spool_index = index
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        self._mode = 2

    def _divert(self, data: bytes, pos: int, out: list[bytes]) -> int:
        quote = data.find(b'"', pos)
        region_end = len(data) if quote < 0 else quote
        region = data[pos:region_end]
        backslashes = region.count(b"\\")
        if backslashes == 0 or (backslashes == region.count(b"\\/") and not region.endswith(b"\\")):
            # the common case: plain text, or base64 with "\/" escapes only
            if backslashes:
                region = region.replace(b"\\/", b"/")
            self._store(region)
            if quote < 0:
                return len(data)
            self._end_value()
            return quote + 1
        # escapes other than "\/": walk them one by one
        scan = pos
        while True:
            match = _STRING_STOP.search(data, scan)
            if match is None:
                self._store(data[scan:])
                return len(data)
            at = match.start()
            self._store(data[scan:at])
            if data[at] == 0x22:
                self._end_value()
                return at + 1
            step = self._escape(data, at)
            if step == 0:  # cut by the chunk boundary: wait for more
                self._pending = data[at:]
                return len(data)
            scan = at + step

    def _escape(self, data: bytes, at: int) -> int:
        """Decode the escape at ``data[at]`` into the spool; its length, or 0 if incomplete."""
        if at + 1 >= len(data):
            return 0
        kind = data[at + 1]
        simple = _SIMPLE_ESCAPES.get(kind)
        if simple is not None:
            self._store(simple, raw=False)
            return 2
        if kind != 0x75:  # 'u'
            raise self._bad(f"an invalid escape \\{chr(kind)!r}")
        if at + 6 > len(data):
            return 0
        unit = self._hex4(data[at + 2 : at + 6])
        if 0xD800 <= unit <= 0xDBFF:  # must be followed by a low surrogate escape
            follow = data[at + 6 : at + 12]
            if len(follow) < 6 and b"\\u".startswith(follow[:2]):
                return 0
            if follow[:2] != b"\\u":
                self._lone(unit)
            low = self._hex4(follow[2:6])
            if not 0xDC00 <= low <= 0xDFFF:
                self._lone(unit)
            self._store(chr(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)).encode(), raw=False)
            return 12
        if 0xDC00 <= unit <= 0xDFFF:
            self._lone(unit)
        self._store(chr(unit).encode(), raw=False)
        return 6

    def _hex4(self, raw: bytes) -> int:
        if not _HEX4.fullmatch(raw):
            raise self._bad(f"an invalid \\u escape {raw!r}")
        return int(raw, 16)

    def _lone(self, unit: int) -> int:
        raise self._bad(f"an unpaired surrogate \\u{unit:04x} (not valid Unicode)")

    def _bad(self, problem: str) -> MalformedJson:
        return MalformedJson(f"the value of data[{self._spool_index}] has {problem}")

    def _store(self, data: bytes, raw: bool = True) -> None:
        """Spool bytes of the string: ``raw`` ones as sent (checked), or what an escape stands for."""
        if not data:
            return
        assert self._spool is not None and self._utf8 is not None
        if raw and _CONTROL.search(data):
            raise self._bad("a raw control character (invalid JSON)")
        if not (data.isascii() and not self._utf8.getstate()[0]):
            try:
                self._utf8.decode(data)
            except UnicodeDecodeError:
                raise self._bad("bytes that are not UTF-8") from None
        self._spool.write(data)

    def _end_value(self) -> None:
        assert self._utf8 is not None
        try:
            self._utf8.decode(b"", True)
        except UnicodeDecodeError:
            raise self._bad("bytes that are not UTF-8") from None
        self._spool = self._utf8 = None
        self._mode = 0


class StreamedOutput:
    """A parsed ``TaskRunOutput`` whose items' values wait in spools (``item.value`` is None)."""

    def __init__(self, output: TaskRunOutput, values: dict[int, SpooledValue]) -> None:
        self.output = output
        self._values = values

    def value_size(self, index: int) -> int:
        value = self._values.get(index)
        return value.size if value is not None else len((self.output.data[index].value or "").encode())

    def pieces(self, index: int) -> Iterator[str]:
        """Item ``index``'s value as text pieces (whatever the item's size, a few MiB at a time)."""
        value = self._values.get(index)
        if value is not None:
            yield from value.pieces()
        elif self.output.data[index].value:
            yield self.output.data[index].value or ""

    def text(self, index: int) -> str | None:
        value = self._values.get(index)
        return value.text() if value is not None else self.output.data[index].value

    def release(self, index: int) -> None:
        value = self._values.pop(index, None)
        if value is not None:
            value.close()

    def materialize(self) -> TaskRunOutput:
        """Put every value back into its item (whole, in memory) and free the spools."""
        for index, item in enumerate(self.output.data):
            if index in self._values:
                item.value = self.text(index)
        self.close()
        return self.output

    def close(self) -> None:
        for value in self._values.values():
            value.close()
        self._values.clear()

    def __enter__(self) -> StreamedOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: most bytes of the document outside ``data[].value`` (parsed in memory by ijson)
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024


def parse(
    chunks: Iterator[bytes], *, max_bytes: int | None = None, max_document_bytes: int = MAX_DOCUMENT_BYTES
) -> tuple[Any, dict[int, SpooledValue], int]:
    """(the document with data[].value as None, the spooled values by item index, bytes read).

    Raises :class:`MalformedJson` for a broken document (:class:`JsonNestedTooDeep` past
    ``MAX_JSON_DEPTH``, :class:`DocumentTooLarge` when the JSON around the values, which is
    held in memory, passes ``max_document_bytes``); stops at ``max_bytes`` with
    :class:`BodyTooLarge`. Values themselves go to spools and are bounded only by ``max_bytes``.
    """
    import ijson  # type: ignore[import-untyped,unused-ignore]

    splitter = ValueSplitter()
    documents: list[Any] = ijson.sendable_list()
    coroutine = ijson.items_coro(documents, "", use_float=True)
    total = structure = 0
    try:
        try:
            for chunk in chunks:
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise BodyTooLarge(total)
                passed = splitter.feed(chunk)
                if passed:
                    structure += len(passed)
                    if structure > max_document_bytes:
                        raise DocumentTooLarge(
                            f"the response's JSON outside data[].value is over {max_document_bytes} bytes "
                            "(a fetchOutput document is items' values plus a few KiB): refused"
                        )
                    coroutine.send(passed)
            splitter.finish()
            coroutine.close()
        except ijson.JSONError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MalformedJson(f"the response is not valid JSON ({first}) after {total} bytes") from None
        if len(documents) != 1:
            raise MalformedJson(f"the response holds {len(documents)} JSON documents, not one")
    except BaseException:
        splitter.close()
        raise
    return documents[0], splitter.values, total


class BodyTooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"over {size} bytes")
