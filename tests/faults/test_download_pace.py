"""Output downloads are bounded by progress, not by the request's time budget (review #10).

A status poll ends within ``retry_max_elapsed + read_timeout`` (the fault matrix). An output's
body (OCI fetchOutput, ROS GetAITask with TaskOutput) may take longer on a slow but steady link,
as long as it brings ``download_min_rate`` bytes a second over each ``download_rate_window``;
under that rate it fails within one window, named.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from fault_clouds import OciCase, RosCase
from test_fault_matrix import SLACK

from airflow_task_runs.core.errors import ApiError

#: a request budget of 0.6 s; the body must bring 2 KiB/s over each 1 s window
PACE = {"read_timeout": 0.5, "retry_max_elapsed": 0.1, "download_min_rate": 2048, "download_rate_window": 1.0}
BUDGET = PACE["read_timeout"] + PACE["retry_max_elapsed"]
#: steady and slow: the whole output takes over a second (well past the budget), at 15x+ the minimum
STEADY = {"oci": {"trickle_bytes": 4096, "delay": 0.02}, "alibaba": {"trickle_bytes": 2048, "delay": 0.03}}
#: a byte every 0.05 s: 20 bytes/s, far under the minimum, yet no read ever waits read_timeout
CRAWL = {"trickle_bytes": 1, "delay": 0.05}
CASES = [OciCase(), RosCase()]


@pytest.fixture
def clean_faults(task_runs_connections):
    yield task_runs_connections
    for server in task_runs_connections.clouds.values():
        server.clear_faults()


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _faulted(cloud: Any, emu: Any, monkeypatch: Any, trickle: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ref = cloud.prepare(emu)
    conn_id = cloud.connection(emu, monkeypatch, **PACE)
    cloud.server(emu).inject("trickle", times=50, **cloud.fetch_fault_target(ref), **trickle)
    return conn_id, ref


@pytest.mark.parametrize("cloud", CASES, ids=[c.name for c in CASES])
def test_a_steady_slow_download_outlasts_the_budget_and_succeeds(cloud, clean_faults, monkeypatch, tmp_path):
    conn_id, ref = _faulted(cloud, clean_faults, monkeypatch, STEADY[cloud.name])
    started = time.monotonic()
    cloud.fetch(conn_id, ref, tmp_path)
    elapsed = time.monotonic() - started
    files = _files(tmp_path)
    cloud.check_healthy(files, ref)  # byte-exact
    assert sorted(files) == cloud.file_names(ref)
    assert elapsed > 1.5 * BUDGET, f"took {elapsed:.2f} s: the trickle did not outlast the {BUDGET} s budget"


async def _ros_output_async(conn_id: str, ai_task_id: str) -> Any:
    """GetAITask with its TaskOutput through the async client (the triggerer's transport)."""
    from airflow_task_runs.alibaba.hooks import RosHook

    hook = RosHook(alibaba_ros_conn_id=conn_id)
    try:
        return await hook.aget_ai_task(ai_task_id, output=True)
    finally:
        await hook.aclose()


def test_async_answer_with_an_output_is_paced_too(clean_faults, monkeypatch):
    cloud = RosCase()
    conn_id, ref = _faulted(cloud, clean_faults, monkeypatch, STEADY["alibaba"])

    started = time.monotonic()
    task = asyncio.run(_ros_output_async(conn_id, ref["task_id"]))
    assert time.monotonic() - started > 1.5 * BUDGET
    assert task.TaskOutput == ref["output"]


def test_async_answer_under_the_minimum_rate_fails_within_a_window(clean_faults, monkeypatch):
    """The async transport (aiohttp) applies the same pace: a crawl ends within a window, named."""
    cloud = RosCase()
    conn_id, ref = _faulted(cloud, clean_faults, monkeypatch, CRAWL)

    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        asyncio.run(_ros_output_async(conn_id, ref["task_id"]))
    elapsed = time.monotonic() - started
    text = str(caught.value)
    assert "download_min_rate=2048 bytes/s" in text and "download_rate_window=1 s" in text, text
    assert not caught.value.retryable
    assert elapsed <= BUDGET + PACE["download_rate_window"] + SLACK, f"took {elapsed:.1f} s"


@pytest.mark.parametrize("cloud", CASES, ids=[c.name for c in CASES])
def test_a_download_under_the_minimum_rate_fails_within_a_window(cloud, clean_faults, monkeypatch, tmp_path):
    conn_id, ref = _faulted(cloud, clean_faults, monkeypatch, CRAWL)
    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        cloud.fetch(conn_id, ref, tmp_path)
    elapsed = time.monotonic() - started
    text = str(caught.value)
    assert "download_min_rate=2048 bytes/s" in text and "download_rate_window=1 s" in text, text
    assert cloud.cloud_name in text and "127.0.0.1:" in text, text
    assert not caught.value.retryable  # the link stays slow: Airflow's retries decide, not a tight loop
    assert list(tmp_path.rglob("*")) == [], "a failed fetch left something at the destination"
    assert elapsed <= BUDGET + PACE["download_rate_window"] + SLACK + cloud.setup_seconds, f"took {elapsed:.1f} s"


def test_an_endless_fast_output_is_cut_at_max_output_bytes_leaving_nothing(clean_faults, monkeypatch, tmp_path):
    """Fast enough for any pace, and never ending: only the connection's max_output_bytes stops it."""
    from airflow_task_runs.core.errors import OutputOverCapError

    cloud = OciCase()
    ref = cloud.prepare(clean_faults)
    conn_id = cloud.connection(clean_faults, monkeypatch, max_output_bytes=2 * 1024 * 1024)
    server = cloud.server(clean_faults)
    server.inject("huge", times=5, size=256 * 1024 * 1024, in_value=True, **cloud.fetch_fault_target(ref))
    with pytest.raises(OutputOverCapError) as caught:
        cloud.fetch(conn_id, ref, tmp_path)
    text = str(caught.value)
    assert "max_output_bytes=2097152" in text and repr(conn_id) in text and "nothing was written" in text, text
    assert list(tmp_path.rglob("*")) == [], "a refused fetch left something at the destination"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("download_min_rate", 0),
        ("download_rate_window", -1),
        ("read_timeout", "soon"),
        ("max_output_bytes", 1.5),
        ("max_response_bytes", "4MB"),
        ("max_response_bytes", 0),
    ],
)
def test_a_bound_that_cannot_work_is_refused_naming_the_connection_and_key(clean_faults, monkeypatch, key, value):
    """A zero rate would let any trickle through, a negative window never roll: refused, not silently off."""
    from airflow_task_runs.core.errors import ConnectionConfigError

    cloud = OciCase()
    ref = cloud.prepare(clean_faults)
    conn_id = cloud.connection(clean_faults, monkeypatch, **{key: value})
    with pytest.raises(ConnectionConfigError) as caught:
        cloud.status(conn_id, ref)
    text = str(caught.value)
    assert f"Connection {conn_id!r}: extra.{key} is {value!r}" in text and "set a" in text, text
