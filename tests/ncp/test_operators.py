"""NclueFetchTaskRunResultOperator: result file to object storage or XCom."""

from __future__ import annotations

import hashlib
import os

import pytest

from airflow_task_runs.core.errors import OutputTooLargeError, RunNotFinishedError
from airflow_task_runs.ncp.operators import NclueFetchTaskRunResultOperator


@pytest.fixture
def emu(task_runs_connections):
    return task_runs_connections.ncp


def _op(run_id, **kwargs):
    return NclueFetchTaskRunResultOperator(task_id="fetch", run_id=run_id, **kwargs)


def test_result_to_file_destination_is_byte_identical(emu, output_dir):
    data = os.urandom(3 * 1024 * 1024 + 17)
    run_id = emu.add_run(lifecycle=[("completed", 0)], result=data, result_file_path="out/part-0.bin")
    result = _op(run_id, destination=f"file://{output_dir}/").execute({})
    written = output_dir / "part-0.bin"
    assert hashlib.sha256(written.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert result["uri"].endswith("/part-0.bin")
    assert result["size"] == len(data)
    assert sorted(p.name for p in output_dir.iterdir()) == ["part-0.bin"]


def test_result_to_exact_file_path(emu, output_dir):
    run_id = emu.add_run(lifecycle=[("completed", 0)], result=b"a,b\n")
    _op(run_id, destination=f"file://{output_dir}/named.csv").execute({})
    assert (output_dir / "named.csv").read_bytes() == b"a,b\n"


def test_result_to_xcom_as_text(emu):
    run_id = emu.add_run(lifecycle=[("completed", 0)], result="id,name\n1,한글\n".encode())
    assert _op(run_id).execute({}) == "id,name\n1,한글\n"


def test_oversized_result_for_xcom_names_destination(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW__TASK_RUNS__XCOM_MAX_BYTES", "1000")
    run_id = emu.add_run(lifecycle=[("completed", 0)], result=b"x" * 5000)
    with pytest.raises(OutputTooLargeError, match="destination=") as caught:
        _op(run_id).execute({})
    assert caught.value.size == 5000


def test_binary_result_for_xcom_is_refused_clearly(emu):
    run_id = emu.add_run(lifecycle=[("completed", 0)], result=b"\xff\xfe\x00binary")
    with pytest.raises(ValueError, match="not UTF-8 text"):
        _op(run_id).execute({})


@pytest.mark.parametrize("hostile", ["../../etc/passwd", "/etc/passwd", "a/../../b"])
def test_hostile_result_path_is_refused(emu, output_dir, hostile):
    run_id = emu.add_run(lifecycle=[("completed", 0)], result_file_path=hostile)
    with pytest.raises(ValueError, match="refusing result_file_path"):
        _op(run_id, destination=f"file://{output_dir}/").execute({})
    assert list(output_dir.iterdir()) == []


def test_run_not_completed_is_a_clear_error(emu, output_dir):
    run_id = emu.add_run(lifecycle=[("failed", 0)], fail_message="bad rows")
    with pytest.raises(RunNotFinishedError, match="is failed, not completed: bad rows"):
        _op(run_id, destination=f"file://{output_dir}/").execute({})


def test_missing_object_is_an_api_error(emu, output_dir):
    from airflow_task_runs.core.errors import ApiError

    run_id = emu.add_run(lifecycle=[("completed", 0)], result_file_path="never/uploaded.csv")
    with pytest.raises(ApiError, match="NoSuchKey"):
        _op(run_id, destination=f"file://{output_dir}/").execute({})
    assert list(output_dir.iterdir()) == []


def test_templated_fields():
    assert {"run_id", "destination"} <= set(NclueFetchTaskRunResultOperator.template_fields)
