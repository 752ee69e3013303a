"""The one writer, against moto's real S3 server and the local file system: complete or absent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

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


def test_s3_parts_cut_across_uneven_chunks_are_byte_exact(s3_writer, store):
    data = os.urandom(17 * MIB + 3)
    step = 3 * MIB + 7  # chunks that straddle the 8 MiB part boundaries
    write_atomically(store.uri("out.bin"), (data[i : i + step] for i in range(0, len(data), step)))
    assert store.read("out.bin") == data


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


def test_s3_denied_write_names_the_uri_and_the_store_error(read_only_store):
    uri = f"s3://{read_only_store.conn_id}@{read_only_store.bucket}/out/result.bin"
    with pytest.raises(DestinationWriteError, match=r"s3://locked-bucket/out/result\.bin failed: .*Access Denied"):
        write_atomically(uri, [os.urandom(MIB)] * 9)
    assert read_only_store.keys() == []
    assert read_only_store.open_uploads() == []


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


def _write_set(uri, members: dict[str, bytes]) -> None:
    with OutputSet() as outputs:
        for name, data in members.items():
            outputs.write(uri(name), [data])


OLD_SET = {"000.bin": b"old 0", "001.bin": b"old 1", "manifest.json": b'{"set": "old"}'}


def _lose_upload(store, name: str) -> None:
    """Abort the unfinished upload to ``name`` behind its writer's back (another writer, say)."""
    uploads = store.client.list_multipart_uploads(Bucket=store.bucket)["Uploads"]
    (upload,) = [u for u in uploads if u["Key"] == f"{store.prefix}{name}"]
    store.client.abort_multipart_upload(Bucket=store.bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def test_s3_failed_set_rewrite_leaves_no_manifest_vouching_for_a_mix(s3_writer, store, no_retry_conn):
    _write_set(store.uri, OLD_SET)
    with pytest.raises(DestinationWriteError, match="no manifest vouches") as failed, OutputSet() as outputs:
        for name in OLD_SET:
            outputs.write(store.uri(name, conn=no_retry_conn), [b"new " + name.encode()])
        _lose_upload(store, "001.bin")  # publishing fails at the second member
    assert "001.bin" in str(failed.value)
    # 000.bin had been replaced (then removed): the old set is gone, and no manifest claims otherwise
    assert store.keys() == ["001.bin"]
    assert store.read("001.bin") == b"old 1"
    assert store.open_uploads() == []


def test_s3_set_rewrite_failing_before_any_member_replaced_keeps_the_old_set(s3_writer, store, no_retry_conn):
    _write_set(store.uri, OLD_SET)
    with pytest.raises(DestinationWriteError, match="nothing of this set was published"), OutputSet() as outputs:
        for name in OLD_SET:
            outputs.write(store.uri(name, conn=no_retry_conn), [b"new " + name.encode()])
        _lose_upload(store, "000.bin")  # publishing fails at the first member
    assert {name: store.read(name) for name in OLD_SET} == OLD_SET  # old manifest put back
    assert store.keys() == sorted(OLD_SET)
    assert store.open_uploads() == []


def test_s3_set_rewrite_replaces_every_member_and_the_manifest(store):
    _write_set(store.uri, OLD_SET)
    _write_set(store.uri, {"000.bin": b"new 0", "manifest.json": b'{"set": "new"}'})
    names = store.keys()
    assert {name: store.read(name) for name in names} == {
        "000.bin": b"new 0",
        "001.bin": b"old 1",  # not in the new set: left as it was (documented)
        "manifest.json": b'{"set": "new"}',
    }


def test_local_failed_set_rewrite_puts_the_old_set_back(output_dir):
    def uri(name: str) -> str:
        return f"file://{output_dir}/{name}"

    _write_set(uri, OLD_SET)
    with pytest.raises(DestinationConfigError, match="put back") as failed, OutputSet() as outputs:
        outputs.write(uri("000.bin"), [b"new 0"])
        outputs.write(uri("000b.bin"), [b"new 0b"])
        outputs.write(uri("001.bin"), [b"new 1"])
        outputs.write(uri("manifest.json"), [b'{"set": "new"}'])
        (output_dir / "000b.bin").mkdir()  # publishing the second member will fail
    assert "000b.bin is an existing folder" in str(failed.value)
    assert sorted(p.name for p in output_dir.iterdir()) == ["000.bin", "000b.bin", "001.bin", "manifest.json"]
    assert {name: (output_dir / name).read_bytes() for name in OLD_SET} == OLD_SET


def test_local_set_rewrite_leaves_only_the_new_set(output_dir):
    def uri(name: str) -> str:
        return f"file://{output_dir}/{name}"

    _write_set(uri, OLD_SET)
    new = {"000.bin": b"new 0", "001.bin": b"new 1", "manifest.json": b'{"set": "new"}'}
    _write_set(uri, new)
    assert sorted(p.name for p in output_dir.iterdir()) == sorted(new)  # no partial, previous or lock left
    assert {name: (output_dir / name).read_bytes() for name in new} == new


def test_s3_key_that_is_a_folder_is_refused(store):
    write_bytes_atomically(store.uri("item.txt/inner.txt"), b"x")
    with pytest.raises(DestinationConfigError, match="is an existing folder"):
        write_bytes_atomically(store.uri("item.txt"), b"y")
    assert store.keys() == ["item.txt/inner.txt"]
    assert store.open_uploads() == []


def _open_upload_with_a_part(store, name: str) -> str:
    """An unfinished multipart upload with one part just uploaded: what a live (or just killed) writer has."""
    key = f"{store.prefix}{name}"
    upload = store.client.create_multipart_upload(Bucket=store.bucket, Key=key)["UploadId"]
    store.client.upload_part(Bucket=store.bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"p" * MIB)
    return upload


def test_s3_rerun_aborts_only_uploads_idle_for_the_stale_age(store, monkeypatch):
    recent = _open_upload_with_a_part(store, "out.bin")
    other = store.client.create_multipart_upload(Bucket=store.bucket, Key=f"{store.prefix}out.bin.other")
    write_bytes_atomically(store.uri("out.bin"), b"fresh")  # default age (1 h): the recent upload may be live
    assert store.read("out.bin") == b"fresh"
    assert sorted(store.open_uploads()) == [f"{store.prefix}out.bin", f"{store.prefix}out.bin.other"]
    monkeypatch.setenv("AIRFLOW__TASK_RUNS__STALE_UPLOAD_AGE", "0")  # now every idle upload counts as stale
    write_bytes_atomically(store.uri("out.bin"), b"fresher")
    assert store.read("out.bin") == b"fresher"
    assert store.open_uploads() == [f"{store.prefix}out.bin.other"]  # only the exact key's uploads are touched
    with pytest.raises(store.client.exceptions.NoSuchUpload):
        store.client.list_parts(Bucket=store.bucket, Key=f"{store.prefix}out.bin", UploadId=recent)
    store.client.abort_multipart_upload(
        Bucket=store.bucket, Key=f"{store.prefix}out.bin.other", UploadId=other["UploadId"]
    )


def test_s3_second_writer_leaves_a_live_writers_upload_alone(store):
    first = os.urandom(9 * MIB)
    with OutputSet() as outputs:  # a live writer: staged, parts uploaded, not yet published
        outputs.write(store.uri("out.bin"), [first])
        write_bytes_atomically(store.uri("out.bin"), b"second writer")  # a retry next to a zombie try
        assert store.read("out.bin") == b"second writer"
    assert store.read("out.bin") == first  # the last upload completed wins; neither was broken
    assert store.open_uploads() == []


@pytest.fixture
def no_retry_conn(task_runs_connections, monkeypatch) -> str:
    """An ``aws`` connection to the emulator's S3 that tries each call once (moto answers 500, not
    NoSuchUpload, when an aborted upload is completed: retries would only add seconds)."""
    conn = task_runs_connections.aws.airflow_connection()
    conn["extra"]["config_kwargs"] = {"retries": {"mode": "standard", "max_attempts": 1}}
    monkeypatch.setenv("AIRFLOW_CONN_S3_NO_RETRY", json.dumps(conn))
    return "s3_no_retry"


@pytest.mark.parametrize("when", ["mid-stream", "at-commit"])
def test_s3_writer_whose_upload_was_aborted_as_stale_says_so(store, no_retry_conn, monkeypatch, when):
    monkeypatch.setenv("AIRFLOW__TASK_RUNS__STALE_UPLOAD_AGE", "0")

    def source():
        yield os.urandom(9 * MIB)  # one part uploaded, 1 MiB buffered
        if when == "mid-stream":
            write_bytes_atomically(store.uri("out.bin"), b"second writer")  # aborts the first's idle upload
        yield os.urandom(MIB)

    with pytest.raises(DestinationWriteError, match="may have aborted it as stale") as failed, OutputSet() as outputs:
        outputs.write(store.uri("out.bin", conn=no_retry_conn), source())
        if when == "at-commit":
            write_bytes_atomically(store.uri("out.bin"), b"second writer")
    assert f"s3://{store.bucket}/{store.prefix}out.bin" in str(failed.value)
    assert store.read("out.bin") == b"second writer"
    assert store.open_uploads() == []


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


def _start_writer(uri: str, env: dict[str, str]) -> subprocess.Popen:
    """A writer in another process that has written 9 MiB of ``uri`` and then waits (alive)."""
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, uri], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    seen = []
    for line in child.stdout:  # Airflow's logging prints to stdout too
        seen.append(line)
        if line == b"written\n":
            return child
    child.kill()
    raise AssertionError(f"the writer died before writing: {b''.join(seen).decode()[-2000:]}")


