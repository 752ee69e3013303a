"""Both OCI status tables, every status, in poke, reschedule and deferrable mode (against the emulator)."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowRescheduleException, AirflowSkipException

from airflow_task_runs.core.errors import RunFailedError
from airflow_task_runs.oci.sensors import OciMlflowRunSensor, OciTaskRunSensor
from airflow_task_runs.testing.oci import PLATFORM_ID, WORKSPACE_KEY
from airflow_task_runs.testing.sensors import run_sensor, task_context

TASK_RUN = {
    "PENDING": "pending",
    "QUEUED": "pending",
    "BLOCKED": "pending",
    "PAUSED_MAINTENANCE": "pending",
    "RUNNING": "pending",
    "CANCELING": "pending",
    "SUCCESS": "success",
    "FAILED": "failed",
    "INTERNAL_ERROR": "failed",
    "UPSTREAM_FAILED": "failed",
    "TIMED_OUT": "failed",
    "CANCELED": "failed",
    "UPSTREAM_CANCELED": "failed",
    "SKIPPED": "skipped",
    "EXCLUDED": "skipped",
}
MLFLOW = {
    "SCHEDULED": "pending",
    "RUNNING": "pending",
    "FINISHED": "success",
    "FAILED": "failed",
    "INTERNAL_ERROR": "failed",
    "KILLED": "failed",
}
MODES = ("poke", "reschedule", "deferrable")


@pytest.fixture
def emu(task_runs_connections):
    return task_runs_connections.oci


def _sensor(kind, ref, mode):
    kwargs = {"task_id": "wait", "poke_interval": 0.05, "timeout": 30}
    if mode == "reschedule":
        kwargs["mode"] = "reschedule"
    if mode == "deferrable":
        kwargs["deferrable"] = True
    if kind == "task":
        return OciTaskRunSensor(
            ai_data_platform_id=PLATFORM_ID, workspace_key=WORKSPACE_KEY, task_run_key=ref, **kwargs
        )
    return OciMlflowRunSensor(ai_data_platform_id=PLATFORM_ID, workspace_key=WORKSPACE_KEY, run_id=ref, **kwargs)


def _cases(table):
    return [(status, outcome, mode) for status, outcome in table.items() for mode in MODES]


@pytest.mark.parametrize(("status", "outcome", "mode"), _cases(TASK_RUN))
def test_task_run_status(emu, mocker, status, outcome, mode):
    steps = [("QUEUED", 1), ("RUNNING", 1), (status, 0)] if outcome != "pending" else [(status, 0)]
    key = emu.add_task_run(lifecycle=steps, state_message=f"why {status}", error_trace="Traceback: line 1")
    sensor = _sensor("task", key, mode)
    _check(sensor, task_context(), status, outcome, f"why {status}")


@pytest.mark.parametrize(("status", "outcome", "mode"), _cases(MLFLOW))
def test_mlflow_run_status(emu, mocker, status, outcome, mode):
    steps = [("SCHEDULED", 1), ("RUNNING", 1), (status, 0)] if outcome != "pending" else [(status, 0)]
    run_id = emu.add_experiment_run(lifecycle=steps, metrics={"acc": 0.9})
    _check(_sensor("mlflow", run_id, mode), task_context(), status, outcome, f"ended {status}")


def _check(sensor, context, status, outcome, reason):
    if outcome == "pending":
        if sensor.mode == "reschedule":
            # Not terminal: every poke asks to be rescheduled. A generous timeout, so that a slow
            # first poke on a loaded machine is not taken for the sensor's own timeout.
            sensor.timeout = 60
            with pytest.raises(AirflowRescheduleException):
                sensor.execute(context)
            return
        from airflow.sdk.exceptions import AirflowSensorTimeout

        sensor.timeout = 0.3
        with pytest.raises(AirflowSensorTimeout):
            run_sensor(sensor, context)
        return
    if outcome == "success":
        result = run_sensor(sensor, context)
        assert result["raw_status"] == status and result["state"] == "SUCCEEDED"
    elif outcome == "skipped":
        with pytest.raises(AirflowSkipException, match=status):
            run_sensor(sensor, context)
    else:
        with pytest.raises(RunFailedError) as caught:
            run_sensor(sensor, context)
        assert caught.value.status.raw_status == status
        assert reason in str(caught.value)
        if isinstance(sensor, OciTaskRunSensor):
            assert "Traceback: line 1" in str(caught.value)


def test_sensor_pushes_its_console_link(emu, mocker):
    key = emu.add_task_run(lifecycle=["SUCCESS"])
    context = task_context()
    _sensor("task", key, "poke").execute(context)
    pushed = {c.kwargs["key"]: c.kwargs["value"] for c in context["ti"].xcom_push.call_args_list}
    url = pushed["_link_OciTaskRunLink"]
    assert url.startswith("https://cloud.oracle.com/ai-data-platform/") and key in url and "region=us-ashburn-1" in url
