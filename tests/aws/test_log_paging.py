"""The HealthOmics task log is complete or absent: CloudWatch pages are checked, paging is bounded.

Faults go on the second GetLogEvents page (the review's case: 108,000 of 648,000 bytes at the
final path and "500 lines" to XCom as the whole log), over real HTTP through the emulator to moto.
"""

from __future__ import annotations

import json

import pytest

from airflow_task_runs.aws.operators import HealthOmicsFetchTaskLogOperator
from airflow_task_runs.core.errors import ApiError, MalformedResponseError
from airflow_task_runs.testing.sensors import task_context

LINES = [f"line {i:04d} " + "x" * 200 for i in range(1500)]
PAGE = 500


@pytest.fixture
def task(emu):
    run_id = emu.add_run(lifecycle=[("COMPLETED", 0)])
    return run_id, emu.add_task(run_id, lifecycle=[("COMPLETED", 0)], log_lines=LINES)


@pytest.fixture(autouse=True)
def quick_retries(emu, monkeypatch):
    """botocore waits seconds between retries of a cut connection: one retry keeps these tests short."""
    conn = emu.airflow_connection()
    conn["extra"].update(config_kwargs={}, retry_max_attempts=2)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_LOGS", json.dumps(conn))


def _fetch(task, destination=None, **kwargs):
    run_id, task_id = task
    op = HealthOmicsFetchTaskLogOperator(
        task_id="log",
        run_id=run_id,
        run_task_id=task_id,
        destination=destination,
        page_size=PAGE,
        aws_conn_id="aws_logs",
        **kwargs,
    )
    return op.execute(task_context())


def _on_second_page(emu, kind, **options):
    emu.inject("slow", target="GetLogEvents")  # the first page passes untouched
    emu.inject(kind, target="GetLogEvents", **options)


def _page(body: dict) -> dict:
    return {"status": 200, "body": json.dumps(body).encode(), "headers": {"Content-Type": "application/x-amz-json-1.1"}}


def test_the_whole_log_arrives(emu, task, output_dir):
    result = _fetch(task, f"file://{output_dir}/")
    assert (output_dir / result["uri"].rsplit("/", 1)[1]).read_text() == "".join(f"{line}\n" for line in LINES)
    assert result["lines"] == len(LINES)


@pytest.mark.parametrize(
    ("kind", "options", "says"),
    [
        ("status", _page({"events": [], "nextBackwardToken": "b/1"}), "without nextForwardToken"),
        ("status", _page({"nextForwardToken": "f/x"}), "without events"),
        ("html", {}, "text/html page"),
        ("short_length", {}, "not JSON|not valid JSON"),
        ("truncated", {}, "broke mid-answer"),
        ("long_length", {}, "broke mid-answer"),
        ("malformed", {}, "not valid JSON"),
    ],
    ids=["no-token", "no-events", "html-200", "short-content-length", "truncated", "long-content-length", "garbled"],
)
def test_a_bad_second_page_fails_and_nothing_is_kept(emu, task, output_dir, kind, options, says):
    _on_second_page(emu, kind, times=50, **options)
    with pytest.raises(ApiError, match=says) as caught:
        _fetch(task, f"file://{output_dir}/")
    assert caught.value.cloud == "AWS CloudWatch Logs"
    assert "GetLogEvents" in str(caught.value)
    assert list(output_dir.iterdir()) == []


@pytest.mark.parametrize(
    "options",
    [_page({"events": [], "nextBackwardToken": "b/1"}), _page({"nextForwardToken": "f/x"})],
    ids=["no-token", "no-events"],
)
def test_a_bad_second_page_gives_no_xcom_either(emu, task, options):
    """The review saw "500 lines" pushed to XCom as the whole log: now the task fails instead."""
    _on_second_page(emu, "status", times=50, **options)
    with pytest.raises(MalformedResponseError, match="which CloudWatch always sends"):
        _fetch(task)


def test_a_page_garbled_once_is_asked_again_and_the_log_is_whole(emu, task, output_dir):
    _on_second_page(emu, "html")
    result = _fetch(task, f"file://{output_dir}/")
    assert result["lines"] == len(LINES)
    calls = [r for r in emu.requests if "GetLogEvents" in r.headers.get("x-amz-target", "")]
    # the retried page asked for the same token as the failed one
    assert json.loads(calls[1].body)["nextToken"] == json.loads(calls[2].body)["nextToken"]


def test_a_token_that_never_repeats_stops_at_the_page_limit(emu, task, output_dir):
    for i in range(10):
        emu.inject("status", target="GetLogEvents", **_page({"events": [], "nextForwardToken": f"f/{i}"}))
    with pytest.raises(ApiError, match="still paging after 5 page") as caught:
        _fetch(task, f"file://{output_dir}/", max_log_pages=5)
    assert caught.value.code == "LogPagingLimit"
    assert "max_log_pages=5" in str(caught.value)
    assert list(output_dir.iterdir()) == []


def test_paging_is_bounded_in_time_too(emu, task):
    emu.inject("slow", times=10, delay=0.2, target="GetLogEvents")
    with pytest.raises(ApiError, match=r"max_log_seconds=0\.3"):
        _fetch(task, max_log_seconds=0.3)


def test_a_hostile_page_is_not_asked_again(emu, task):
    _on_second_page(emu, "deep")
    with pytest.raises(MalformedResponseError, match="levels deep"):
        _fetch(task)
    assert len([r for r in emu.requests if "GetLogEvents" in r.headers.get("x-amz-target", "")]) == 2