def _wait_until(condition) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the writer never got going"
        time.sleep(0.05)


def _kill_mid_write(uri: str, env: dict[str, str], wait_for) -> None:
    child = _start_writer(uri, env)
    try:
        _wait_until(wait_for)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()


def test_sigkill_mid_fetch_then_rerun_leaves_only_the_final_file(output_dir):
    uri = f"file://{output_dir}/result.bin"
    _kill_mid_write(uri, dict(os.environ), lambda: any(output_dir.glob("*.partial")))
    (stale,) = output_dir.glob("*.partial")
    assert stale.name.startswith(".result.bin.") and stale.name.endswith(".partial")
    (output_dir / ".other.bin.0123456789ab.partial").write_bytes(b"another target's, writer gone")
    (output_dir / ".notes.partial").write_bytes(b"not ours")
    write_bytes_atomically(uri, b"complete")
    assert sorted(p.name for p in output_dir.iterdir()) == [".notes.partial", "result.bin"]
    assert (output_dir / "result.bin").read_bytes() == b"complete"


def test_a_live_writers_partial_is_never_removed(output_dir):
    uri = f"file://{output_dir}/result.bin"
    child = _start_writer(uri, dict(os.environ))
    try:
        _wait_until(lambda: any(output_dir.glob("*.partial")))
        (live,) = output_dir.glob("*.partial")
        write_bytes_atomically(uri, b"a second writer of the same file")
        assert live.exists(), "a live writer's partial was removed"
        assert (output_dir / "result.bin").read_bytes() == b"a second writer of the same file"
    finally:
        child.kill()
        child.wait(timeout=30)
    write_bytes_atomically(uri, b"complete")  # now its writer is gone
    assert sorted(p.name for p in output_dir.iterdir()) == ["result.bin"]


