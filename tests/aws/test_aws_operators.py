"""HealthOmics operators: task details, a 3-page log to file:// and XCom, run outputs from S3 (moto)."""

from __future__ import annotations

import json

import pytest

from airflow_task_runs.aws.operators import (
    HealthOmicsFetchTaskLogOperator,
    HealthOmicsGetRunTaskOperator,
    HealthOmicsListRunOutputsOperator,
)
from airflow_task_runs.core.errors import (
    ApiError,
    OutputTooLargeError,
    RunFailedError,
    RunNotFinishedError,
    TaskRunsError,
)
from airflow_task_runs.testing.sensors import task_context

LINES = [f"line {i:04d}: aligned read group {i % 7}" for i in range(250)]


@pytest.fixture
def emu(task_runs_connections):
    emu = task_runs_connections.aws
    emu.reset_log()
    return emu


def _task(emu, *, lines=LINES, as_arn=True, status="COMPLETED"):
    run_id = emu.add_run(lifecycle=[("COMPLETED", 0)])
    task_id = emu.add_task(run_id, lifecycle=[(status, 0)], log_lines=lines, log_stream_as_arn=as_arn)
    return run_id, task_id


def test_get_run_task_to_xcom_is_json_safe_with_run_uuid(emu):
    run_id, task_id = _task(emu, lines=None)
    context = task_context()
    result = HealthOmicsGetRunTaskOperator(task_id="details", run_id=run_id, run_task_id=task_id).execute(context)
    assert json.loads(json.dumps(result)) == result
    assert result["taskId"] == task_id and result["status"] == "COMPLETED"
    assert result["runId"] == run_id and result["runUuid"] == emu.runs[run_id].run_uuid
    assert result["creationTime"].endswith("Z")
    keys = {c.kwargs["key"] for c in context["ti"].xcom_push.call_args_list}
    assert keys == {"_link_HealthOmicsRunLink", "_link_HealthOmicsRunTaskLink"}


def test_get_run_task_not_found(emu):
    run_id = emu.add_run()
    with pytest.raises(ApiError, match="ResourceNotFoundException"):
        HealthOmicsGetRunTaskOperator(task_id="d", run_id=run_id, run_task_id="404").execute(task_context())


@pytest.mark.parametrize("as_arn", [True, False], ids=["arn", "bare-stream"])
def test_three_page_log_to_file_is_whole_and_in_order(emu, output_dir, as_arn, monkeypatch):
    from airflow_task_runs.aws.hooks import HealthOmicsHook

    pages: list[int] = []
    original = HealthOmicsHook.iter_log_events

    def counting(self, group, stream, page_size=None):
        client = self.logs_client()
        real = client.get_log_events

        def spy(**kwargs):
            page = real(**kwargs)
            pages.append(len(page["events"]))
            return page

        client.get_log_events = spy
        monkeypatch.setattr(self, "logs_client", lambda: client)
        return original(self, group, stream, page_size)

    monkeypatch.setattr(HealthOmicsHook, "iter_log_events", counting)
    run_id, task_id = _task(emu, as_arn=as_arn)
    result = HealthOmicsFetchTaskLogOperator(
        task_id="log", run_id=run_id, run_task_id=task_id, destination=f"file://{output_dir}/", page_size=100
    ).execute(task_context())
    written = output_dir / f"healthomics-run-{run_id}-task-{task_id}.log"
    assert written.read_text() == "".join(f"{line}\n" for line in LINES)
    assert pages[:3] == [100, 100, 50] and sum(pages) == 250  # 3 pages, then the repeated token ends it
    assert result["uri"] == f"file://{written}"
    assert (result["lines"], result["size"]) == (250, written.stat().st_size)
    assert (result["logGroup"], result["logStream"]) == ("/aws/omics/WorkflowLog", f"run/{run_id}/task/{task_id}")
    assert result["runUuid"] == emu.runs[run_id].run_uuid
    assert not [p for p in output_dir.iterdir() if p.name.endswith(".partial")]


def test_three_page_log_to_xcom(emu):
    run_id, task_id = _task(emu)
    result = HealthOmicsFetchTaskLogOperator(task_id="log", run_id=run_id, run_task_id=task_id, page_size=100).execute(
        task_context()
    )
    assert result["log"].splitlines() == LINES
    assert result["lines"] == 250 and result["runUuid"] == emu.runs[run_id].run_uuid
    assert json.loads(json.dumps(result)) == result


def test_log_to_exact_file_path(emu, output_dir):
    run_id, task_id = _task(emu, lines=["only line"])
    HealthOmicsFetchTaskLogOperator(
        task_id="log", run_id=run_id, run_task_id=task_id, destination=f"file://{output_dir}/task.log"
    ).execute(task_context())
    assert (output_dir / "task.log").read_text() == "only line\n"


