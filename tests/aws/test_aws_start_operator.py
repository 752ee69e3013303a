"""HealthOmicsStartRunOperator / HealthOmicsCancelRunOperator against the emulator: kill, cancel, bad input.

Start -> wait -> outputs in both modes, retries and lost answers run under dag.test in
tests/dags/test_start_runs.py (Airflow's real task runner and task_state_store).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest

from airflow_task_runs.aws.operators import HealthOmicsCancelRunOperator, HealthOmicsStartRunOperator
from airflow_task_runs.aws.sensors import HealthOmicsRunSensor
from airflow_task_runs.core.errors import RunFailedError
from airflow_task_runs.testing.aws import DEMO_ROLE_ARN, DEMO_WORKFLOW_ID
from airflow_task_runs.testing.sensors import defer, run_sensor, run_trigger, task_context


@pytest.fixture
def emu(task_runs_connections):
    emu = task_runs_connections.aws
    lifecycle = list(emu.start_lifecycle)
    yield emu
    emu.start_lifecycle = lifecycle


def _op(**kwargs):
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 300)
    kwargs.setdefault("workflow_id", DEMO_WORKFLOW_ID)
    kwargs.setdefault("role_arn", DEMO_ROLE_ARN)
    kwargs.setdefault("output_uri", "s3://omics-outputs/operator-tests/")
    return HealthOmicsStartRunOperator(task_id="start", **kwargs)


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


async def _kill_deferred(trigger, emu) -> None:
    """What the triggerer does when a user kills a deferred task: cancel run(), then on_kill()."""
    path = f"/run/{trigger.run_ref['run_id']}"
    polls = len(emu.requests_to(path, "GET"))

    async def events() -> None:
        async for _ in trigger.run():
            return

    task = asyncio.ensure_future(events())
    deadline = time.monotonic() + 10
    while len(emu.requests_to(path, "GET")) < polls + 2 and time.monotonic() < deadline:  # killed mid-wait
        await asyncio.sleep(0.02)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await trigger.on_kill()


def test_killing_the_task_in_the_worker_cancels_exactly_the_run_it_started(emu):
    emu.start_lifecycle = [("RUNNING", 0)]
    watched = emu.add_run(lifecycle=[("RUNNING", 0)])  # somebody else's run, running meanwhile
    op = _op()
    outcome: list[BaseException] = []

    def execute() -> None:
        try:
            op.execute(task_context())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=execute)
    thread.start()
    _wait_for(lambda: op.started_run_id is not None)
    cancelled_before = list(emu.cancelled)
    op.on_kill()
    thread.join(15)
    assert emu.cancelled[len(cancelled_before) :] == [op.started_run_id]
    assert watched not in emu.cancelled
    assert isinstance(outcome[0], RunFailedError) and "CANCELLED" in str(outcome[0])


def test_killing_the_deferred_task_cancels_its_run_from_the_triggerer(emu):
    emu.start_lifecycle = [("RUNNING", 0)]
    op = _op(deferrable=True)
    _, trigger = defer(op, task_context())
    assert trigger.cancel_method == "acancel_run"
    assert trigger.run_ref == {"run_id": op.started_run_id}
    asyncio.run(_kill_deferred(trigger, emu))
    assert emu.cancelled[-1] == op.started_run_id


def test_cancel_on_kill_false_leaves_the_run_alone_in_both_places(emu):
    emu.start_lifecycle = [("RUNNING", 0)]
    op = _op(deferrable=True, cancel_on_kill=False)
    _, trigger = defer(op, task_context())
    assert trigger.cancel_method is None
    cancelled_before = list(emu.cancelled)
    asyncio.run(_kill_deferred(trigger, emu))
    op.on_kill()
    assert emu.cancelled == cancelled_before


def test_a_sensor_only_watches_so_its_kill_cancels_nothing(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    sensor = HealthOmicsRunSensor(task_id="watch", run_id=run_id, deferrable=True, poke_interval=0.05, timeout=30)
    _, trigger = defer(sensor, task_context())
    assert trigger.cancel_method is None
    asyncio.run(_kill_deferred(trigger, emu))
    sensor.on_kill()
    assert run_id not in emu.cancelled


@pytest.mark.parametrize("deferrable", [False, True])
def test_start_wait_outputs_without_a_state_store(emu, deferrable):
    before = len(emu.started)
    result = run_sensor(_op(deferrable=deferrable, tags={"team": "genomics"}))
    (run_id,) = emu.started[before:]
    assert result["runId"] == run_id
    assert result["status"]["state"] == "SUCCEEDED"
    assert len(result["uris"]) == len(emu.start_outputs)
    assert emu.runs[run_id].request["tags"] == {"team": "genomics"}


def test_a_run_that_fails_fails_the_task_with_its_reason(emu):
    emu.start_lifecycle = [("RUNNING", 1), ("FAILED", 0)]
    with pytest.raises(RunFailedError, match=r"ended FAILED .*WORKFLOW_RUN_FAILED"):
        run_sensor(_op())


def test_not_waiting_returns_once_started(emu):
    emu.start_lifecycle = [("PENDING", 0)]
    result = _op(wait_for_completion=False).execute(task_context())
    assert result == {"runId": emu.started[-1], "status": None}


def test_missing_input_fails_before_any_call_naming_it(emu):
    emu.reset_log()
    with pytest.raises(ValueError, match="role_arn is missing"):
        _op(role_arn="").execute(task_context())
    with pytest.raises(ValueError, match="output_uri is missing"):
        _op(output_uri=None).execute(task_context())
    assert emu.requests == []


def test_reschedule_mode_needs_the_state_store():
    with pytest.raises(ValueError, match="mode='reschedule' needs durable=True"):
        _op(mode="reschedule", durable=False)


def test_the_deferred_trigger_finishes_and_execute_complete_lists_outputs(emu):
    op = _op(deferrable=True)
    method, trigger = defer(op, task_context())
    event = run_trigger(trigger)
    fresh = _op(deferrable=True)  # execute_complete runs on a new operator instance
    result = getattr(fresh, method)(task_context(), event)
    assert result["runId"] == op.started_run_id
    assert result["outputUri"] == f"s3://omics-outputs/operator-tests/{op.started_run_id}/"


def test_cancel_run_operator(emu):
    running = emu.add_run(lifecycle=[("RUNNING", 0)])
    done = emu.add_run(lifecycle=[("COMPLETED", 0)])
    assert HealthOmicsCancelRunOperator(task_id="c1", run_id=running).execute(task_context()) == {
        "runId": running,
        "cancelled": True,
    }
    assert HealthOmicsCancelRunOperator(task_id="c2", run_id=done).execute(task_context())["cancelled"] is False
    assert running in emu.cancelled and done not in emu.cancelled
