"""Compressed answers: inflated in bounded steps, over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import tracemalloc
import zlib

import httpx
import pytest

from airflow_task_runs.core.content_encoding import ACCEPT_ENCODING, STEP, Inflater, UndecodableBody
from airflow_task_runs.core.errors import ApiError
from airflow_task_runs.ncp.hooks import NclueHook

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """96 MiB of valid JSON in ~100 KiB of gzip: one network read of it inflates to ~64 MiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    piece = b"a" * MIB
    parts = [compressor.compress(b'{"pad": "')]
    parts += [compressor.compress(piece) for _ in range(96)]
    parts.append(compressor.compress(b'"}') + compressor.flush())
    return b"".join(parts)


def _serve_encoded(emu, run_id: str, body: bytes, encoding: str, times: int = 1) -> None:
    emu.inject(
        "status",
        times=times,
        status=200,
        body=body,
        headers={"Content-Encoding": encoding},
        match=f"/api/v1/task-runs/{run_id}",
    )


def _peak_while(call) -> tuple[BaseException | None, int]:
    tracemalloc.start()
    try:
        try:
            call()
        except BaseException as exc:  # returned to the test, which checks it
            return exc, tracemalloc.get_traced_memory()[1]
        return None, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_gzip_bomb_is_refused_in_bounded_memory(ncp, gzip_bomb, mode):
    """httpx inflated each network read whole: 64 MiB in memory before the 4 MiB cap could look."""
    emu, run_id = ncp
    _serve_encoded(emu, run_id, gzip_bomb, "gzip")
    hook = NclueHook(ncp_conn_id="ncp_default")
    if mode == "sync":
        error, peak = _peak_while(lambda: hook.get_status(run_id))
    else:

        async def poll() -> None:
            try:
                await hook.aget_status(run_id)
            finally:
                await hook.aclose()

        error, peak = _peak_while(lambda: asyncio.run(poll()))
    assert isinstance(error, ApiError), error
    assert error.code == "ResponseTooLarge" and "max_response_bytes" in str(error)
    assert peak < 16 * MIB, f"peak {peak / MIB:.1f} MiB while refusing a 4 MiB-capped answer"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_compressed_answer_reads_as_the_plain_one(ncp, encoding, mode):
    emu, run_id = ncp
    hook = NclueHook(ncp_conn_id="ncp_default")
    plain = hook.get_status(run_id)
    document = json.dumps(plain.details).encode()
    body = {
        "gzip": gzip.compress(document),
        "deflate": zlib.compress(document),
        "deflate-raw": _raw_deflate(document),
    }[encoding]
    _serve_encoded(emu, run_id, body, encoding.removesuffix("-raw"))
    if mode == "sync":
        status = hook.get_status(run_id)
    else:

        async def poll():
            try:
                return await hook.aget_status(run_id)
            finally:
                await hook.aclose()

        status = asyncio.run(poll())
    assert status.details == plain.details and status.raw_status == plain.raw_status
    sent = emu.requests_to(f"/api/v1/task-runs/{run_id}")[-1]
    assert sent.headers["accept-encoding"] == ACCEPT_ENCODING


def _raw_deflate(data: bytes, level: int = 6) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def test_an_encoding_not_asked_for_is_refused_by_name_and_not_asked_again(ncp):
    emu, run_id = ncp
    _serve_encoded(emu, run_id, b"\x1b\x00\x00", "br", times=20)
    with pytest.raises(ApiError, match="Content-Encoding 'br', which this client does not accept") as caught:
        NclueHook(ncp_conn_id="ncp_default").get_status(run_id)
    error = caught.value
    assert (error.status_code, error.code, error.retryable) == (200, "UndecodableBody", False)
    assert error.host and "127.0.0.1" in error.host
    assert len(emu.requests_to(f"/api/v1/task-runs/{run_id}")) == 1  # the same answer would come again


