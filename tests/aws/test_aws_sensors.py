"""HealthOmics sensors in poke, reschedule and deferrable mode (the trigger runs the async client)."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowRescheduleException, AirflowSensorTimeout

from airflow_task_runs.aws.sensors import HealthOmicsRunSensor, HealthOmicsRunTaskSensor
from airflow_task_runs.core.errors import RunFailedError, TaskRunsError
from airflow_task_runs.testing.sensors import defer, run_trigger, task_context


@pytest.fixture
def emu(task_runs_connections):
    emu = task_runs_connections.aws
    emu.reset_log()
    return emu


def _task_sensor(run_id, run_task_id, **kwargs):
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return HealthOmicsRunTaskSensor(task_id="wait_task", run_id=run_id, run_task_id=run_task_id, **kwargs)


def _run_sensor(run_id, **kwargs):
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return HealthOmicsRunSensor(task_id="wait_run", run_id=run_id, **kwargs)


# -- poke ------------------------------------------------------------------------------------
def test_task_sensor_poke_succeeds_with_the_run_uuid(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    task_id = emu.add_task(run_id, lifecycle=[("PENDING", 1), ("STARTING", 1), ("RUNNING", 1), ("COMPLETED", 0)])
    context = task_context()
    result = _task_sensor(run_id, task_id).execute(context)
    assert (result["state"], result["raw_status"]) == ("SUCCEEDED", "COMPLETED")
    assert result["details"]["runUuid"] == emu.runs[run_id].run_uuid
    assert result["details"]["taskId"] == task_id
    assert len(emu.requests_to(f"/run/{run_id}/task/{task_id}")) == 4
    pushed = {c.kwargs["key"]: c.kwargs["value"] for c in context["ti"].xcom_push.call_args_list}
    assert pushed["_link_HealthOmicsRunTaskLink"] == (
        f"https://us-east-1.console.aws.amazon.com/omics/home?region=us-east-1#/runs/{run_id}/tasks/{task_id}"
    )


def test_task_sensor_poke_fails_with_failure_reason_and_status_message(emu):
    run_id = emu.add_run()
    task_id = emu.add_task(
        run_id, lifecycle=[("RUNNING", 1), ("FAILED", 0)], failure_reason="OOM", status_message="exit code 137"
    )
    with pytest.raises(RunFailedError, match=r"ended FAILED .*OOM: exit code 137") as caught:
        _task_sensor(run_id, task_id).execute(task_context())
    assert caught.value.status.request_id


def test_task_sensor_cancelled_fails(emu):
    run_id = emu.add_run()
    task_id = emu.add_task(run_id, lifecycle=[("STOPPING", 1), ("CANCELLED", 0)])
    with pytest.raises(RunFailedError, match=r"ended CANCELLED \(cancelled\)"):
        _task_sensor(run_id, task_id).execute(task_context())


def test_run_sensor_deleted_run_fails_as_cancelled(emu):
    run_id = emu.add_run(lifecycle=[("DELETED", 0)], failure_reason="DELETED", status_message="run was deleted")
    with pytest.raises(RunFailedError, match=r"ended DELETED \(cancelled\).*run was deleted"):
        _run_sensor(run_id).execute(task_context())


def test_poke_not_found_fails_at_once(emu):
    with pytest.raises(TaskRunsError, match="ResourceNotFoundException"):
        _run_sensor("55555").execute(task_context())
    assert len(emu.requests_to("/run/55555")) == 1


def test_poke_times_out(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    with pytest.raises(AirflowSensorTimeout):
        _run_sensor(run_id, timeout=0.3).execute(task_context())


# -- reschedule ------------------------------------------------------------------------------
def test_reschedule_mode_releases_the_worker_until_done(emu):
    run_id = emu.add_run(lifecycle=[("STARTING", 1), ("COMPLETED", 0)])
    with pytest.raises(AirflowRescheduleException):
        _run_sensor(run_id, mode="reschedule").execute(task_context())
    result = _run_sensor(run_id, mode="reschedule").execute(task_context())
    assert result["raw_status"] == "COMPLETED"
    assert result["details"]["uuid"] == emu.runs[run_id].run_uuid


def test_reschedule_mode_fails_with_reason(emu):
    run_id = emu.add_run()
    task_id = emu.add_task(run_id, lifecycle=[("FAILED", 0)], failure_reason="BAD_INPUT", status_message="no FASTQ")
    with pytest.raises(RunFailedError, match="BAD_INPUT: no FASTQ"):
        _task_sensor(run_id, task_id, mode="reschedule").execute(task_context())


# -- deferrable ------------------------------------------------------------------------------
def test_deferrable_task_sensor_runs_the_async_client_in_the_trigger(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    task_id = emu.add_task(run_id, lifecycle=[("PENDING", 1), ("RUNNING", 3), ("COMPLETED", 0)])
    sensor = _task_sensor(run_id, task_id, deferrable=True)
    method, trigger = defer(sensor, task_context())
    assert trigger.status_kind == "task"
    assert trigger.hook_kwargs == {
        "aws_conn_id": "aws_default",
        "region_name": None,
        "verify": None,
        "botocore_config": None,
    }
    before = len(emu.requests_to(f"/run/{run_id}/task/{task_id}"))
    listed = len([r for r in emu.requests if r.path == f"/run/{run_id}/task"])
    event = run_trigger(trigger)
    assert event["event"] == "terminal"
    # the trigger watches through ListRunTasks (RUNNING x3, COMPLETED), then reads the ended task once
    assert len([r for r in emu.requests if r.path == f"/run/{run_id}/task"]) - listed == 4
    assert len(emu.requests_to(f"/run/{run_id}/task/{task_id}")) - before == 1
    result = getattr(sensor, method)(task_context(), event)
    assert result["raw_status"] == "COMPLETED"
    assert result["details"]["runUuid"] == emu.runs[run_id].run_uuid
    # the trigger's calls went through the async client (aws.omics_rest, with the aiobotocore client's
    # user agent), not boto3
    agents = {r.headers.get("user-agent", "") for r in emu.requests_to(f"/run/{run_id}/task/{task_id}")}
    assert any("aiobotocore" in agent and "lib/airflow-task-runs" in agent for agent in agents), agents


def test_deferrable_run_sensor_failure_raises_the_same_error_as_poke(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 1), ("FAILED", 0)], failure_reason="X", status_message="task failed")
    sensor = _run_sensor(run_id, deferrable=True)
    method, trigger = defer(sensor, task_context())
    with pytest.raises(RunFailedError, match=r"HealthOmics run .* ended FAILED .*X: task failed"):
        getattr(sensor, method)(task_context(), run_trigger(trigger))


def test_deferrable_throttling_is_retried_in_the_trigger(emu):
    from airflow_task_runs.testing.aws import throttling_fault

    run_id = emu.add_run(lifecycle=[("RUNNING", 1), ("COMPLETED", 0)])
    sensor = _run_sensor(run_id, deferrable=True)
    method, trigger = defer(sensor, task_context())
    emu.inject("status", times=1, match=f"/run/{run_id}", **throttling_fault())
    event = run_trigger(trigger)
    assert event["event"] == "terminal", event
    assert getattr(sensor, method)(task_context(), event)["raw_status"] == "COMPLETED"


def test_deferrable_not_found_becomes_an_error_event(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    sensor = _run_sensor(run_id, deferrable=True)
    method, trigger = defer(sensor, task_context())
    del emu.runs[run_id]
    event = run_trigger(trigger)
    assert event["event"] == "error"
    with pytest.raises(TaskRunsError, match="ResourceNotFoundException"):
        getattr(sensor, method)(task_context(), event)


def test_deferrable_timeout_reaches_execute_complete(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    sensor = _run_sensor(run_id, deferrable=True, timeout=0.3)
    method, trigger = defer(sensor, task_context())
    event = run_trigger(trigger)
    assert event["event"] == "timeout"
    # the deadline fires on time, even while the first status call is still in flight
    with pytest.raises(AirflowSensorTimeout, match=r"still RUNNING|had not answered its first status call"):
        getattr(sensor, method)(task_context(), event)


def test_deferrable_already_done_does_not_defer(emu):
    run_id = emu.add_run(lifecycle=[("COMPLETED", 0)])
    assert _run_sensor(run_id, deferrable=True).execute(task_context())["raw_status"] == "COMPLETED"


def test_templated_fields():
    assert {"run_id", "run_task_id", "aws_conn_id"} <= set(HealthOmicsRunTaskSensor.template_fields)
    assert "task_id" not in HealthOmicsRunTaskSensor.template_fields


def test_sensor_module_imports_nothing_from_the_amazon_provider():
    import subprocess
    import sys

    code = (
        "import sys, airflow.sdk; before = set(sys.modules); "
        "import airflow_task_runs.aws.sensors, airflow_task_runs.aws.operators; "
        "print(sorted(m for m in set(sys.modules) - before if m.startswith(('airflow.providers.amazon', 'botocore', "
        "'boto3', 'aiobotocore', 'pydantic', 'airflow_task_runs.aws.hooks'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
