"""Output decoding (every type x compression x charset), integrity failures, Object Storage writes, MLflow XCom."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json

import pytest

from airflow_task_runs.core.errors import OutputIntegrityError, OutputTooLargeError
from airflow_task_runs.oci.models import RunOutputData
from airflow_task_runs.oci.operators import (
    OciFetchTaskRunOutputOperator,
    OciGetExperimentRunOperator,
    decode_item,
)
from airflow_task_runs.testing.oci import BIG_SIZE, PLATFORM_ID, WORKSPACE_KEY, encode_item, matrix_items

MATRIX_ITEMS, MATRIX_CONTENTS = matrix_items()


@pytest.fixture
def emu(task_runs_connections):
    return task_runs_connections.oci


def _op(key, **kwargs):
    return OciFetchTaskRunOutputOperator(
        task_id="fetch", ai_data_platform_id=PLATFORM_ID, workspace_key=WORKSPACE_KEY, task_run_key=key, **kwargs
    )


def _context(mocker):
    return {"ti": mocker.MagicMock()}


def _serve(emu, items, contents=None, **kwargs):
    key = emu.add_task_run(lifecycle=["SUCCESS"], output_key="out")
    emu.set_output(key, "out", items, contents=contents, **kwargs)
    return key


CONTENT_INDEXES = [i for i, c in enumerate(MATRIX_CONTENTS) if c is not None]


@pytest.mark.parametrize(
    "index",
    CONTENT_INDEXES,
    ids=[
        f"{i}-{MATRIX_ITEMS[i]['type']}-{MATRIX_ITEMS[i].get('compression')}-{MATRIX_ITEMS[i].get('charset')}"
        f"-b64={MATRIX_ITEMS[i]['isBase64']}"
        for i in CONTENT_INDEXES
    ],
)
def test_every_type_compression_charset_round_trips_byte_exact(index):
    item = RunOutputData.model_validate(MATRIX_ITEMS[index])
    assert decode_item(index, item) == MATRIX_CONTENTS[index]


def test_matrix_over_the_wire_to_xcom_and_to_object_storage(emu, mocker, tmp_path):
    key = _serve(emu, MATRIX_ITEMS, MATRIX_CONTENTS, parameters={"rows": "10"})
    result = _op(key).execute(_context(mocker))
    for entry, item, expected in zip(result["items"], MATRIX_ITEMS, MATRIX_CONTENTS, strict=True):
        if expected is None:
            assert entry == {"index": entry["index"], "type": item["type"], "path": item["value"], "reference": True}
        elif "text" in entry:
            codec = "utf-8" if item.get("charset", "UTF_8") == "UTF_8" else "utf-16"
            if codec == "utf-16" and not expected.startswith((b"\xff\xfe", b"\xfe\xff")):
                codec = "utf-16-be"
            assert entry["text"] == expected.decode(codec)
        else:
            assert base64.b64decode(entry["base64"]) == expected
    assert result["output_parameters"] == {"rows": "10"}

    stored = _op(key, destination=f"file://{tmp_path}/out/").execute(_context(mocker))
    files = {p.name: p for p in (tmp_path / "out").iterdir()}
    assert json.loads(files["output_parameters.json"].read_text()) == {"rows": "10"}
    written = [e for e in stored["items"] if "uri" in e]
    assert len(written) == sum(c is not None for c in MATRIX_CONTENTS)
    for entry in written:
        path = files[entry["uri"].rsplit("/", 1)[1]]
        assert path.read_bytes() == MATRIX_CONTENTS[entry["index"]]
    assert "000_text_plain.txt" in files and any(n.endswith("_image_png.png") for n in files)
    assert not [n for n in files if n.endswith(".partial")]
    refs = [e for e in stored["items"] if e.get("reference")]
    assert {r["type"] for r in refs} == {"FILE_PATH", "NOTEBOOK_PATH"}
    assert not any("file_path" in n or "notebook_path" in n for n in files)


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        (encode_item(b"hello world", "TEXT_PLAIN", charset="UTF_8", length=12), "its length says 12"),
        (encode_item(b"hello world", "TEXT_PLAIN", charset="UTF_8", length=5), "more bytes than its declared length 5"),
        ({**encode_item(b"hello", "IMAGE_PNG"), "value": "aGVsbG8=!!not*base64"}, "not valid base64"),
        ({**encode_item(b"hello", "IMAGE_PNG"), "value": "aGVsbG8"}, "stray character"),
        (
            {
                **encode_item(b"x", "TEXT_PLAIN", compression="GZIP"),
                "value": base64.b64encode(b"\x1f\x8bgarbage").decode(),
            },
            "GZIP data is corrupt",
        ),
        (
            {
                **encode_item(b"x" * 1000, "TEXT_PLAIN", compression="GZIP"),
                "value": base64.b64encode(gzip.compress(b"x" * 1000)[:-12]).decode(),
            },
            "truncated",
        ),
        ({**encode_item(b"x", "TEXT_PLAIN", compression="BZIP2"), "value": "QlpoOTFBWSZTWQ=="}, "BZIP2"),
        ({**encode_item(b"x", "TEXT_PLAIN", compression="COMPRESS"), "value": "H52Q////"}, "COMPRESS"),
        (encode_item(b"\xff\xfe\xfd bad", "TEXT_PLAIN", charset="UTF_8", compression="DEFLATE"), "not valid UTF_8"),
        (encode_item(b"abc", "TEXT_PLAIN", charset="UTF_16"), "not valid UTF_16"),
        ({**encode_item(b"abc", "TEXT_PLAIN"), "charset": "LATIN_1"}, "refusing to guess"),
        ({**encode_item(b"abc", "TEXT_PLAIN"), "compression": "ZSTD"}, "ZSTD"),
        ({**encode_item(b"abc", "TEXT_PLAIN"), "length": "three"}, "not a number"),
    ],
)
def test_content_that_does_not_add_up_fails_loudly(emu, mocker, item, problem):
    key = _serve(emu, [item])
    with pytest.raises(OutputIntegrityError, match=problem):
        _op(key).execute(_context(mocker))


def test_failed_item_leaves_nothing_at_the_destination(emu, mocker, tmp_path):
    good = encode_item(b"fine", "TEXT_PLAIN", charset="UTF_8")
    bad = encode_item(b"A" * 3_000_000, "APPLICATION_PDF", length=3_000_001)
    key = _serve(emu, [good, bad])
    with pytest.raises(OutputIntegrityError, match="3000001"):
        _op(key, destination=f"file://{tmp_path}/out/").execute(_context(mocker))
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == [], left  # all or nothing: the good item 0 is not left, nor the folder the write made


def test_truncated_output_is_flagged_and_logged(emu, mocker, captured_logs):
    key = _serve(emu, [encode_item(b"partial", "TEXT_PLAIN", charset="UTF_8")], is_truncated=True)
    result = _op(key).execute(_context(mocker))
    assert result["is_truncated"] is True
    assert "truncated by OCI" in captured_logs()


def test_xcom_size_guard_names_destination(emu, mocker, monkeypatch):
    monkeypatch.setenv("AIRFLOW__TASK_RUNS__XCOM_MAX_BYTES", "1000")
    key = _serve(emu, [encode_item(b"y" * 5000, "TEXT_PLAIN", charset="UTF_8", compression="GZIP")])
    with pytest.raises(OutputTooLargeError, match="destination="):
        _op(key).execute(_context(mocker))


def test_64_mib_output_to_file_is_written_atomically(emu, mocker, tmp_path):
    emu.seed_demo()
    result = _op("big-task-run", destination=f"file://{tmp_path}/big/").execute(_context(mocker))
    files = list((tmp_path / "big").iterdir())
    assert sorted(p.name for p in files) == ["000_image_png.png", "output_parameters.json"]
    png = tmp_path / "big" / "000_image_png.png"
    assert png.stat().st_size == BIG_SIZE == result["items"][0]["size"]
    digest = hashlib.sha256()
    with png.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == emu.big_sha256


def test_experiment_run_operator(emu, mocker):
    run_id = emu.add_experiment_run(
        lifecycle=["FINISHED"], metrics={"acc": 0.97}, params={"depth": "6"}, tags={"team": "ml"}
    )
    context = _context(mocker)
    result = OciGetExperimentRunOperator(
        task_id="get", ai_data_platform_id=PLATFORM_ID, workspace_key=WORKSPACE_KEY, run_id=run_id
    ).execute(context)
    assert result["metrics"] == {"acc": 0.97}
    assert result["params"] == {"depth": "6"}
    assert result["tags"] == {"team": "ml"}
    assert result["info"]["status"] == "FINISHED"
    assert result["inputs"]["dataset_inputs"][0]["dataset"]["schema"] == '{"mlflow_colspec": []}'
    assert result["outputs"]["model_outputs"][0]["model_id"].startswith("m-")
    json.dumps(result)  # plain data
    pushed = {c.kwargs["key"]: c.kwargs["value"] for c in context["ti"].xcom_push.call_args_list}
    assert run_id in pushed["_link_OciExperimentRunLink"]