def test_an_error_answer_in_a_refused_encoding_keeps_its_status(ncp):
    emu, run_id = ncp
    emu.inject(
        "status",
        status=403,
        body=b"\x1b\x00\x00",
        headers={"Content-Encoding": "br"},
        match=f"/api/v1/task-runs/{run_id}",
    )
    with pytest.raises(ApiError) as caught:
        NclueHook(ncp_conn_id="ncp_default").get_status(run_id)
    assert caught.value.status_code == 403 and not caught.value.retryable


def test_deflate_with_a_preset_dictionary_is_refused_by_name_and_not_asked_again(ncp):
    """A zlib stream with FDICT set can never be inflated (HTTP names no dictionary): it was taken for a
    damaged body and asked for again."""
    emu, run_id = ncp
    document = b'{"run_id": "r", "status": "in_progress"}'
    compressor = zlib.compressobj(zdict=document)
    _serve_encoded(emu, run_id, compressor.compress(document) + compressor.flush(), "deflate", times=20)
    with pytest.raises(ApiError, match="deflate body needs a preset dictionary") as caught:
        NclueHook(ncp_conn_id="ncp_default").get_status(run_id)
    assert (caught.value.status_code, caught.value.code, caught.value.retryable) == (200, "UndecodableBody", False)
    assert len(emu.requests_to(f"/api/v1/task-runs/{run_id}")) == 1  # the same answer would come again


def test_bytes_after_the_gzip_body_are_refused(ncp):
    """zlib keeps whatever follows the end of a gzip stream, uncounted by the cap: a review read 48 MiB of
    junk to its end under a 4 MiB cap. It is refused, and not asked again."""
    emu, run_id = ncp
    _serve_encoded(emu, run_id, gzip.compress(b'{"status": "ok"}') + b"junk" * 64, "gzip")
    with pytest.raises(ApiError, match="data after the end of its compressed body") as caught:
        NclueHook(ncp_conn_id="ncp_default").get_status(run_id)
    assert caught.value.status_code == 200 and not caught.value.retryable


#: four empty non-final fixed-Huffman deflate blocks (10 bits each), ending on a byte boundary
_EMPTY_FIXED_BLOCKS = b"\x02\x08\x20\x80\x00"
#: one empty non-final stored deflate block
_EMPTY_STORED_BLOCK = b"\x00\x00\x00\xff\xff"