def test_oversized_log_for_xcom_names_destination(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW__TASK_RUNS__XCOM_MAX_BYTES", "1000")
    run_id, task_id = _task(emu)
    with pytest.raises(OutputTooLargeError, match="destination="):
        HealthOmicsFetchTaskLogOperator(task_id="log", run_id=run_id, run_task_id=task_id).execute(task_context())


def test_missing_log_stream_in_cloudwatch_fails_clearly_and_leaves_nothing(emu, output_dir):
    run_id, task_id = _task(emu, lines=None)  # the task names a stream nobody wrote
    with pytest.raises(ApiError, match="GetLogEvents") as caught:
        HealthOmicsFetchTaskLogOperator(
            task_id="log", run_id=run_id, run_task_id=task_id, destination=f"file://{output_dir}/"
        ).execute(task_context())
    assert (caught.value.cloud, caught.value.code) == ("AWS CloudWatch Logs", "ResourceNotFoundException")
    assert list(output_dir.iterdir()) == []


def test_page_size_is_checked():
    with pytest.raises(ValueError, match="page_size"):
        HealthOmicsFetchTaskLogOperator(task_id="log", run_id="1", run_task_id="2", page_size=0)


def test_run_outputs_listed_to_xcom_over_every_page(emu):
    outputs = {f"out/part-{i:04d}.txt": b"x" for i in range(25)}
    run_id = emu.add_run(lifecycle=[("COMPLETED", 0)], outputs=outputs, output_uri="s3://omics-test-outputs/runs/")
    other = emu.add_run(
        run_id + "0", lifecycle=[("COMPLETED", 0)], outputs={"x": b"y"}, output_uri="s3://omics-test-outputs/runs/"
    )
    result = HealthOmicsListRunOutputsOperator(task_id="outputs", run_id=run_id, page_size=10).execute(task_context())
    assert result["outputUri"] == f"s3://omics-test-outputs/runs/{run_id}/"
    assert sorted(result["uris"]) == sorted(f"s3://omics-test-outputs/runs/{run_id}/{key}" for key in outputs)
    assert not any(f"/{other}/" in uri for uri in result["uris"])  # a run id that extends this one
    assert result["runUuid"] == emu.runs[run_id].run_uuid


def test_run_outputs_of_a_failed_run_fail_with_its_reason(emu):
    run_id = emu.add_run(lifecycle=[("FAILED", 0)], failure_reason="BAD", status_message="no input")
    with pytest.raises(RunFailedError, match="BAD: no input"):
        HealthOmicsListRunOutputsOperator(task_id="outputs", run_id=run_id).execute(task_context())


def test_run_outputs_of_a_running_run_are_refused_unless_asked(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)], outputs={"partial.txt": b"p"})
    with pytest.raises(RunNotFinishedError, match="HealthOmicsRunSensor"):
        HealthOmicsListRunOutputsOperator(task_id="outputs", run_id=run_id).execute(task_context())
    result = HealthOmicsListRunOutputsOperator(task_id="o", run_id=run_id, require_completed=False).execute(
        task_context()
    )
    assert [u.rsplit("/", 1)[-1] for u in result["uris"]] == ["partial.txt"]


def test_task_without_log_stream_is_refused(emu, monkeypatch):
    from airflow_task_runs.aws.hooks import HealthOmicsHook

    run_id, task_id = _task(emu, lines=None)
    real = HealthOmicsHook.get_run_task

    def no_stream(self, *args):
        task = real(self, *args)
        task.logStream = None
        return task

    monkeypatch.setattr(HealthOmicsHook, "get_run_task", no_stream)
    with pytest.raises(TaskRunsError, match="no logStream yet"):
        HealthOmicsFetchTaskLogOperator(task_id="log", run_id=run_id, run_task_id=task_id).execute(task_context())


def test_log_of_a_running_task_is_refused_unless_asked(emu, output_dir):
    from airflow_task_runs.core.errors import RunNotFinishedError

    run_id, task_id = _task(emu, status="RUNNING")
    op = HealthOmicsFetchTaskLogOperator(
        task_id="log", run_id=run_id, run_task_id=task_id, destination=f"file://{output_dir}/"
    )
    with pytest.raises(RunNotFinishedError, match="is RUNNING: its log is not complete"):
        op.execute(task_context())
    assert list(output_dir.iterdir()) == []
    partial = HealthOmicsFetchTaskLogOperator(
        task_id="log", run_id=run_id, run_task_id=task_id, allow_unfinished=True
    ).execute(task_context())
    assert partial["taskStatus"] == "RUNNING"
    assert partial["log"].splitlines() == LINES


def test_log_of_a_failed_task_is_fetched(emu):
    run_id, task_id = _task(emu, status="FAILED")
    result = HealthOmicsFetchTaskLogOperator(task_id="log", run_id=run_id, run_task_id=task_id).execute(task_context())
    assert result["taskStatus"] == "FAILED"
    assert result["lines"] == len(LINES)


def test_run_task_details_are_size_guarded(emu, monkeypatch):
    from airflow_task_runs.core.errors import OutputTooLargeError

    monkeypatch.setenv("AIRFLOW__TASK_RUNS__XCOM_MAX_BYTES", "100")
    run_id, task_id = _task(emu)
    with pytest.raises(OutputTooLargeError, match=f"HealthOmics run {run_id} task {task_id} details is"):
        HealthOmicsGetRunTaskOperator(task_id="details", run_id=run_id, run_task_id=task_id).execute(task_context())
