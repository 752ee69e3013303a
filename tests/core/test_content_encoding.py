"""Compressed answers: inflated in bounded steps, over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import gzip
import json
import tracemalloc
import zlib

import httpx
import pytest

from airflow_task_runs.core.content_encoding import ACCEPT_ENCODING, Inflater
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


def test_an_encoding_not_asked_for_is_refused_by_name(ncp):
    emu, run_id = ncp
    _serve_encoded(emu, run_id, b"\x1b\x00\x00", "br", times=20)
    with pytest.raises(ApiError, match="Content-Encoding 'br', which this client does not accept") as caught:
        NclueHook(ncp_conn_id="ncp_default").get_status(run_id)
    assert caught.value.host and "127.0.0.1" in caught.value.host
    assert "could not be decoded" in str(caught.value)


def test_inflater_never_hands_on_more_than_a_step():
    data = b"x" * (5 * MIB)
    inflater = Inflater("gzip", size=64 * 1024)
    pieces = list(inflater.feed(gzip.compress(data)))
    pieces.append(inflater.end())
    assert b"".join(pieces) == data
    assert max(map(len, pieces)) <= 64 * 1024


def test_damaged_gzip_is_a_decoding_error():
    inflater = Inflater("gzip")
    with pytest.raises(httpx.DecodingError, match="damaged"):
        list(inflater.feed(b"\x1f\x8b\x08\x00garbage-garbage-garbage"))
