"""An NCLUE result fetched object store -> s3://, side by side with a boto3 pipe and a curl GET.

Both ends are the emulator's S3 (moto's server, in this process): the NCLUE result lives in
bucket ``nclue-results``, the copy goes to ``s3://my-bucket/``. Each variant runs in a fresh
child interpreter, alternating, so noise hits all alike; every child reports the wall time of
the transfer alone and its peak RSS (``VmHWM``).

- ``baseline``: imports the operator, builds the hook and its S3 clients, transfers nothing
  (the RSS every variant pays before it moves a byte);
- ``fetch``: ``NclueFetchTaskRunResultOperator(destination="s3://my-bucket/...").execute()``
  (default: 2 parts of 8 MiB in flight); ``fetch-1``: the same with one part in flight
  (``[task_runs] upload_parts_in_flight = 1``);
- ``boto3-pipe``: a hand-written ``download_fileobj`` -> ``os.pipe`` -> ``upload_fileobj``
  (boto3's managed transfers, 10 threads each, 8 MiB parts), what one would write by hand;
- ``curl``: ``curl -o /dev/null`` GET of the same object (download only);
- ``upload-only``: boto3 ``upload_fileobj`` of the same number of bytes from memory (the
  store's ingest alone: with moto, the floor of any copy into it).

    python benchmarks/fetch_to_s3.py [SIZE_MIB] [ROUNDS] [MODES]
    # default 1024 MiB, 3 rounds, MODES=baseline,fetch,fetch-1,boto3-pipe,curl,upload-only

Not part of ``make test``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1024 * 1024

CHILD = r"""
import os, sys, time
mode, run_id, size, target, source = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
from airflow_task_runs.ncp.operators import NclueFetchTaskRunResultOperator
op = NclueFetchTaskRunResultOperator(task_id="f", run_id=run_id, destination=target)
hook = op.hook
hook.object_storage_client()
hook.object_storage_session()  # the fetch reads through this one (httpx); both built before timing
import boto3
dest = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
started = time.perf_counter()
if mode.startswith("fetch"):
    assert op.execute({})["size"] == size
elif mode == "upload-only":
    class Zeros:
        def __init__(self, n): self.left = n
        def read(self, n=-1):
            n = self.left if n < 0 else min(n, self.left)
            self.left -= n
            return bytes(n)
    dst_bucket, dst_key = target[len("s3://"):].split("/", 1)
    dest.upload_fileobj(Zeros(size), dst_bucket, dst_key)
elif mode == "boto3-pipe":
    import threading
    src_bucket, src_key = source.split("/", 1)
    dst_bucket, dst_key = target[len("s3://"):].split("/", 1)
    read_fd, write_fd = os.pipe()
    def download():
        with os.fdopen(write_fd, "wb") as sink:
            hook.object_storage_client().download_fileobj(src_bucket, src_key, sink)
    thread = threading.Thread(target=download)
    thread.start()
    with os.fdopen(read_fd, "rb") as pipe:
        dest.upload_fileobj(pipe, dst_bucket, dst_key)
    thread.join()
wall = time.perf_counter() - started
if mode != "baseline":
    bucket, key = target[len("s3://"):].split("/", 1)
    if key.endswith("/"):
        key += "result.bin"
    assert dest.head_object(Bucket=bucket, Key=key)["ContentLength"] == size
    dest.delete_object(Bucket=bucket, Key=key)
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(f"{wall:.3f} {int(hwm.split()[1]) // 1024}")
"""


def _child(mode: str, run_id: str, size: int, target: str, source: str, env: dict[str, str]) -> tuple[float, int]:
    if mode == "fetch-1":
        env = {**env, "AIRFLOW__TASK_RUNS__UPLOAD_PARTS_IN_FLIGHT": "1"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, run_id, str(size), target, source],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode:
        raise RuntimeError(f"{mode} failed:\n{out.stderr[-3000:]}")
    wall, rss = out.stdout.strip().splitlines()[-1].split()
    return float(wall), int(rss)


def _curl(url: str) -> float:
    started = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", url], check=True)
    return time.perf_counter() - started


def _put_large(emu: object, bucket: str, key: str, size: int) -> None:
    """Upload ``size`` random bytes without holding them all (multipart, 64 MiB at a time)."""
    client = emu.s3.client()  # type: ignore[attr-defined]
    emu.s3.create_bucket(bucket)  # type: ignore[attr-defined]
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)
    parts, number, left = [], 1, size
    block = os.urandom(64 * MIB)
    while left:
        body = block[: min(left, len(block))]
        etag = client.upload_part(Bucket=bucket, Key=key, PartNumber=number, UploadId=upload["UploadId"], Body=body)
        parts.append({"PartNumber": number, "ETag": etag["ETag"]})
        number, left = number + 1, left - len(body)
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )


def main() -> None:
    size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    size = size_mib * MIB
    default_modes = ["baseline", "fetch", "fetch-1", "boto3-pipe", "curl", "upload-only"]
    modes = sys.argv[3].split(",") if len(sys.argv) > 3 else default_modes
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs", flush=True)
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp())
    from airflow_task_runs.testing import Emulator

    with Emulator() as emu:
        env = {**os.environ, **emu.environment()}
        key = "results/bench/result.bin"
        _put_large(emu, "nclue-results", key, size)
        run_id = emu.ncp.add_run(lifecycle=["completed"], result_file_path=key)
        walls: dict[str, list[float]] = {mode: [] for mode in modes if mode != "baseline"}
        peaks: dict[str, list[int]] = {mode: [] for mode in modes if mode != "curl"}
        for round_no in range(rounds):
            for mode in modes:
                target = f"s3://my-bucket/bench/{round_no}/{mode}/"
                if mode in ("boto3-pipe", "upload-only"):
                    target += "result.bin"
                if mode == "curl":
                    walls[mode].append(_curl(f"{emu.s3.url}/nclue-results/{key}"))
                    continue
                wall, rss = _child(mode, run_id, size, target, f"nclue-results/{key}", env)
                peaks[mode].append(rss)
                if mode in walls:
                    walls[mode].append(wall)
                print(f"  round {round_no + 1} {mode:11s} {wall:7.2f} s  peak RSS {rss} MiB", flush=True)
            if "curl" in walls:
                print(f"  round {round_no + 1} curl        {walls['curl'][-1]:7.2f} s", flush=True)

    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")
    med = {mode: statistics.median(values) for mode, values in walls.items()}
    peak_rss = {mode: statistics.median(values) for mode, values in peaks.items()}
    print(f"\n{size_mib} MiB NCLUE result, object store -> s3:// (both moto), median of {rounds}:")
    for mode, wall in med.items():
        print(f"  {mode:11s} {wall:7.2f} s  {size_mib / wall:6.1f} MiB/s")
    for mode in ("fetch", "fetch-1"):
        for other, goal in (("boto3-pipe", "<= 1.0"), ("curl", "<= 2.0"), ("upload-only", "")):
            if mode in med and other in med:
                print(f"  {mode} / {other} = {med[mode] / med[other]:.2f}x" + (f" (goal {goal})" if goal else ""))
    if {"fetch", "upload-only", "curl"} <= med.keys():
        floor = med["upload-only"] + med["curl"]
        print(f"  fetch / (upload-only + curl) = {med['fetch'] / floor:.2f}x (the store's ingest plus its GET)")
    if "baseline" in peak_rss:
        for mode, peak in peak_rss.items():
            print(f"  peak RSS {mode:11s} {peak:5.0f} MiB (+{peak - peak_rss['baseline']:.0f} over baseline)")


if __name__ == "__main__":
    main()
