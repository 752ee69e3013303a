"""The fault matrix: every cloud against a faulty server, each fault with its one expected outcome.

A fetch either succeeds byte-exact (the same bytes as a fetch from a healthy server) or fails
with a named error (cloud, host, call) and leaves nothing at the destination. Status polls
(sync and async) fail named and bounded in time and memory. Faults are injected by the
emulator over real HTTP (:mod:`airflow_task_runs.testing.server`). A fetch SIGKILLed in a
process of its own, then rerun, leaves exactly the rerun's files (the writer's own cases, s3://
included, are in tests/storage/test_writer.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fault_clouds import CLOUDS, WRITES_WHILE_READING, CloudCase, slow_down

from airflow_task_runs.core.errors import ApiError, MalformedResponseError

PERSISTENT = 50  # more faults than any retry policy here has attempts
#: the budget used for trickling servers: retry_max_elapsed + read_timeout
TRICKLE_BUDGET = {"read_timeout": 0.3, "retry_max_elapsed": 0.1}
#: the same for fetches: an output's body (OCI fetchOutput, ROS TaskOutput) is bounded by its
#: rate over a window instead (a byte every 0.05 s is far under the default 16 KiB/s)
TRICKLE_FETCH = {**TRICKLE_BUDGET, "download_rate_window": 0.3}
TRICKLE = {"times": PERSISTENT, "delay": 0.05}  # a byte every 0.05 s: no single read ever times out
SLACK = 1.5  # scheduling on a busy machine, and the last socket operation's own time


@dataclass(frozen=True)
class FaultCase:
    name: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    #: None: succeeds byte-exact; else the error class expected
    error: type[ApiError] | None = None
    #: what the error message must say (a regular expression)
    says: str = ""
    #: the faulted call is asked exactly once (a hostile answer is not retried)
    once: bool = False
    min_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


FETCH_FAULTS = [
    FaultCase("429-retry-after", "status", {"status": 429, "headers": {"Retry-After": "1"}}, min_seconds=0.9),
    FaultCase("5xx-burst", "status", {"status": 503, "times": 3}),
    FaultCase("reset-mid-body-once", "reset_mid_body"),
    FaultCase("reset-mid-body", "reset_mid_body", {"times": PERSISTENT}, ApiError, "broke mid-answer"),
    FaultCase("truncated-once", "truncated"),
    FaultCase("truncated", "truncated", {"times": PERSISTENT}, ApiError, "broke mid-answer"),
    FaultCase("short-content-length", "short_length", {"times": PERSISTENT}, MalformedResponseError, "JSON|truncated"),
    FaultCase("long-content-length", "long_length", {"times": PERSISTENT}, ApiError, "broke mid-answer"),
    FaultCase("html-200", "html", {"times": PERSISTENT}, MalformedResponseError, "text/html page"),
    FaultCase("malformed-json", "malformed", {"times": PERSISTENT}, MalformedResponseError, "JSON"),
    FaultCase("deep-json", "deep", {}, MalformedResponseError, "deep", once=True),
    FaultCase("huge-body", "huge", {"size": 16 * 1024 * 1024}, ApiError, "over", once=True),
    FaultCase("trickling-server", "trickle", TRICKLE, ApiError, "time budget|too slow", extra=TRICKLE_FETCH),
]

STATUS_FAULTS = [
    FaultCase("reset", "reset", {"times": PERSISTENT}, ApiError, "check"),
    FaultCase("html-200", "html", {"times": PERSISTENT}, MalformedResponseError, "text/html page"),
    FaultCase("deep-json", "deep", {}, MalformedResponseError, "deep", once=True),
    FaultCase("huge-body", "huge", {"size": 16 * 1024 * 1024}, ApiError, "ResponseTooLarge", once=True),
    FaultCase("trickling-server", "trickle", TRICKLE, ApiError, "time budget", extra=TRICKLE_BUDGET),
    FaultCase(
        "trickling-headers",
        "trickle",
        {**TRICKLE, "trickle_headers": True},
        ApiError,
        "time budget",
        extra=TRICKLE_BUDGET,
    ),
]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _check_error(err: ApiError, cloud: CloudCase, fault: FaultCase, server: Any) -> None:
    assert isinstance(err, fault.error), f"{type(err).__name__}: {err}"
    text = str(err)
    assert cloud.cloud_name in text, text
    assert f"127.0.0.1:{server.port}" in text, text  # the host, always
    assert re.search(fault.says, text), text
    assert "Traceback" not in text


@pytest.fixture
def clean_faults(task_runs_connections):
    yield task_runs_connections
    for server in task_runs_connections.clouds.values():
        server.clear_faults()


@pytest.mark.parametrize("fault", FETCH_FAULTS, ids=[f.name for f in FETCH_FAULTS])
@pytest.mark.parametrize("cloud", CLOUDS, ids=[c.name for c in CLOUDS])
def test_fetch(cloud: CloudCase, fault: FaultCase, clean_faults, monkeypatch, tmp_path):
    emu = clean_faults
    server = cloud.server(emu)
    ref = cloud.prepare(emu)
    faulty = tmp_path / "faulty"
    faulty.mkdir()
    conn_id = cloud.connection(emu, monkeypatch, **fault.extra)
    server.reset_log()
    server.inject(fault.kind, **cloud.fetch_fault_target(ref), **cloud.adapt(fault.options))
    started = time.monotonic()
    if fault.error is None:
        cloud.fetch(conn_id, ref, faulty)
        files = _files(faulty)
        cloud.check_healthy(files, ref)  # byte-exact
        assert sorted(files) == cloud.file_names(ref)  # and nothing else (no partials)
        if "Retry-After" in fault.options.get("headers", {}) and cloud.name != "aws":  # AWS: x-amz-retry-after
            assert time.monotonic() - started >= fault.min_seconds
        return
    with pytest.raises(ApiError) as caught:
        cloud.fetch(conn_id, ref, faulty)
    elapsed = time.monotonic() - started
    _check_error(caught.value, cloud, fault, server)
    assert list(faulty.rglob("*")) == [], "a failed fetch left something at the destination"
    if fault.once:
        assert len(cloud.faulted_requests(server, ref)) == 1, "a hostile answer must not be asked again"
    if fault.extra is TRICKLE_FETCH:  # the budget for the exchange, one rate window for the body
        assert elapsed <= sum(TRICKLE_FETCH.values()) + SLACK + cloud.setup_seconds, f"took {elapsed:.1f} s"


STATUS_CASES = [
    pytest.param(cloud, mode, fault, id=f"{cloud.name}-{mode}-{fault.name}")
    for cloud in CLOUDS
    for mode in ("sync", "async")
    for fault in STATUS_FAULTS
    if (mode, fault.name) not in cloud.unbounded  # said in the README
]


@pytest.mark.parametrize(("cloud", "mode", "fault"), STATUS_CASES)
def test_status(cloud: CloudCase, mode: str, fault: FaultCase, clean_faults, monkeypatch):
    emu = clean_faults
    server = cloud.server(emu)
    ref = cloud.prepare(emu)
    conn_id = cloud.connection(emu, monkeypatch, **fault.extra)
    server.reset_log()
    server.inject(fault.kind, **cloud.status_fault_target(ref), **cloud.adapt(fault.options))
    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        if mode == "sync":
            cloud.status(conn_id, ref)
        else:
            asyncio.run(cloud.astatus(conn_id, ref))
    elapsed = time.monotonic() - started
    _check_error(caught.value, cloud, fault, server)
    if fault.once:
        assert len(cloud.faulted_requests(server, ref, status=True)) == 1
    if fault.extra is TRICKLE_BUDGET:
        assert elapsed <= sum(TRICKLE_BUDGET.values()) + SLACK + cloud.setup_seconds, f"took {elapsed:.1f} s"


def test_healthy_fetches_are_what_the_clouds_hold(clean_faults, monkeypatch, tmp_path):
    """A healthy fetch writes the cloud's content, byte for byte (what the matrix compares against)."""
    for cloud in CLOUDS:
        ref = cloud.prepare(clean_faults)
        folder = tmp_path / cloud.name
        folder.mkdir()
        cloud.fetch(cloud.connection(clean_faults, monkeypatch), ref, folder)
        cloud.check_healthy(_files(folder), ref)


