"""NclueHook against the emulator: pagination, statuses, errors, connection checks."""

from __future__ import annotations

import json
import re

import pytest

from airflow_task_runs.core.errors import ApiError, ConnectionConfigError
from airflow_task_runs.core.states import RunState
from airflow_task_runs.ncp.hooks import NclueHook


@pytest.fixture
def emu(task_runs_connections):
    return task_runs_connections.ncp


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("registered", RunState.PENDING),
        ("pending", RunState.PENDING),
        ("in_progress", RunState.RUNNING),
        ("completed", RunState.SUCCEEDED),
        ("complete", RunState.SUCCEEDED),
        ("failed", RunState.FAILED),
    ],
)
def test_every_status_maps(emu, raw, state):
    run_id = emu.add_run(lifecycle=[(raw, 0)], fail_message="boom" if raw == "failed" else None)
    status = NclueHook().get_status(run_id)
    assert status.state is state
    assert status.raw_status == raw
    assert status.details["run_id"] == run_id
    assert status.request_id  # the gateway's trace id, for support tickets
    if raw == "failed":
        assert status.message == "boom"


async def test_async_twin_reads_the_same_status(emu):
    run_id = emu.add_run(lifecycle=[("in_progress", 0)])
    hook = NclueHook()
    try:
        status = await hook.aget_status(run_id)
    finally:
        await hook.aclose()
    assert status.state is RunState.RUNNING


def test_pagination_reads_every_run(emu):
    before = NclueHook().list_task_runs(limit=1).total
    created = {emu.add_run(lifecycle=[("completed", 0)]) for _ in range(230)}
    emu.reset_log()
    runs = list(NclueHook().iter_task_runs(page_size=100))
    ids = [r.run_id for r in runs]
    assert len(ids) == before + 230 == len(set(ids))
    assert created <= set(ids)
    pages = emu.requests_to("/api/v1/task-runs", "GET")
    assert [p.query["index"] for p in pages] == [str(i) for i in range(0, before + 230, 100)]


async def test_async_pagination(emu):
    emu.add_run(lifecycle=[("completed", 0)])
    hook = NclueHook()
    total = (await hook.alist_task_runs(limit=1)).total
    seen = [run.run_id async for run in hook.aiter_task_runs(page_size=7)]
    await hook.aclose()
    assert len(seen) == total


@pytest.mark.parametrize("limit", [0, 101, -1])
def test_limit_is_validated_before_any_request(emu, limit):
    with pytest.raises(ValueError, match="limit must be an integer from 1 to 100"):
        NclueHook().list_task_runs(limit=limit)


def test_unknown_run_fails_with_the_cloud_message(emu):
    with pytest.raises(ApiError) as caught:
        NclueHook().get_task_run("no-such-run")
    assert caught.value.status_code == 404
    assert "task run no-such-run not found" in str(caught.value)
    assert caught.value.request_id  # the trace id the gateway sent back


def test_wrong_secret_is_a_401_with_gateway_code(emu, monkeypatch):
    conn = emu.airflow_connection()
    conn["password"] = "not-the-secret"
    monkeypatch.setenv("AIRFLOW_CONN_NCP_BAD", json.dumps(conn))
    with pytest.raises(ApiError) as caught:
        NclueHook(ncp_conn_id="ncp_bad").list_task_runs()
    assert caught.value.status_code == 401
    assert caught.value.code == "200"
    assert "not-the-secret" not in str(caught.value)
    ok, message = NclueHook(ncp_conn_id="ncp_bad").test_connection()
    assert not ok
    assert "401" in message


def test_test_connection_succeeds(emu):
    ok, message = NclueHook().test_connection()
    assert ok, message
    assert emu.url in message


@pytest.mark.parametrize(
    ("drop", "field"),
    [("login", "Access Key ID (login)"), ("password", "Secret Key (password)")],
)
def test_missing_connection_field_is_named(emu, monkeypatch, drop, field):
    conn = emu.airflow_connection()
    conn.pop(drop)
    monkeypatch.setenv("AIRFLOW_CONN_NCP_MISSING", json.dumps(conn))
    with pytest.raises(ConnectionConfigError, match=re.escape(field)) as caught:
        NclueHook(ncp_conn_id="ncp_missing").list_task_runs()
    assert "ncp_missing" in str(caught.value)


def test_malformed_extra_is_reported(emu, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_NCP_EXTRA",
        json.dumps({**emu.airflow_connection(), "extra": {"object_storage_region": "mars-1"}}),
    )
    hook = NclueHook(ncp_conn_id="ncp_extra")
    with pytest.raises(ConnectionConfigError, match="object_storage_region"):
        hook.object_storage_client()


def test_host_without_scheme_defaults_to_https(emu, monkeypatch):
    conn = emu.airflow_connection()
    conn["host"] = "nclue.example.internal"
    monkeypatch.setenv("AIRFLOW_CONN_NCP_HOST", json.dumps(conn))
    hook = NclueHook(ncp_conn_id="ncp_host")
    assert hook.api_url(hook.connection) == "https://nclue.example.internal"


def test_no_secret_in_logs(emu, captured_logs, mocker):
    from airflow_task_runs.ncp.operators import NclueFetchTaskRunResultOperator
    from airflow_task_runs.ncp.sensors import NclueTaskRunSensor

    run_id = emu.add_run(lifecycle=[("in_progress", 1), ("completed", 0)], result=b"x\n")
    emu.inject("status", status=503, match="/api/v1/task-runs/")
    NclueTaskRunSensor(task_id="w", run_id=run_id, poke_interval=0.01).execute({"ti": mocker.MagicMock()})
    NclueFetchTaskRunResultOperator(task_id="f", run_id=run_id).execute({})
    text = captured_logs()
    assert "503" in text  # the retry was logged...
    assert emu.secret_key not in text  # ...without the secret


def test_models_keep_unknown_fields_and_check_known_types():
    from pydantic import ValidationError

    from airflow_task_runs.ncp.models import TaskRun

    run = TaskRun.model_validate({"run_id": "r", "status": "completed", "gpu_hours": 3})
    assert run.model_dump()["gpu_hours"] == 3
    with pytest.raises(ValidationError, match="line_count"):
        TaskRun.model_validate({"run_id": "r", "status": "completed", "line_count": "many"})


def test_malformed_run_body_is_a_clear_error(emu):
    from airflow_task_runs.core.errors import MalformedResponseError

    run_id = emu.add_run(lifecycle=[("completed", 0)])
    emu.inject("malformed", body=b'{"run_id": "x", "line_count": "lots"}', match=f"/api/v1/task-runs/{run_id}")
    with pytest.raises(MalformedResponseError, match=r"not a TaskRun .*status: Field required") as caught:
        NclueHook().get_task_run(run_id)
    assert caught.value.cloud == "NCP NCLUE"
    assert f"GET http://127.0.0.1:{emu.port}/api/v1/task-runs/{run_id}" in str(caught.value)


def test_the_look_up_by_name_reads_a_bounded_number_of_pages(emu, monkeypatch):
    """A create's lost answer is looked up by name; a list that never seems to end must not page for ever."""
    from airflow_task_runs.core.errors import CreateOutcomeUnknownError

    for _ in range(250):
        emu.add_run(lifecycle=[("completed", 0)])
    monkeypatch.setattr(NclueHook, "MAX_LOOKUP_PAGES", 2)
    emu.reset_log()
    with pytest.raises(CreateOutcomeUnknownError, match="read 2 pages of 100 runs"):
        NclueHook().find_task_runs("no-such-run")
    assert len(emu.requests_to("/api/v1/task-runs", "GET")) == 3  # two pages read, the third refused
