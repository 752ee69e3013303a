"""Atomic, streamed writes to ObjectStoragePath and the XCom size guard."""

from __future__ import annotations

import pytest

from airflow_task_runs.core.errors import OutputIntegrityError, OutputTooLargeError
from airflow_task_runs.core.outputs import (
    join_destination,
    read_for_xcom,
    write_atomically,
    write_bytes_atomically,
)


def test_write_is_byte_identical_and_leaves_no_partial(output_dir):
    data = bytes(range(256)) * 9000
    uri = write_bytes_atomically(f"file://{output_dir}/sub/dir/data.bin", data)
    assert uri.endswith("/sub/dir/data.bin")
    assert (output_dir / "sub/dir/data.bin").read_bytes() == data
    assert [p.name for p in (output_dir / "sub/dir").iterdir()] == ["data.bin"]


def test_interrupted_stream_leaves_nothing(output_dir):
    def chunks():
        yield b"a" * 1000
        raise ConnectionError("network dropped mid-download")

    with pytest.raises(ConnectionError):
        write_atomically(f"file://{output_dir}/out.bin", chunks())
    assert list(output_dir.iterdir()) == []


def test_size_mismatch_leaves_nothing(output_dir):
    with pytest.raises(OutputIntegrityError, match="received 3 bytes but the source declared 10"):
        write_atomically(f"file://{output_dir}/out.bin", iter([b"abc"]), expected_size=10)
    assert list(output_dir.iterdir()) == []


def test_existing_object_is_replaced_only_when_complete(output_dir):
    target = output_dir / "out.txt"
    target.write_bytes(b"old and complete")

    def chunks():
        yield b"new"
        raise TimeoutError("read timed out")

    with pytest.raises(TimeoutError):
        write_atomically(f"file://{target}", chunks())
    assert target.read_bytes() == b"old and complete"


def test_xcom_guard_names_destination_and_stops_reading_at_the_limit():
    read: list[bytes] = []

    def chunks():
        for chunk in (b"x" * 600, b"y" * 600, b"z" * 600):
            read.append(chunk)
            yield chunk

    with pytest.raises(OutputTooLargeError, match="destination=") as caught:
        read_for_xcom(chunks(), "the result", limit=1000)
    assert len(read) == 2  # the third chunk is never asked for
    assert (caught.value.size, caught.value.read_whole) == (1200, False)
    assert "is more than 1000 bytes (reading stopped at 1200)" in str(caught.value)
    assert read_for_xcom(iter([b"x" * 600]), "the result", limit=1000) == b"x" * 600


def test_xcom_limit_comes_from_config(monkeypatch):
    monkeypatch.setenv("AIRFLOW__TASK_RUNS__XCOM_MAX_BYTES", "10")
    with pytest.raises(OutputTooLargeError, match="over the XCom limit of 10 bytes"):
        read_for_xcom(iter([b"01234567890"]), "the result")


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/../../b", "", "a//b"])
def test_join_destination_refuses_escapes(name, output_dir):
    with pytest.raises(ValueError, match="refusing output name"):
        join_destination(f"file://{output_dir}/", name)


def test_destination_must_be_a_uri():
    with pytest.raises(ValueError, match="not a URI"):
        write_bytes_atomically("/tmp/plain/path", b"x")


def test_folder_destinations(output_dir):
    from airflow.sdk import ObjectStoragePath

    from airflow_task_runs.core.outputs import file_destination, is_folder_destination

    assert is_folder_destination(f"file://{output_dir}/new/")
    assert not is_folder_destination(f"file://{output_dir}/new")
    assert is_folder_destination(f"file://{output_dir}")  # exists, is a folder
    # ObjectStoragePath drops the trailing "/": a last part without extension is a folder
    assert is_folder_destination(ObjectStoragePath(f"file://{output_dir}/logs/"))
    assert not is_folder_destination(ObjectStoragePath(f"file://{output_dir}/logs/run.txt"))
    target = file_destination(ObjectStoragePath(f"file://{output_dir}/logs/"), "task.log")
    assert str(target).endswith("/logs/task.log")
    assert str(file_destination(f"file://{output_dir}/x.log", "task.log")).endswith("/x.log")


def test_xcom_guard_counts_a_list_once():
    with pytest.raises(OutputTooLargeError) as caught:
        read_for_xcom([b"x" * 10, b"y" * 10], "the result", limit=15)
    assert caught.value.size == 20


def test_xcom_value_is_plain_json_and_guarded():
    import datetime as dt

    from airflow_task_runs.core.outputs import xcom_value

    when = dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)
    assert xcom_value("x", {"at": when, "n": (1, 2)}) == {"at": str(when), "n": [1, 2]}
    with pytest.raises(OutputTooLargeError, match="the listing is 21 bytes, over the XCom limit of 10"):
        xcom_value("the listing", {"k": "0123456789ab"}, limit=10)
