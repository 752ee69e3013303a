"""The one writer, against moto's real S3 server and the local file system: complete or absent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from airflow_task_runs.core.errors import DestinationConfigError, DestinationWriteError, OutputIntegrityError
from airflow_task_runs.core.outputs import OutputSet, write_atomically, write_bytes_atomically

MIB = 1024 * 1024


@pytest.fixture(params=["s3-multipart", "fsspec-file"])
def s3_writer(request, monkeypatch):
    """Both object-store writers on s3://: the concurrent multipart one, and the generic fsspec file
    (what gs://, abfs://, ... use), forced onto s3fs so it is tested against a real store too."""
    from airflow_task_runs.core import outputs

    if request.param == "fsspec-file":
        monkeypatch.setattr(outputs, "_S3Staged", outputs._StoreStaged)
    return request.param


def _failing(data: bytes, error: Exception):
    """A source that delivers ``data`` in 1 MiB chunks, then fails like a dropped connection."""
    for start in range(0, len(data), MIB):
        yield data[start : start + MIB]
    raise error


@pytest.mark.parametrize("size", [0, 5, 3 * MIB, 17 * MIB + 3], ids=["empty", "tiny", "one-part", "three-parts"])
@pytest.mark.parametrize("form", ["default-chain", "conn@"])
def test_s3_write_is_byte_exact(s3_writer, store, size, form):
    data = os.urandom(size)
    uri = write_bytes_atomically(store.uri("out.bin", conn="aws_default" if form == "conn@" else ""), data)
    assert uri == f"s3://{store.bucket}/{store.prefix}out.bin"  # no conn_id@ in what is reported
    assert store.read("out.bin") == data
    assert store.keys() == ["out.bin"]
    assert store.open_uploads() == []


@pytest.mark.parametrize("sent", [100, 9 * MIB], ids=["before-first-part", "after-a-part"])
def test_s3_failure_mid_stream_leaves_no_object_no_partial_no_upload(s3_writer, store, sent):
    with pytest.raises(ConnectionError, match="dropped"):
        write_atomically(store.uri("out.bin"), _failing(os.urandom(sent), ConnectionError("dropped")))
    store.assert_nothing()


def test_s3_size_mismatch_leaves_nothing(s3_writer, store):
    with pytest.raises(OutputIntegrityError, match="received 10485760 bytes but the source declared 10485761"):
        write_atomically(store.uri("out.bin"), [b"x" * 10 * MIB], expected_size=10 * MIB + 1)
    store.assert_nothing()


def test_s3_failed_rewrite_keeps_the_old_object(s3_writer, store):
    write_bytes_atomically(store.uri("out.txt"), b"old and complete")
    with pytest.raises(TimeoutError):
        write_atomically(store.uri("out.txt"), _failing(b"new" * MIB, TimeoutError("read timed out")))
    assert store.read("out.txt") == b"old and complete"
    assert store.open_uploads() == []


def test_s3_missing_bucket_names_the_uri_and_the_store_error(task_runs_connections):
    with pytest.raises(DestinationWriteError, match=r"s3://no-such-bucket-x/out.bin.*bucket does not exist"):
        write_bytes_atomically("s3://no-such-bucket-x/out.bin", b"data")


def test_s3_output_set_is_all_or_nothing(s3_writer, store):
    with pytest.raises(ConnectionError), OutputSet() as outputs:
        outputs.write(store.uri("000.bin"), [os.urandom(9 * MIB)])
        assert store.keys() == []  # written, but not visible before the set is complete
        outputs.write(store.uri("001.bin"), _failing(os.urandom(MIB), ConnectionError("dropped")))
    store.assert_nothing()
    with OutputSet() as outputs:
        outputs.write(store.uri("000.bin"), [b"a"])
        outputs.write(store.uri("manifest.json"), [b"{}"])
    assert store.keys() == ["000.bin", "manifest.json"]


def test_s3_key_that_is_a_folder_is_refused(store):
    write_bytes_atomically(store.uri("item.txt/inner.txt"), b"x")
    with pytest.raises(DestinationConfigError, match="is an existing folder"):
        write_bytes_atomically(store.uri("item.txt"), b"y")
    assert store.keys() == ["item.txt/inner.txt"]
    assert store.open_uploads() == []


def test_s3_rerun_aborts_the_upload_a_killed_writer_left(store):
    key = f"{store.prefix}out.bin"
    store.client.create_multipart_upload(Bucket=store.bucket, Key=key)
    other = store.client.create_multipart_upload(Bucket=store.bucket, Key=key + ".other")
    write_bytes_atomically(store.uri("out.bin"), b"fresh")
    assert store.read("out.bin") == b"fresh"
    assert store.open_uploads() == [key + ".other"]  # only the exact key's uploads are touched
    store.client.abort_multipart_upload(Bucket=store.bucket, Key=key + ".other", UploadId=other["UploadId"])


def test_local_folder_named_like_the_file_is_refused(output_dir):
    (output_dir / "item.txt").mkdir()
    with pytest.raises(DestinationConfigError, match="is an existing folder"):
        write_bytes_atomically(f"file://{output_dir}/item.txt", b"x")
    assert [p.name for p in output_dir.rglob("*")] == ["item.txt"]


def test_local_output_set_is_all_or_nothing(output_dir):
    with pytest.raises(ConnectionError), OutputSet() as outputs:
        outputs.write(f"file://{output_dir}/000.bin", [b"good"])
        outputs.write(f"file://{output_dir}/001.bin", _failing(b"bad", ConnectionError("dropped")))
    assert list(output_dir.iterdir()) == []


def test_failure_before_anything_was_created_logs_no_cleanup_noise(output_dir, task_runs_connections, captured_logs):
    (output_dir / "a-file").write_bytes(b"")
    with pytest.raises(DestinationWriteError, match=r"a-file/x\.bin"):
        write_bytes_atomically(f"file://{output_dir}/a-file/x.bin", b"x")
    with pytest.raises(DestinationWriteError, match="no-such-bucket-y"):
        write_bytes_atomically("s3://no-such-bucket-y/x.bin", b"x")
    logs = captured_logs()
    assert "Could not" not in logs and "Traceback" not in logs, logs


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from airflow_task_runs.core.outputs import write_atomically

    def chunks():
        yield b"x" * (9 * 1024 * 1024)
        print(flush=True)
        print("written", flush=True)
        time.sleep(600)

    write_atomically(sys.argv[1], chunks())
    """
)


def _kill_mid_write(uri: str, env: dict[str, str], wait_for) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, uri], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        seen = []
        for line in child.stdout:  # Airflow's logging prints to stdout too
            seen.append(line)
            if line == b"written\n":
                break
        else:
            raise AssertionError(f"the writer died before writing: {b''.join(seen).decode()[-2000:]}")
        deadline = time.monotonic() + 30
        while not wait_for():
            assert time.monotonic() < deadline, "the writer never got going"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()


def test_sigkill_mid_fetch_then_rerun_leaves_only_the_final_file(output_dir):
    uri = f"file://{output_dir}/result.bin"
    _kill_mid_write(uri, dict(os.environ), lambda: any(output_dir.iterdir()))
    (stale,) = output_dir.iterdir()
    assert stale.name.startswith(".result.bin.") and stale.name.endswith(".partial")
    (output_dir / ".other.bin.0123456789ab.partial").write_bytes(b"another target's")
    write_bytes_atomically(uri, b"complete")
    assert sorted(p.name for p in output_dir.iterdir()) == [".other.bin.0123456789ab.partial", "result.bin"]
    assert (output_dir / "result.bin").read_bytes() == b"complete"


def test_sigkill_mid_upload_then_rerun_leaves_only_the_final_object(store, task_runs_connections):
    env = {**os.environ, **task_runs_connections.environment()}
    _kill_mid_write(store.uri("result.bin"), env, lambda: store.open_uploads() != [])
    assert store.keys() == []  # killed: nothing visible
    write_bytes_atomically(store.uri("result.bin"), b"complete")
    assert store.keys() == ["result.bin"]
    assert store.open_uploads() == []
