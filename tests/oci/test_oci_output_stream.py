"""The streamed fetchOutput path: byte-exact decoding through spools, broken responses, retry tokens."""

from __future__ import annotations

import base64
import json
import random

import pytest

from airflow_task_runs.core.errors import ApiError, MalformedResponseError, OutputTooLargeError
from airflow_task_runs.oci import output_stream
from airflow_task_runs.oci.decoding import decode_item, item_chunks
from airflow_task_runs.oci.hooks import OciAiDataPlatformHook
from airflow_task_runs.oci.models import RunOutputData
from airflow_task_runs.oci.operators import OciFetchTaskRunOutputOperator
from airflow_task_runs.oci.output_stream import MalformedJson, StreamedOutput, parse
from airflow_task_runs.testing.oci import (
    CHARSETS,
    COMPRESSIONS,
    PLATFORM_ID,
    WORKSPACE_KEY,
    encode_item,
    matrix_items,
    text_bytes,
)

MATRIX_ITEMS, MATRIX_CONTENTS = matrix_items()
FETCH = "/actions/fetchOutput"


@pytest.fixture
def emu(task_runs_connections):
    oci = task_runs_connections.oci
    oci.reset_log()
    oci.reset_actions()
    return oci


@pytest.fixture
def small_spools(monkeypatch):
    """Spool to disk after 1 KiB and hand out 1000-byte pieces, so every item crosses piece boundaries."""
    monkeypatch.setattr(output_stream, "SPOOL_IN_MEMORY", 1024)
    monkeypatch.setattr(output_stream, "PIECE_BYTES", 1000)


def _op(key, **kwargs):
    return OciFetchTaskRunOutputOperator(
        task_id="fetch", ai_data_platform_id=PLATFORM_ID, workspace_key=WORKSPACE_KEY, task_run_key=key, **kwargs
    )


def _context(mocker):
    return {"ti": mocker.MagicMock()}


def _serve(emu, items=None, *, raw=None, key=None):
    key = emu.add_task_run(key, lifecycle=["SUCCESS"], output_key="out")
    emu.set_output(key, "out", items or [], raw=raw)
    return key


def _chunked(data: bytes, sizes):
    pos = 0
    while pos < len(data):
        step = next(sizes)
        yield data[pos : pos + step]
        pos += step


def _stream(body: bytes, seed: int = 0) -> StreamedOutput:
    """Parse ``body`` as the hook does, cut into random small chunks (escapes split across them)."""
    from airflow_task_runs.oci.models import TaskRunOutput

    rng = random.Random(seed)
    sizes = iter(lambda: rng.randint(1, 700), None)
    document, values, _ = parse(_chunked(body, sizes))
    return StreamedOutput(TaskRunOutput.model_validate(document), values)


def _document(items) -> bytes:
    return json.dumps({"key": "out", "data": items, "outputParameters": []}).encode()


# -- byte-exact, every compression x charset -------------------------------------------------
CASES = [(compression, charset) for compression in COMPRESSIONS for charset in (*CHARSETS, None)]


@pytest.mark.parametrize(("compression", "charset"), CASES, ids=[f"{c}-{s}" for c, s in CASES])
@pytest.mark.parametrize("escaped_slashes", [False, True], ids=["plain", "escaped-slashes"])
def test_streamed_decoding_is_byte_exact(small_spools, compression, charset, escaped_slashes):
    rng = random.Random(f"{compression}{charset}")
    if charset is None:  # binary
        content = b"\x89PNG\r\n\x1a\n" + rng.randbytes(200_000)
        item = encode_item(content, "IMAGE_PNG", compression=compression)
    else:
        text = "".join(rng.choice("abc xyz é東🎉\n/+") for _ in range(60_000))
        content = text_bytes(text, charset, bom=charset == "UTF_16" and compression == "GZIP")
        item = encode_item(content, "TEXT_PLAIN", charset=charset, compression=compression)
    # the value first, the metadata after it: the spool must wait for them
    item = {"value": item.pop("value"), **item}
    body = _document([item])
    if escaped_slashes:
        body = body.replace(b"/", b"\\/")
    with _stream(body) as streamed:
        pieces = list(streamed.pieces(0))
        assert len(pieces) > 1  # really read piece by piece
        assert b"".join(item_chunks(0, streamed.output.data[0], iter(pieces))) == content


@pytest.mark.parametrize("charset", CHARSETS)
def test_plain_text_values_with_every_json_escape(small_spools, charset):
    text = 'quote " backslash \\ slash / controls \b\f\n\r\t nul \x00 é 東 🎉 \u2028' * 300
    content = text_bytes(text, charset)
    item = encode_item(content, "TEXT_PLAIN", charset=charset, is_base64=False)
    for ensure_ascii in (True, False):  # \uXXXX escapes (surrogate pairs for 🎉) or raw UTF-8
        body = json.dumps({"data": [item]}, ensure_ascii=ensure_ascii).encode()
        for seed in range(5):
            with _stream(body, seed) as streamed:
                assert decode_item(0, streamed.output.data[0], streamed.pieces(0)) == content


