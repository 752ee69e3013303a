"""NCLUE task-run JSON, field names exactly as NCP's "Get task run list" page gives them."""

from __future__ import annotations

from pydantic import Field

from airflow_task_runs.core.models import ApiModel


class TaskRun(ApiModel):
    run_id: str
    run_name: str | None = None
    task_id: str | None = None
    task_name: str | None = None
    feature_id: str | None = None
    feature_name: str | None = None
    status: str
    created_at: str | None = None
    completed_at: str | None = None
    result_bucket: str | None = None
    result_file_path: str | None = None
    line_count: int | None = None
    fail_message: str | None = None


class TaskRunList(ApiModel):
    index: int = 0
    limit: int = 20
    total: int = 0
    runs: list[TaskRun] = Field(default_factory=list)


class CreatedTaskRun(ApiModel):
    """The answer of ``POST /task-runs``: the new run (only its id is relied on)."""

    run_id: str
    status: str | None = None