_MANY_MEMBERS = textwrap.dedent(
    """
    import resource, sys
    from airflow_task_runs.core.outputs import OutputSet

    folder, members, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    with OutputSet() as outputs:
        for index in range(members):
            outputs.write(f"file://{folder}/{index:04d}.txt", [b"%d" % index])
    print("published", flush=True)
    """
)


def test_local_set_of_more_members_than_open_files_allowed(output_dir):
    """Members are closed once written: 1,100 members under a 256-descriptor limit (was: Errno 24)."""
    members, limit = 1100, 256
    env = {**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, "-c", _MANY_MEMBERS, str(output_dir), str(members), str(limit)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "published" in done.stdout, done.stderr[-3000:]
    names = sorted(p.name for p in output_dir.iterdir())
    assert names == [f"{index:04d}.txt" for index in range(members)]  # no partial, no lock left
    assert (output_dir / "1099.txt").read_bytes() == b"1099"


def test_sigkill_mid_upload_then_rerun_leaves_only_the_final_object(store, task_runs_connections, monkeypatch):
    env = {**os.environ, **task_runs_connections.environment()}
    _kill_mid_write(store.uri("result.bin"), env, lambda: store.open_uploads() != [])
    assert store.keys() == []  # killed: nothing visible
    monkeypatch.setenv("AIRFLOW__TASK_RUNS__STALE_UPLOAD_AGE", "0")  # as if the rerun came an hour later
    write_bytes_atomically(store.uri("result.bin"), b"complete")
    assert store.keys() == ["result.bin"]
    assert store.open_uploads() == []


class _FaultingProxy:
    """An HTTP proxy to the store that forwards every request; ``fault(method, path)`` may instead
    have it drop the answer (``"drop"``: the store did the work, the client never hears) or
    answer with ``(status, body)`` without forwarding. ``seen`` lists (method, path) in order."""

    def __init__(self, upstream: str, fault: Any) -> None:
        import http.client
        import http.server
        import threading
        import urllib.parse

        target = urllib.parse.urlsplit(upstream)
        self.seen: list[tuple[str, str]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.seen.append((self.command, self.path))
                action = fault(self.command, self.path)
                if isinstance(action, tuple):
                    status, data = action
                    headers: list[tuple[str, str]] = [("Content-Type", "application/xml")]
                else:
                    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                    conn.request(self.command, self.path, body, dict(self.headers))
                    answer = conn.getresponse()
                    status, data, headers = answer.status, answer.read(), answer.getheaders()
                    if action == "drop":
                        self.close_connection = True
                        return  # done upstream; the answer never arrives
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def _through(proxy: _FaultingProxy, task_runs_connections: Any, monkeypatch: Any, conn_id: str) -> None:
    conn = task_runs_connections.aws.airflow_connection()
    conn["extra"]["service_config"]["s3"]["endpoint_url"] = proxy.url
    conn["extra"]["config_kwargs"] = {"retries": {"mode": "standard", "max_attempts": 2}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def test_s3_create_whose_answer_is_lost_leaves_no_unfinished_upload(task_runs_connections, store, monkeypatch):
    """Each retry of a create whose answer was lost starts an upload nobody knows the id of: the
    failed write aborts them (uploads to its key, started since, without parts) before it fails."""

    def lose_creates(method: str, path: str) -> Any:
        return "drop" if method == "POST" and path.endswith("?uploads") else None

    proxy = _FaultingProxy(task_runs_connections.s3.url, lose_creates)
    try:
        _through(proxy, task_runs_connections, monkeypatch, "s3_losing")
        with pytest.raises(DestinationWriteError):
            write_atomically(store.uri("lost.bin", conn="s3_losing"), iter([os.urandom(9 * MIB)]))
    finally:
        proxy.server.shutdown()
    creates = [p for m, p in proxy.seen if m == "POST" and p.endswith("?uploads")]
    assert len(creates) >= 2, f"the store saw {len(creates)} create(s): the retries this test is about did not happen"
    assert store.keys() == [] and store.open_uploads() == [], (store.keys(), store.open_uploads())


def test_s3_part_refused_by_the_store_ends_the_write_before_the_next_part(task_runs_connections, store, monkeypatch):
    """Parts go out in the background while the source is read: a part the store refused ends
    the write at the next chunk, not parts later (at 1 TB a part is ~118 MiB), and no later part
    is sent."""
    import time

    denied = (
        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message>'
        b"<RequestId>RID-PART1</RequestId></Error>"
    )

    def refuse_part_one(method: str, path: str) -> Any:
        return (403, denied) if method == "PUT" and "partNumber=1&" in path + "&" else None

    proxy = _FaultingProxy(task_runs_connections.s3.url, refuse_part_one)
    read = []

    def source():
        for _ in range(40):  # five 8 MiB parts, 1 MiB every 30 ms
            read.append(1)
            time.sleep(0.03)
            yield os.urandom(MIB)

    try:
        _through(proxy, task_runs_connections, monkeypatch, "s3_refusing")
        with pytest.raises(DestinationWriteError, match=r"AccessDenied|Access Denied"):
            write_atomically(store.uri("refused.bin", conn="s3_refusing"), source())
    finally:
        proxy.server.shutdown()
    parts = sorted(
        {p.split("partNumber=")[1].split("&")[0] for m, p in proxy.seen if m == "PUT" and "partNumber=" in p}
    )
    assert parts == ["1"], f"parts sent after part 1 was refused: {parts}"
    assert len(read) < 16, f"{len(read)} MiB read before the refusal ended the write (part 2 would be full at 16)"
    assert store.keys() == [] and store.open_uploads() == []


def test_s3_output_of_unknown_size_grows_its_parts_to_fit_s3s_part_limit(store, monkeypatch):
    """Without a known size, parts double every PARTS_PER_SIZE parts (every 1,000: ~4 TiB within
    S3's 10,000 parts instead of 78 GiB at 8 MiB); here every 2, checked on the stored parts."""
    from airflow_task_runs.core import outputs

    monkeypatch.setattr(outputs, "PARTS_PER_SIZE", 2)
    data = os.urandom(50 * MIB + 7)
    write_atomically(store.uri("grown.bin"), (data[i : i + MIB] for i in range(0, len(data), MIB)))
    assert store.read("grown.bin") == data and store.open_uploads() == []
    sizes = [
        store.client.head_object(Bucket=store.bucket, Key=store.prefix + "grown.bin", PartNumber=n)["ContentLength"]
        for n in range(1, 6)
    ]
    assert sizes == [8 * MIB, 8 * MIB, 16 * MIB, 16 * MIB, 2 * MIB + 7], sizes


def test_local_failed_write_removes_the_folders_it_created(output_dir):
    """A failed write into folders that did not exist leaves none of them (an existing one stays)."""
    target = output_dir / "a" / "b" / "c" / "out.bin"
    with pytest.raises(OSError, match="source broke"):
        write_atomically(f"file://{target}", _failing(os.urandom(3 * MIB), OSError("source broke")))
    assert sorted(p.name for p in output_dir.rglob("*")) == [], sorted(map(str, output_dir.rglob("*")))
    assert output_dir.is_dir()


def test_local_file_name_too_long_for_its_partial_is_refused_naming_the_limit(output_dir):
    name = "r" * 240 + ".csv"  # a valid name, but the hidden partial adds 22 bytes: over 255
    with pytest.raises(DestinationConfigError, match=r"244 bytes.*at most 233 bytes fit"):
        write_bytes_atomically(f"file://{output_dir}/{name}", b"data")
    assert list(output_dir.iterdir()) == []


def test_a_scheme_fsspec_implements_itself_names_its_own_requirements_and_keeps_the_host():
    """hdfs:// needs pyarrow and a provider, not 'install fsspec' (installed already); the URI keeps its host."""
    from airflow_task_runs.core.outputs import resolve_destination

    with pytest.raises(DestinationConfigError) as caught:
        resolve_destination("hdfs://namenode/x/")
    text = str(caught.value)
    assert "'hdfs://namenode/x/'" in text and "pyarrow" in text and "install fsspec" not in text, text