def test_matrix_through_the_stream_matches_the_in_memory_decoder(small_spools):
    with _stream(_document(MATRIX_ITEMS)) as streamed:
        for index, expected in enumerate(MATRIX_CONTENTS):
            item = streamed.output.data[index]
            assert item.value is None  # spooled, not held in the model
            if expected is None:
                assert streamed.text(index) == MATRIX_ITEMS[index]["value"]
            else:
                assert decode_item(index, item, streamed.pieces(index)) == expected
                assert decode_item(index, RunOutputData.model_validate(MATRIX_ITEMS[index])) == expected


def test_only_data_values_are_spooled():
    body = json.dumps(
        {
            "value": "top",
            "errorTrace": 'a "value": "x"',
            "data": [{"type": "TEXT_PLAIN", "value": "one", "nested": {"value": "n", "data": [{"value": "d"}]}}],
            "outputParameters": [{"name": "p", "value": "param"}],
            "extra": {"data": [{"value": "not an item"}]},
        }
    ).encode()
    document, values, _ = parse(iter([body]))
    assert set(values) == {0} and values[0].text() == "one"
    assert document["data"][0]["value"] is None
    assert document["data"][0]["nested"] == {"value": "n", "data": [{"value": "d"}]}
    assert document["outputParameters"] == [{"name": "p", "value": "param"}]
    assert document["extra"] == {"data": [{"value": "not an item"}]}
    assert document["value"] == "top" and document["errorTrace"] == 'a "value": "x"'


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"data": [{"value": "aGVsbG8', r"ends inside the value of data\[0\]"),
        (b'{"data": [{"value": "aGVsbG8="}', "not valid JSON"),
        (b'{"data": [{"value": "aGVs\\qbG8="}]}', "invalid escape"),
        (b'{"data": [{"value": "aGVs\x01bG8="}]}', "control character"),
        (b'{"data": [{"value": "aG\xffVsbG8="}]}', "not UTF-8"),
        (b'{"data": [{"value": "\\ud83c"}]}', "unpaired surrogate"),
        (b'{"data": [{"value": "\\u12"}]}', "invalid \\\\u escape"),
        (b'{"data": [{"value": "ok"}]} {"data": []}', "not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
def test_broken_documents_fail_clearly(body, problem):
    with pytest.raises(MalformedJson, match=problem):
        parse(iter([body[:9], body[9:]]))


# -- over the wire ------------------------------------------------------------------------------
def test_large_output_is_read_in_pieces_and_spooled_to_disk(emu, mocker, tmp_path, small_spools):
    content = random.Random(5).randbytes(300_000)
    key = _serve(emu, [encode_item(content, "APPLICATION_PDF", compression="BZIP2")])
    seen: list[int] = []
    real = output_stream.SpooledValue.pieces

    def spy(self):
        assert self._file._rolled  # on disk, not in memory
        for piece in real(self):
            seen.append(len(piece))
            yield piece

    mocker.patch.object(output_stream.SpooledValue, "pieces", spy)
    result = _op(key, destination=f"file://{tmp_path}/out/").execute(_context(mocker))
    assert (tmp_path / "out" / "000_application_pdf.pdf").read_bytes() == content
    assert result["items"][0]["size"] == len(content)
    assert len(seen) > 10 and max(seen) <= 1000


@pytest.mark.parametrize("cut", ["in-first-item", "between-items", "in-last-item", "in-parameters"])
def test_truncated_response_fails_and_leaves_nothing(emu, mocker, tmp_path, cut):
    items = [encode_item(b"first item", "TEXT_PLAIN", charset="UTF_8"), encode_item(b"x" * 5000, "IMAGE_PNG")]
    body = json.dumps({"key": "out", "data": items, "outputParameters": [{"name": "a", "value": "1"}]}).encode()
    at = {
        "in-first-item": body.index(b"Zmlyc3Q") + 3,
        "between-items": body.index(b"}, {") + 1,
        "in-last-item": body.index(b"eHh4") + 100,
        "in-parameters": body.index(b'"outputParameters"') + 25,
    }[cut]
    key = _serve(emu, raw=body[:at])
    with pytest.raises(MalformedResponseError, match=r"truncated|not valid JSON") as caught:
        _op(key, destination=f"file://{tmp_path}/out/").execute(_context(mocker))
    assert caught.value.request_id
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_garbled_response_fails_and_leaves_nothing(emu, mocker, tmp_path):
    items = [encode_item(b"fine", "TEXT_PLAIN", charset="UTF_8"), encode_item(b"y" * 5000, "IMAGE_PNG")]
    body = bytearray(_document(items))
    body[body.index(b"eXl5") + 50] = 0x0A  # a raw newline inside the second value
    key = _serve(emu, raw=bytes(body))
    with pytest.raises(MalformedResponseError, match="control character"):
        _op(key, destination=f"file://{tmp_path}/out/").execute(_context(mocker))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_connection_cut_mid_body_is_retried_with_the_same_token(emu, mocker, tmp_path):
    content = random.Random(9).randbytes(20_000)
    key = _serve(emu, [encode_item(content, "IMAGE_PNG", compression="GZIP")])
    path = f"/20260430/aiDataPlatforms/{PLATFORM_ID}/workspaces/{WORKSPACE_KEY}/taskRuns/{key}{FETCH}"
    emu.inject("truncated", times=2, match=path)
    result = _op(key, destination=f"file://{tmp_path}/out/").execute(_context(mocker))
    assert (tmp_path / "out" / "000_image_png.png").read_bytes() == content
    assert result["items"][0]["size"] == len(content)
    posts = [r for r in emu.requests if r.method == "POST" and r.path.endswith(FETCH)]
    assert len(posts) == 3
    assert len({p.headers["opc-retry-token"] for p in posts}) == 1
    assert len({p.headers["opc-request-id"] for p in posts}) == 1
    assert sum(emu.fetch_actions.values()) == 1


def test_lost_reply_then_stream_runs_the_action_once(emu, mocker):
    key = _serve(emu, [encode_item(b"once", "TEXT_PLAIN", charset="UTF_8")])
    emu.fail_next_fetch_after_action()
    result = _op(key).execute(_context(mocker))
    assert result["items"][0]["text"] == "once"
    posts = [r for r in emu.requests if r.method == "POST"]
    token = posts[0].headers["opc-retry-token"]
    assert len(posts) == 2 and posts[1].headers["opc-retry-token"] == token
    assert emu.fetch_actions[token] == 1
    # the next run of the operator is a new action, with a new token, sent once
    _op(key).execute(_context(mocker))
    posts = [r for r in emu.requests if r.method == "POST"]
    assert len(posts) == 3 and posts[2].headers["opc-retry-token"] != token
    assert len(emu.fetch_actions) == 2


@pytest.mark.parametrize(("status", "code"), [(501, "NotImplemented"), (400, "InvalidParameter")])
def test_streamed_post_not_retried_on_final_errors(emu, status, code):
    key = _serve(emu, [encode_item(b"x", "TEXT_PLAIN", charset="UTF_8")])
    body = json.dumps({"code": code, "message": "nope"}).encode()
    emu.inject("status", status=status, body=body, times=1, match=f"/20260430/aiDataPlatforms/{PLATFORM_ID}")
    with pytest.raises(ApiError) as caught:
        OciAiDataPlatformHook().fetch_task_run_output(PLATFORM_ID, WORKSPACE_KEY, key, output_key="out")
    assert (caught.value.status_code, caught.value.code) == (status, code)
    assert len([r for r in emu.requests if r.method == "POST"]) == 1


def test_xcom_path_stops_reading_a_response_far_over_the_guard(emu, mocker, monkeypatch):
    monkeypatch.setenv("AIRFLOW__TASK_RUNS__XCOM_MAX_BYTES", "10000")
    key = _serve(emu, [encode_item(random.Random(1).randbytes(3_000_000), "IMAGE_PNG")])
    seen: list[int] = []
    real = output_stream.parse

    def spy(chunks, **kwargs):
        def counting():
            for chunk in chunks:
                seen.append(len(chunk))
                yield chunk

        return real(counting(), **kwargs)

    mocker.patch.object(output_stream, "parse", spy)
    with pytest.raises(OutputTooLargeError, match="destination=") as caught:
        _op(key).execute(_context(mocker))
    assert "reading stopped" in str(caught.value)
    assert sum(seen) < 1_000_000  # stopped early in the 4 MB answer


def test_xcom_path_takes_utf16_text_whose_response_is_over_the_limit(emu, mocker, monkeypatch):
    # base64 of UTF-16 is 8/3 of the text: the response may exceed the limit while the XCom does not
    monkeypatch.setenv("AIRFLOW__TASK_RUNS__XCOM_MAX_BYTES", "10000")
    text = "a" * 4500  # 9000 bytes of UTF-16 (under the limit), 12000 of base64
    key = _serve(emu, [encode_item(text.encode("utf-16-be"), "TEXT_PLAIN", charset="UTF_16")])
    assert _op(key).execute(_context(mocker))["items"][0]["text"] == text


def test_hook_fetch_still_returns_whole_values(emu):
    content = b"whole \xe2\x9c\x93"
    key = _serve(emu, [encode_item(content, "TEXT_PLAIN", charset="UTF_8", compression="DEFLATE")])
    output = OciAiDataPlatformHook().fetch_task_run_output(PLATFORM_ID, WORKSPACE_KEY, key, output_key="out")
    assert decode_item(0, output.data[0]) == content
    assert base64.b64decode(output.data[0].value or "")
