"""NclueTaskRunSensor in poke, reschedule and deferrable mode (trigger run against the emulator)."""

from __future__ import annotations

import time

import pytest
from airflow.sdk.exceptions import AirflowRescheduleException, AirflowSensorTimeout

from airflow_task_runs.core.errors import RunFailedError, TaskRunsError
from airflow_task_runs.ncp.sensors import NclueTaskRunSensor
from airflow_task_runs.testing.sensors import defer, run_trigger, task_context


@pytest.fixture
def emu(task_runs_connections):
    return task_runs_connections.ncp


def _sensor(run_id, **kwargs):
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return NclueTaskRunSensor(task_id="wait", run_id=run_id, **kwargs)


# -- poke ------------------------------------------------------------------------------------
def test_poke_mode_succeeds_and_pushes_the_final_status(emu):
    run_id = emu.add_run(lifecycle=[("registered", 1), ("in_progress", 2), ("completed", 0)])
    result = _sensor(run_id).execute(task_context())
    assert result["state"] == "SUCCEEDED"
    assert result["raw_status"] == "completed"
    assert result["details"]["run_id"] == run_id
    assert len(emu.requests_to(f"/api/v1/task-runs/{run_id}")) == 4


def test_poke_mode_fails_with_the_cloud_reason(emu):
    run_id = emu.add_run(lifecycle=[("in_progress", 1), ("failed", 0)], fail_message="feature file has 3 bad rows")
    with pytest.raises(RunFailedError, match="feature file has 3 bad rows") as caught:
        _sensor(run_id).execute(task_context())
    assert caught.value.status.raw_status == "failed"


def test_poke_mode_times_out(emu):
    run_id = emu.add_run(lifecycle=[("in_progress", 0)])
    with pytest.raises(AirflowSensorTimeout):
        _sensor(run_id, timeout=0.3).execute(task_context())


def test_state_changes_are_logged_once(emu, captured_logs):
    run_id = emu.add_run(lifecycle=[("in_progress", 5), ("completed", 0)])
    _sensor(run_id).execute(task_context())
    lines = [line for line in captured_logs().splitlines() if f"NCLUE task run {run_id} is" in line]
    assert len(lines) == 2, lines


# -- reschedule ------------------------------------------------------------------------------
def test_reschedule_mode_releases_the_worker_until_done(emu):
    run_id = emu.add_run(lifecycle=[("registered", 1), ("completed", 0)])
    with pytest.raises(AirflowRescheduleException):
        _sensor(run_id, mode="reschedule").execute(task_context())
    result = _sensor(run_id, mode="reschedule").execute(task_context())
    assert result["raw_status"] == "completed"


def test_reschedule_mode_fails_with_reason(emu):
    run_id = emu.add_run(lifecycle=[("failed", 0)], fail_message="quota exceeded")
    with pytest.raises(RunFailedError, match="quota exceeded"):
        _sensor(run_id, mode="reschedule").execute(task_context())


def test_reschedule_mode_times_out(emu):
    run_id = emu.add_run(lifecycle=[("in_progress", 0)])
    context = task_context()
    from datetime import datetime, timedelta, timezone

    context["ti"].get_first_reschedule_date.return_value = datetime.now(timezone.utc) - timedelta(seconds=60)
    with pytest.raises(AirflowSensorTimeout):
        _sensor(run_id, mode="reschedule", timeout=10).execute(context)


# -- deferrable ------------------------------------------------------------------------------
def test_deferrable_success(emu):
    run_id = emu.add_run(lifecycle=[("registered", 1), ("in_progress", 2), ("completed", 0)])
    sensor = _sensor(run_id, deferrable=True)
    method, trigger = defer(sensor, task_context())
    event = run_trigger(trigger)
    assert event["event"] == "terminal"
    result = getattr(sensor, method)(task_context(), event)
    assert result["raw_status"] == "completed"


