"""Compressed answers: inflated in bounded steps, over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import gzip
import json
import tracemalloc
import zlib

import httpx
import pytest

from airflow_task_runs.core.content_encoding import ACCEPT_ENCODING, STEP, Inflater
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


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
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


def test_bytes_after_the_gzip_body_are_refused(ncp):
    """zlib keeps whatever follows the end of a gzip stream, uncounted by the cap: a review read 48 MiB of
    junk to its end under a 4 MiB cap. It is refused, and not asked again."""
    emu, run_id = ncp
    _serve_encoded(emu, run_id, gzip.compress(b'{"status": "ok"}') + b"junk" * 64, "gzip")
    with pytest.raises(ApiError, match="data after the end of its compressed body") as caught:
        NclueHook(ncp_conn_id="ncp_default").get_status(run_id)
    assert caught.value.status_code == 200 and not caught.value.retryable


def _inflate(encoding: str, pieces: list[bytes], size: int = STEP) -> bytes:
    inflater = Inflater(encoding, size)
    out = [piece for data in pieces for piece in inflater.feed(data)]
    return b"".join(out) + inflater.end()


def test_a_body_of_several_gzip_members_is_read_whole():
    assert _inflate("gzip", [gzip.compress(b"first ") + gzip.compress(b"second")]) == b"first second"


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
    ],
)
def test_a_gzip_body_cut_short_is_refused(body):
    with pytest.raises(httpx.DecodingError, match="cut short") as caught:
        _inflate("gzip", [body(b"x" * 5000)])
    assert caught.value.retryable  # the next answer may come whole


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
