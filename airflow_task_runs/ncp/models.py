"""NCLUE task-run JSON, field names exactly as NCP's "Get task run list" page gives them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


class _Model(BaseModel):
    # Clouds add fields: keep unknown ones, be strict about the types of known ones.
    model_config = ConfigDict(extra="allow", strict=False)


class TaskRun(_Model):
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
    #: the API Gateway's trace id of the response this came from (not a field of the API)
    _request_id: str | None = PrivateAttr(default=None)

    @property
    def request_id(self) -> str | None:
        return self._request_id

    @request_id.setter
    def request_id(self, value: str | None) -> None:
        self._request_id = value


class TaskRunList(_Model):
    index: int = 0
    limit: int = 20
    total: int = 0
    runs: list[TaskRun] = Field(default_factory=list)