def _padded(encoding: str, document: bytes, size: int) -> bytes:
    """``document`` compressed after ``size`` bytes of compressed input that inflate to nothing."""
    if encoding == "gzip":
        empty = gzip.compress(b"", mtime=0)
        return empty * (size // len(empty)) + gzip.compress(document)
    blocks = _EMPTY_STORED_BLOCK if encoding == "deflate" else _EMPTY_FIXED_BLOCKS
    body = blocks * (size // len(blocks)) + _raw_deflate(document)
    if encoding == "deflate":  # zlib-wrapped: header, the blocks, the Adler-32 of what they inflate to
        body = b"\x78\x9c" + body + zlib.adler32(document).to_bytes(4, "big")
    return body


def _decompress(encoding: str, body: bytes) -> bytes:
    """``body`` decoded by the standard library, whole."""
    if encoding == "gzip":
        return gzip.decompress(body)
    return zlib.decompress(body, zlib.MAX_WBITS if encoding == "deflate" else -zlib.MAX_WBITS)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_compressed_input_that_inflates_to_nothing_is_refused(ncp, encoding, mode):
    """Empty gzip members or deflate blocks inflate to nothing, so no decoded-size cap counted them: 2 MiB of
    them were read whole to reach the answer after them, and an endless run (sent chunked) was read forever.
    Refused after the first 64 KiB or so, and not asked again."""
    emu, run_id = ncp
    document = b'{"run_id": "r", "status": "in_progress"}'
    assert _decompress(encoding, _padded(encoding, document, 64 * 1024)) == document  # valid, only padded
    body = _padded(encoding, document, 2 * MIB)
    _serve_encoded(emu, run_id, body, encoding.removesuffix("-raw"), times=20)
    hook = NclueHook(ncp_conn_id="ncp_default")

    async def poll() -> None:
        try:
            await hook.aget_status(run_id)
        finally:
            await hook.aclose()

    with pytest.raises(ApiError, match=r"bytes of the answer's compressed body inflated to only 0 bytes") as caught:
        hook.get_status(run_id) if mode == "sync" else asyncio.run(poll())
    assert (caught.value.status_code, caught.value.code, caught.value.retryable) == (200, "UndecodableBody", False)
    assert len(emu.requests_to(f"/api/v1/task-runs/{run_id}")) == 1  # the same answer would come again


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw"])
def test_a_large_body_sent_stored_reads_whole(ncp, encoding):
    """Stored (level 0) is what an encoder sends for incompressible data: 5 bytes over per 64 KiB."""
    emu, run_id = ncp
    hook = NclueHook(ncp_conn_id="ncp_default")
    plain = hook.get_status(run_id)
    document = json.dumps(plain.details).encode() + b" " * (3 * MIB)
    compress = {
        "gzip": lambda data: gzip.compress(data, 0),
        "deflate": lambda data: zlib.compress(data, 0),
        "deflate-raw": lambda data: _raw_deflate(data, 0),
    }[encoding]
    _serve_encoded(emu, run_id, compress(document), encoding.removesuffix("-raw"))
    assert hook.get_status(run_id).details == plain.details


def test_a_gzip_body_cut_in_its_second_members_magic_is_asked_again(ncp):
    """One byte after a whole gzip member, 0x1f, is the start of a second member cut short, not junk: it
    was refused as data after the end of the body, and not asked again."""
    emu, run_id = ncp
    hook = NclueHook(ncp_conn_id="ncp_default")
    plain = hook.get_status(run_id)
    _serve_encoded(emu, run_id, gzip.compress(json.dumps(plain.details).encode()) + b"\x1f", "gzip")
    assert hook.get_status(run_id).details == plain.details
    assert len(emu.requests_to(f"/api/v1/task-runs/{run_id}")) == 3  # the plain read, the cut one, its retry


def _inflate(encoding: str, pieces: list[bytes], size: int = STEP) -> bytes:
    inflater = Inflater(encoding, size)
    out = [piece for data in pieces for piece in inflater.feed(data)]
    return b"".join(out) + inflater.end()


@pytest.mark.parametrize(
    "encoding, start, filler",
    [
        pytest.param("gzip", b"", gzip.compress(b"", mtime=0), id="empty-gzip-members"),
        pytest.param("gzip", b"", gzip.compress(b"x", mtime=0), id="one-byte-gzip-members"),
        pytest.param("gzip", b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\x03", b"a", id="endless-gzip-file-name"),
        pytest.param("deflate", b"\x78\x9c", _EMPTY_STORED_BLOCK, id="empty-stored-blocks"),
        pytest.param("deflate", b"", _EMPTY_FIXED_BLOCKS, id="empty-fixed-blocks-raw"),
    ],
)
def test_compressed_input_that_inflates_to_almost_nothing_is_refused_within_two_reads(encoding, start, filler):
    inflater = Inflater(encoding)
    read = filler * (STEP // len(filler))  # one network read's worth; an attacker's reads would not end
    fed = 0
    with pytest.raises(UndecodableBody, match=r"compressed body inflated to only \d+ bytes") as caught:
        for data in [start] + [read] * 16:
            fed += len(data)
            list(inflater.feed(data))
    assert not caught.value.retryable and fed <= len(start) + 2 * len(read)


def _gzip_member_named(data: bytes, name: bytes) -> bytes:
    """A gzip member whose header carries a file name (FNAME), as ``gzip`` the command writes."""
    header = b"\x1f\x8b\x08\x08" + bytes(4) + b"\x00\x03" + name + b"\x00"
    return header + _raw_deflate(data) + zlib.crc32(data).to_bytes(4, "little") + len(data).to_bytes(4, "little")


def _flushed_every(data: bytes, n: int) -> bytes:
    """``data`` gzipped by a streaming encoder that flushes after every ``n`` bytes written."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [compressor.compress(data[i : i + n]) + compressor.flush(zlib.Z_SYNC_FLUSH) for i in range(0, len(data), n)]
    return b"".join(parts) + compressor.flush()


_RANDOM = random.Random(7).randbytes(MIB)  # incompressible: an encoder sends it stored


@pytest.mark.parametrize(
    "encoding, body, expected",
    [
        pytest.param("gzip", gzip.compress(_RANDOM, 9), _RANDOM, id="incompressible-gzip"),
        pytest.param("deflate", zlib.compress(_RANDOM, 0), _RANDOM, id="incompressible-deflate-level-0"),
        pytest.param("deflate", _raw_deflate(_RANDOM, 9), _RANDOM, id="incompressible-deflate-raw"),
        pytest.param("gzip", _flushed_every(_RANDOM[: MIB // 4], 8), _RANDOM[: MIB // 4], id="flushed-every-8-bytes"),
        pytest.param(
            "gzip",
            b"".join(gzip.compress(part) for part in (b"", b"{", b'"a": ', _RANDOM[:1000].hex().encode(), b"}")),
            b'{"a": ' + _RANDOM[:1000].hex().encode() + b"}",
            id="five-gzip-members",
        ),
        pytest.param("gzip", _gzip_member_named(b"{}", b"n" * 4096), b"{}", id="gzip-with-a-4-KiB-file-name"),
        pytest.param("gzip", gzip.compress(b""), b"", id="tiny-gzip-empty"),
        pytest.param("gzip", gzip.compress(b"{}"), b"{}", id="tiny-gzip"),
        pytest.param("deflate", zlib.compress(b""), b"", id="tiny-deflate-empty"),
        pytest.param("deflate", _raw_deflate(b"{}"), b"{}", id="tiny-deflate-raw"),
    ],
)
def test_honest_bodies_are_not_taken_for_padding(encoding, body, expected):
    assert _inflate(encoding, [body]) == expected
    assert _inflate(encoding, [body[i : i + 1000] for i in range(0, len(body), 1000)]) == expected


def test_a_body_of_several_gzip_members_is_read_whole():
    assert _inflate("gzip", [gzip.compress(b"first ") + gzip.compress(b"second")]) == b"first second"


@pytest.mark.parametrize("size", [1, 7, 1000, 1 << 20])
def test_many_gzip_members_read_the_same_in_every_chunking(size):
    members = [gzip.compress(f"member {i};".encode()) for i in range(400)]
    body = b"".join(members)
    expected = b"".join(f"member {i};".encode() for i in range(400))
    assert _inflate("gzip", [body[i : i + size] for i in range(0, len(body), size)]) == expected


_DECOMPRESSOBJ = zlib.decompressobj


def _count_zlib(monkeypatch) -> dict[str, int]:
    """From now on, count zlib's decompress calls and the compressed bytes handed to them."""
    counts = {"calls": 0, "bytes": 0}

    class Counting:
        def __init__(self, *args: int) -> None:
            self._z = _DECOMPRESSOBJ(*args)

        def decompress(self, data, max_length=0):
            counts["calls"] += 1
            counts["bytes"] += len(data)
            return self._z.decompress(data, max_length)

        def __getattr__(self, name):
            return getattr(self._z, name)

    monkeypatch.setattr(zlib, "decompressobj", Counting)
    return counts


def _bytes_handed_to_zlib(monkeypatch, members: int) -> tuple[int, int]:
    """Compressed bytes zlib was given to inflate one read of ``members`` tiny gzip members, and the read's size."""
    counts = _count_zlib(monkeypatch)
    body = gzip.compress(b"x" * 100) * members
    assert _inflate("gzip", [body]) == b"x" * 100 * members
    return counts["bytes"], len(body)


def test_a_large_member_after_the_first_is_inflated_in_large_steps(monkeypatch):
    """Tiny members get 1 KiB pieces (below); a large one must not: 4 MiB in 1 KiB pieces was
    4,000 zlib calls (and as many pieces for the caller), a fifth of the first member's speed."""
    payload = random.Random(7).randbytes(4 * MIB)
    body = gzip.compress(b"head ") + gzip.compress(payload)
    counts = _count_zlib(monkeypatch)
    out = _inflate("gzip", [body[i : i + STEP] for i in range(0, len(body), STEP)])
    assert out == b"head " + payload
    assert counts["calls"] < 3 * (len(body) // STEP)  # a few steps per 64 KiB read, not 64


def test_thousands_of_gzip_members_in_one_read_cost_work_linear_in_its_size(monkeypatch):
    """zlib copies what it did not take: at every member's end that was the rest of the read,
    quadratic in a read of tiny members (a hostile body's CPU). Each compressed byte must be
    handed over a bounded number of times, however many members share its read."""
    small, small_size = _bytes_handed_to_zlib(monkeypatch, 2_000)
    large, large_size = _bytes_handed_to_zlib(monkeypatch, 16_000)
    assert large / large_size < 1.5 * (small / small_size)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw"])
def test_every_chunking_reads_the_same_even_one_byte_at_a_time(encoding):
    data = json.dumps({"runs": [{"id": i} for i in range(200)]}).encode()
    body = {"gzip": gzip.compress, "deflate": zlib.compress, "deflate-raw": _raw_deflate}[encoding](data)
    name = encoding.removesuffix("-raw")
    assert _inflate(name, [body]) == data
    assert _inflate(name, [body[i : i + 1] for i in range(len(body))]) == data


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda doc: gzip.compress(doc)[: len(gzip.compress(doc)) // 2], id="half"),
        pytest.param(lambda doc: gzip.compress(doc)[:-8], id="no-crc-trailer"),
        pytest.param(lambda doc: b"\x1f", id="one-byte"),
        pytest.param(lambda doc: gzip.compress(doc) + b"\x1f", id="in-the-second-members-magic"),
    ],
)
def test_a_gzip_body_cut_short_is_refused(body):
    with pytest.raises(httpx.DecodingError, match="cut short") as caught:
        _inflate("gzip", [body(b"x" * 5000)])
    assert caught.value.retryable  # the next answer may come whole


@pytest.mark.parametrize(
    "encoding, body",
    [
        pytest.param("gzip", gzip.compress(b"{}") + b"x", id="gzip-then-a-byte-no-member-starts-with"),
        pytest.param("deflate", zlib.compress(b"{}") + b"\x1f", id="deflate-then-any-byte"),
    ],
)
def test_one_byte_of_junk_after_the_body_is_refused(encoding, body):
    with pytest.raises(httpx.DecodingError, match="data after the end of its compressed body") as caught:
        _inflate(encoding, [body])
    assert not caught.value.retryable


def test_gzip_that_is_not_gzip_is_refused():
    with pytest.raises(httpx.DecodingError, match="is not gzip data"):
        _inflate("gzip", [b'{"status": "ok"}'])


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "identity", ""])
def test_an_empty_body_is_empty(encoding):
    assert _inflate(encoding, [b""]) == b""


def test_inflater_never_hands_on_more_than_a_step():
    data = b"x" * (5 * MIB)
    inflater = Inflater("gzip", size=64 * 1024)
    pieces = list(inflater.feed(gzip.compress(data)))
    pieces.append(inflater.end())
    assert b"".join(pieces) == data
    assert max(map(len, pieces)) <= 64 * 1024


def test_damaged_gzip_is_a_decoding_error():
    with pytest.raises(httpx.DecodingError, match="damaged"):
        _inflate("gzip", [b"\x1f\x8b\x08\x00garbage-garbage-garbage"])
