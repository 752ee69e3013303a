"""RosAITaskSensor in poke, reschedule and deferrable mode (the trigger runs against the emulator)."""

from __future__ import annotations

import time

import pytest
from airflow.sdk.exceptions import AirflowRescheduleException, AirflowSensorTimeout

from airflow_task_runs.alibaba.links import RosAITaskLink
from airflow_task_runs.alibaba.sensors import RosAITaskSensor
from airflow_task_runs.core.errors import RunFailedError, TaskRunsError
from airflow_task_runs.testing.sensors import defer, run_trigger, task_context


@pytest.fixture
def emu(task_runs_connections):
    return task_runs_connections.alibaba


def _sensor(ai_task_id, **kwargs):
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return RosAITaskSensor(task_id="wait", ai_task_id=ai_task_id, **kwargs)


def _options(emu, task_id):
    return {r.query["OutputOption"] for r in emu.requests_for(task_id)}


# -- poke --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("task_type", "polls"), [("GenerateTemplate", 4), ("FixTemplate", 3)])
def test_poke_mode_succeeds_and_pushes_the_final_status(emu, mocker, task_type, polls):
    task_id = emu.add_task(task_type=task_type)  # the type's own scripted lifecycle
    result = _sensor(task_id).execute(task_context())
    assert result["state"] == "SUCCEEDED"
    assert result["raw_status"] == "SUCCESS"
    assert result["details"]["TaskType"] == task_type
    assert len(emu.requests_for(task_id)) == polls  # PENDING / WAITING, RUNNING..., SUCCESS
    assert _options(emu, task_id) == {"Disabled"}


def test_poke_mode_fails_with_the_status_reason(emu, mocker):
    task_id = emu.add_task(
        lifecycle=[("RUNNING", 1), ("FAILURE", 0)], status_reason="Handler execution unexpected failure"
    )
    with pytest.raises(RunFailedError, match="Handler execution unexpected failure") as caught:
        _sensor(task_id).execute(task_context())
    assert caught.value.status.raw_status == "FAILURE"
    assert f"ROS AI task {task_id} ended FAILURE" in str(caught.value)


def test_poke_mode_times_out(emu, mocker):
    with pytest.raises(AirflowSensorTimeout):
        _sensor(emu.add_task(lifecycle=[("RUNNING", 0)]), timeout=0.3).execute(task_context())


def test_console_link_is_pushed_for_the_region(emu, mocker):
    context = task_context()
    task_id = emu.add_task(lifecycle=[("SUCCESS", 0)])
    _sensor(task_id, region_id="cn-beijing").execute(context)
    context["ti"].xcom_push.assert_any_call(
        key=RosAITaskLink().xcom_key, value=f"https://ros.console.aliyun.com/cn-beijing/ai-task/{task_id}"
    )


# -- reschedule --------------------------------------------------------------------------------
def test_reschedule_mode_releases_the_worker_until_done(emu, mocker):
    task_id = emu.add_task(lifecycle=[("WAITING", 1), ("SUCCESS", 0)])
    with pytest.raises(AirflowRescheduleException):
        _sensor(task_id, mode="reschedule").execute(task_context())
    assert _sensor(task_id, mode="reschedule").execute(task_context())["raw_status"] == "SUCCESS"


def test_reschedule_mode_fails_with_reason(emu, mocker):
    task_id = emu.add_task(lifecycle=[("FAILURE", 0)], status_reason="template has no Resources")
    with pytest.raises(RunFailedError, match="template has no Resources"):
        _sensor(task_id, mode="reschedule").execute(task_context())


# -- deferrable --------------------------------------------------------------------------------
def test_deferrable_success(emu, mocker):
    task_id = emu.add_task(lifecycle=[("PENDING", 1), ("RUNNING", 2), ("SUCCESS", 0)])
    sensor = _sensor(task_id, deferrable=True)
    method, trigger = defer(sensor, task_context())
    event = run_trigger(trigger)
    assert event["event"] == "terminal"
    result = getattr(sensor, method)(task_context(), event)
    assert result["raw_status"] == "SUCCESS"
    assert len(emu.requests_for(task_id)) == 4
    assert _options(emu, task_id) == {"Disabled"}


def test_deferrable_failure_raises_the_same_error_as_poke(emu, mocker):
    task_id = emu.add_task(lifecycle=[("RUNNING", 1), ("FAILURE", 0)], status_reason="bad template")
    sensor = _sensor(task_id, deferrable=True)
    method, trigger = defer(sensor, task_context())
    with pytest.raises(RunFailedError, match=r"ROS AI task .* ended FAILURE .*bad template"):
        getattr(sensor, method)(task_context(), run_trigger(trigger))


def test_deferrable_timeout_reaches_execute_complete(emu, mocker):
    sensor = _sensor(emu.add_task(lifecycle=[("RUNNING", 0)]), deferrable=True, timeout=2)
    method, trigger = defer(sensor, task_context())
    started = time.monotonic()
    event = run_trigger(trigger)
    assert time.monotonic() - started < 5
    assert event["event"] == "timeout"
    with pytest.raises(AirflowSensorTimeout, match="still RUNNING"):
        getattr(sensor, method)(task_context(), event)


def test_deferred_trigger_retries_throttling_with_new_nonces(emu, mocker):
    task_id = emu.add_task(lifecycle=[("PENDING", 1), ("SUCCESS", 0)])
    _, trigger = defer(_sensor(task_id, deferrable=True), task_context())
    emu.throttle(times=1)
    assert run_trigger(trigger)["event"] == "terminal"
    nonces = [r.headers["x-acs-signature-nonce"] for r in emu.requests_for(task_id)]
    assert len(nonces) == 3 == len(set(nonces))


def test_deferrable_task_already_done_does_not_defer(emu, mocker):
    result = _sensor(emu.add_task(lifecycle=[("SUCCESS", 0)]), deferrable=True).execute(task_context())
    assert result["raw_status"] == "SUCCESS"


def test_trigger_error_event_fails_the_task(emu, mocker):
    task_id = emu.add_task(lifecycle=[("PENDING", 0)])
    sensor = _sensor(task_id, deferrable=True)
    method, trigger = defer(sensor, task_context())
    del emu.tasks[task_id]  # the task disappears while deferred
    event = run_trigger(trigger)
    assert event["event"] == "error"
    with pytest.raises(TaskRunsError, match="TaskNotFound"):
        getattr(sensor, method)(task_context(), event)


def test_trigger_serializes_only_primitives(emu, mocker):
    task_id = emu.add_task(lifecycle=[("PENDING", 0)])
    _, trigger = defer(_sensor(task_id, deferrable=True, region_id="cn-shanghai"), task_context())
    _, kwargs = trigger.serialize()
    assert kwargs["hook_path"] == "airflow_task_runs.alibaba.hooks.RosHook"
    assert kwargs["hook_kwargs"] == {"alibaba_ros_conn_id": "alibaba_ros_default", "region_id": "cn-shanghai"}
    assert kwargs["run_ref"] == {"ai_task_id": task_id}
    assert kwargs["status_kind"] == "ai_task"


def test_templated_fields():
    assert set(RosAITaskSensor.template_fields) >= {"ai_task_id", "alibaba_ros_conn_id", "region_id"}