def test_deferrable_failure_raises_the_same_error_as_poke(emu):
    run_id = emu.add_run(lifecycle=[("in_progress", 1), ("failed", 0)], fail_message="bad feature")
    sensor = _sensor(run_id, deferrable=True)
    method, trigger = defer(sensor, task_context())
    with pytest.raises(RunFailedError, match=r"NCLUE task run .* ended failed .*bad feature"):
        getattr(sensor, method)(task_context(), run_trigger(trigger))


def test_deferrable_timeout_reaches_execute_complete(emu):
    run_id = emu.add_run(lifecycle=[("in_progress", 0)])
    sensor = _sensor(run_id, deferrable=True, timeout=2)  # a cold first poll answers first
    method, trigger = defer(sensor, task_context())
    started = time.monotonic()
    event = run_trigger(trigger)
    assert time.monotonic() - started < 5
    assert event["event"] == "timeout"
    with pytest.raises(AirflowSensorTimeout, match="still in_progress"):
        getattr(sensor, method)(task_context(), event)


def test_deferrable_run_already_done_does_not_defer(emu):
    run_id = emu.add_run(lifecycle=[("completed", 0)])
    result = _sensor(run_id, deferrable=True).execute(task_context())
    assert result["raw_status"] == "completed"


def test_trigger_error_event_fails_the_task(emu):
    run_id = emu.add_run(lifecycle=[("registered", 0)])
    sensor = _sensor(run_id, deferrable=True)
    method, trigger = defer(sensor, task_context())
    del emu.runs[run_id]  # the run disappears while deferred
    event = run_trigger(trigger)
    assert event["event"] == "error"
    with pytest.raises(TaskRunsError, match="not found"):
        getattr(sensor, method)(task_context(), event)


def test_soft_fail_skips_on_failure(emu):
    from airflow.sdk.exceptions import AirflowSkipException

    run_id = emu.add_run(lifecycle=[("failed", 0)], fail_message="x")
    with pytest.raises(AirflowSkipException):
        _sensor(run_id, soft_fail=True).execute(task_context())


def test_trigger_serializes_only_primitives(emu):
    run_id = emu.add_run(lifecycle=[("registered", 0)])
    _, trigger = defer(_sensor(run_id, deferrable=True), task_context())
    _, kwargs = trigger.serialize()
    assert kwargs["hook_kwargs"] == {"ncp_conn_id": "ncp_default"}
    assert kwargs["run_ref"] == {"run_id": run_id}
    assert kwargs["status_kind"] == "task_run"


def test_templated_fields():
    assert set(NclueTaskRunSensor.template_fields) >= {"run_id"}


def test_deferrable_soft_fail_skips_a_run_that_already_failed(emu):
    from airflow.sdk.exceptions import AirflowSkipException

    run_id = emu.add_run(lifecycle=[("failed", 0)], fail_message="x")
    with pytest.raises(AirflowSkipException):
        _sensor(run_id, deferrable=True, soft_fail=True).execute(task_context())


def test_large_details_are_omitted_from_xcom_loudly(emu, monkeypatch, captured_logs):
    monkeypatch.setenv("AIRFLOW__TASK_RUNS__XCOM_MAX_BYTES", "300")
    run_id = emu.add_run(lifecycle=[("completed", 0)], x_notes="n" * 1000)
    for sensor in (_sensor(run_id), _sensor(run_id, deferrable=True)):
        result = sensor.execute(task_context())
        assert result["raw_status"] == "completed"
        assert result["details"] == {}
        assert "over [task_runs] xcom_max_bytes (300)" in result["details_omitted"]
    assert "Run details not pushed" in captured_logs()


def test_trigger_event_details_are_bounded_too(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW__TASK_RUNS__XCOM_MAX_BYTES", "300")
    run_id = emu.add_run(lifecycle=[("in_progress", 1), ("completed", 0)], x_notes="n" * 1000)
    _, trigger = defer(_sensor(run_id, deferrable=True), task_context())
    event = run_trigger(trigger)
    assert event["status"]["details"] == {}
    assert event["status"]["details_omitted"]
