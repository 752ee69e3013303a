"""NclueCreateTaskRunOperator / NclueCancelTaskRunOperator against the emulator: kill, cancel, fetch, bad input.

Create -> wait -> fetch in both modes and retries run under dag.test in tests/dags/test_start_runs.py.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time

import pytest

from airflow_task_runs.core.errors import CreateOutcomeUnknownError, RunNotCancellableError
from airflow_task_runs.ncp.operators import NclueCancelTaskRunOperator, NclueCreateTaskRunOperator
from airflow_task_runs.testing.sensors import defer, run_sensor, task_context


@pytest.fixture
def emu(task_runs_connections):
    emu = task_runs_connections.ncp
    lifecycle = list(emu.create_lifecycle)
    yield emu
    emu.create_lifecycle = lifecycle


def _op(**kwargs):
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    kwargs.setdefault("nclue_task_id", "3179664c-0000-0000-0000-af6354344018")
    kwargs.setdefault("feature_id", "28bd06bb-0000-0000-0000-9f2d6a9c3313")
    kwargs.setdefault("result_bucket", "nclue-results")
    kwargs.setdefault("result_file_path", "operator-tests/scores")
    return NclueCreateTaskRunOperator(task_id="create", **kwargs)


def _run_in_thread(op):
    outcome: list[BaseException] = []

    def execute() -> None:
        try:
            op.execute(task_context())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=execute)
    thread.start()
    deadline = time.monotonic() + 10
    while op.started_run_id is None:
        assert time.monotonic() < deadline and thread.is_alive(), outcome
        time.sleep(0.02)
    return thread, outcome


def test_killing_the_task_while_registered_deletes_exactly_its_run(emu):
    emu.create_lifecycle = [("registered", 0)]
    other = emu.add_run(lifecycle=[("registered", 0)])
    op = _op()
    thread, outcome = _run_in_thread(op)
    op.on_kill()
    assert emu.deleted[-1] == op.started_run_id
    assert other in emu.runs
    thread.join(15)
    assert outcome  # its run is gone: the wait ends with an error, not a success


def test_killing_the_task_past_registered_says_the_run_goes_on(emu, captured_logs):
    emu.create_lifecycle = [("in_progress", 0)]
    op = _op()
    thread, _ = _run_in_thread(op)
    op.on_kill()
    assert op.started_run_id in emu.runs and op.started_run_id not in emu.deleted
    assert "NCLUE cancels a run only while it is registered" in captured_logs()
    emu.runs[op.started_run_id].lifecycle.steps = [("completed", 0)]  # let the waiting thread finish
    thread.join(15)


def test_killing_the_deferred_task_deletes_its_registered_run(emu):
    emu.create_lifecycle = [("registered", 0)]
    op = _op(deferrable=True)
    _, trigger = defer(op, task_context())
    assert trigger.cancel_method == "acancel_task_run"
    asyncio.run(trigger.on_kill())
    assert emu.deleted[-1] == op.started_run_id


def test_cancel_on_kill_false(emu):
    emu.create_lifecycle = [("registered", 0)]
    op = _op(deferrable=True, cancel_on_kill=False)
    _, trigger = defer(op, task_context())
    assert trigger.cancel_method is None
    op.on_kill()
    assert op.started_run_id in emu.runs


@pytest.mark.parametrize("deferrable", [False, True])
def test_create_wait_fetch_to_a_destination(emu, tmp_path, deferrable):
    before = len(emu.created)
    op = _op(deferrable=deferrable, fetch_result=True, destination=f"file://{tmp_path}/")
    result = run_sensor(op)
    (run_id,) = emu.created[before:]
    written = result["result"]
    assert result["run_id"] == run_id and written["run_id"] == run_id
    assert written["result_file_path"].startswith("operator-tests/scores_") and written["uri"].endswith(".tsv")
    assert (tmp_path / written["result_file_path"].rsplit("/", 1)[-1]).read_bytes() == emu.create_result


def test_the_name_given_starts_the_run_name_and_the_attempt_token_ends_it(emu):
    emu.create_lifecycle = [("completed", 0)]
    result = _op(name="daily-scores-20261123").execute(task_context())
    assert re.fullmatch(r"daily-scores-20261123-[0-9a-f]{8}", emu.runs[result["run_id"]].fields["run_name"])
    assert "result" not in result


def test_a_lost_answer_never_adopts_an_older_run_of_the_same_given_name(emu):
    """A fixed name is the normal case: yesterday's run of that name must not pass for today's."""
    emu.create_lifecycle = [("completed", 0)]
    old = _op(name="nightly-scores").execute(task_context())["run_id"]
    before = len(emu.created)
    emu.inject("status", status=503, match="/api/v1/task-runs", times=1)
    with pytest.raises(CreateOutcomeUnknownError):
        _op(name="nightly-scores").execute(task_context())
    assert len(emu.created) == before, "the 503 answered the POST: nothing was created"
    assert old in emu.runs


def test_not_waiting_returns_once_created(emu):
    emu.create_lifecycle = [("registered", 0)]
    result = _op(wait_for_completion=False).execute(task_context())
    assert result == {"run_id": emu.created[-1], "status": None}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nclue_task_id": ""}, "nclue_task_id is missing"),
        ({"feature_id": None}, "feature_id is missing"),
        ({"result_file_path": "out/#1.tsv"}, "contains '#'"),
        ({"name": "x" * 101}, "name is 101 characters"),
    ],
)
def test_bad_input_fails_before_any_call(emu, overrides, message):
    posts = len(emu.requests_to("/api/v1/task-runs", "POST"))
    with pytest.raises(ValueError, match=message):
        _op(**overrides).execute(task_context())
    assert len(emu.requests_to("/api/v1/task-runs", "POST")) == posts


def test_destination_without_fetch_result_is_refused():
    with pytest.raises(ValueError, match="destination is set but fetch_result is False"):
        _op(destination="file:///tmp/x/")


def test_cancel_operator_deletes_a_registered_run_and_explains_a_started_one(emu):
    registered = emu.add_run(lifecycle=[("registered", 0)])
    running = emu.add_run(lifecycle=[("in_progress", 0)])
    result = NclueCancelTaskRunOperator(task_id="c1", run_id=registered).execute(task_context())
    assert result == {"run_id": registered, "cancelled": True}
    with pytest.raises(RunNotCancellableError, match="is in_progress"):
        NclueCancelTaskRunOperator(task_id="c2", run_id=running).execute(task_context())
    assert running in emu.runs
