"""NclueHook create (POST, never blindly repeated) and cancel (DELETE while registered), on the emulator."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from airflow_task_runs.core.errors import ApiError, CreateOutcomeUnknownError, RunNotCancellableError
from airflow_task_runs.core.triggers import TaskRunTrigger
from airflow_task_runs.ncp.hooks import NclueHook, task_run_request


@pytest.fixture
def emu(task_runs_connections):
    ncp = task_runs_connections.ncp
    lifecycle = list(ncp.create_lifecycle)
    ncp.lose_create_replies = 0
    yield ncp
    ncp.lose_create_replies = 0
    ncp.create_lifecycle = lifecycle


def _request(**overrides):
    fields = {
        "name": f"scores-{uuid.uuid4().hex[:8]}",
        "task_id": "3179664c-0000-0000-0000-af6354344018",
        "feature_id": "28bd06bb-0000-0000-0000-9f2d6a9c3313",
        "result_bucket": "nclue-results",
        "result_file_path": "scores/daily",
    }
    fields.update(overrides)
    return fields


def _posts(emu):
    return [r for r in emu.requests_to("/api/v1/task-runs", "POST")]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "name is missing"),
        ("task_id", None, "nclue_task_id is missing"),
        ("feature_id", " ", "feature_id is missing"),
        ("result_bucket", "", "result_bucket is missing"),
        ("result_file_path", None, "result_file_path is missing"),
        ("name", "n" * 101, "name is 101 characters; NCLUE allows 1-100"),
        ("result_file_path", "out/a?b.tsv", "contains '?'"),
        ("result_file_path", "out/\x07.tsv", "character codes 0-31"),
        ("result_file_path", "../escape/", "relative key without '..'"),
        ("result_bucket", "bucket/prefix", "is a bucket name, not a path"),
    ],
)
def test_bad_create_input_fails_before_any_call_naming_the_field(emu, field, value, message):
    before = len(_posts(emu))
    with pytest.raises(ValueError, match=message.replace("?", r"\?").replace("(", r"\(")):
        NclueHook().create_task_run(task_run_request(**_request(**{field: value})))
    assert len(_posts(emu)) == before


def test_create_then_cancel_while_registered_deletes_it(emu):
    emu.create_lifecycle = [("registered", 5), ("completed", 0)]
    hook = NclueHook()
    run_id = hook.create_task_run(task_run_request(**_request()))
    assert run_id in emu.created
    assert hook.get_task_run(run_id).status == "registered"
    assert hook.cancel_task_run(run_id) is True
    assert emu.deleted[-1] == run_id
    with pytest.raises(ApiError, match="not found"):
        hook.get_task_run(run_id)


def test_cancel_past_registered_says_why_and_deletes_nothing(emu):
    run_id = emu.add_run(lifecycle=[("in_progress", 0)])
    with pytest.raises(RunNotCancellableError, match=r"is in_progress: NCLUE cancels a run only while it is regist"):
        NclueHook().cancel_task_run(run_id)
    assert run_id not in emu.deleted


def test_a_run_that_leaves_registered_before_the_delete_is_reported_clearly(emu):
    run_id = emu.add_run(lifecycle=[("registered", 1), ("pending", 0)])  # the status read is its last registered
    with pytest.raises(RunNotCancellableError, match=r"NCLUE refused to delete .* pending .* cannot be cancelled"):
        NclueHook().cancel_task_run(run_id)
    assert run_id in emu.runs


def test_cancel_of_an_ended_run_leaves_it_alone(emu):
    run_id = emu.add_run(lifecycle=[("completed", 0)])
    assert NclueHook().cancel_task_run(run_id) is False
    assert run_id in emu.runs


def test_a_create_whose_reply_was_lost_is_found_by_name_not_repeated(emu):
    emu.lose_create_replies = 1
    request = _request()
    before = len(emu.created)
    run_id = NclueHook().create_task_run(task_run_request(**request))
    assert emu.created[before:] == [run_id]  # one run, the one the lost reply created
    assert emu.runs[run_id].fields["run_name"] == request["name"]


def test_a_create_that_failed_without_creating_is_not_repeated(emu):
    emu.inject("status", status=503, match="/api/v1/task-runs")
    before_posts, before_runs = len(_posts(emu)), len(emu.created)
    with pytest.raises(CreateOutcomeUnknownError, match="a retry of this task looks the run up by name"):
        NclueHook().create_task_run(task_run_request(**_request()))
    assert len(_posts(emu)) == before_posts + 1
    assert len(emu.created) == before_runs


def test_a_rejected_create_surfaces_the_cloud_error(emu):
    # Bypass the client-side check to see NCLUE's own answer.
    with pytest.raises(ApiError, match=r"HTTP 400 NCLUE-400: result_file_path contains"):
        NclueHook().create_task_run(_request(result_file_path="a|b"))


def _trigger(run_id: str, **kwargs) -> TaskRunTrigger:
    return TaskRunTrigger(
        hook_path="airflow_task_runs.ncp.hooks.NclueHook",
        hook_kwargs={"ncp_conn_id": "ncp_default"},
        status_method="aget_status",
        run_ref={"run_id": run_id},
        poll_interval=0.05,
        deadline=0,
        **kwargs,
    )


def test_the_trigger_on_kill_cancels_the_run_it_names(emu):
    emu.create_lifecycle = [("registered", 5), ("completed", 0)]
    run_id = NclueHook().create_task_run(task_run_request(**_request()))
    asyncio.run(_trigger(run_id, cancel_method="acancel_task_run").on_kill())
    assert emu.deleted[-1] == run_id


def test_a_watching_trigger_on_kill_cancels_nothing(emu):
    run_id = emu.add_run(lifecycle=[("registered", 0)])
    asyncio.run(_trigger(run_id).on_kill())
    assert run_id in emu.runs and run_id not in emu.deleted


def test_the_trigger_on_kill_of_a_started_run_says_it_goes_on(emu, captured_logs):
    run_id = emu.add_run(lifecycle=[("in_progress", 0)])
    asyncio.run(_trigger(run_id, cancel_method="acancel_task_run").on_kill())  # does not raise
    assert run_id in emu.runs
    assert "is in_progress: NCLUE cancels a run only while it is registered" in captured_logs()