_KILLED_FETCH = """
import json, sys
sys.path.insert(0, sys.argv[1])
from fault_clouds import CLOUDS
from pathlib import Path
cloud = next(c for c in CLOUDS if c.name == sys.argv[2])
cloud.fetch(sys.argv[3], json.loads(sys.argv[4]), Path(sys.argv[5]))
print("finished", flush=True)
"""


@pytest.mark.parametrize("cloud", CLOUDS, ids=[c.name for c in CLOUDS])
def test_sigkill_mid_fetch_then_rerun_leaves_exactly_the_output(cloud: CloudCase, clean_faults, monkeypatch, tmp_path):
    """A fetch killed with SIGKILL (OOM, eviction) mid-way shows nothing complete; its rerun leaves
    exactly the output, byte-exact, with no partial, lock or other leftover."""
    emu = clean_faults
    server = cloud.server(emu)
    folder = tmp_path / "out"
    folder.mkdir()
    conn_id = cloud.connection(emu, monkeypatch)
    ref = slow_down(cloud, emu, cloud.prepare(emu))
    server.reset_log()
    ids = {k: v for k, v in ref.items() if isinstance(v, str)}
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _KILLED_FETCH,
            str(Path(__file__).parent),
            cloud.name,
            conn_id,
            json.dumps(ids),
            str(folder),
        ],
        env={**os.environ, **emu.environment()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # mid-write: a partial on disk; ROS (reads its answer whole first): mid-answer
            assert child.poll() is None, "the fetch ended before it was killed: " + child.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the fetch never got going"
            if cloud.name in WRITES_WHILE_READING:
                if any(folder.glob(".*.partial")):
                    break
            elif (fetching := [r for r in server.requests if r.answered is None]) and (
                time.monotonic() - fetching[-1].at > 0.3  # well into an answer trickled over seconds
            ):
                break
            time.sleep(0.002)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        if cloud.name not in WRITES_WHILE_READING:  # else the kill came after the answer: it proves nothing
            assert fetching[-1].answered is None, "the answer was complete before the kill"
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    left = sorted(p.name for p in folder.iterdir())
    assert all(name.startswith(".") for name in left), f"killed mid-fetch, yet visible: {left}"
    if cloud.name in WRITES_WHILE_READING:
        assert any(name.endswith(".partial") for name in left), left  # what the rerun must clean
    server.clear_faults()

    cloud.fetch(conn_id, ref, folder)

    files = _files(folder)
    assert sorted(files) == cloud.file_names(ref), sorted(files)  # no partial, no lock, nothing else
    cloud.check_healthy(files, ref)
