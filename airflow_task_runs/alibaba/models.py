"""ROS GetAITask JSON, field names exactly as the API page gives them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


def parse_success(value: Any) -> bool | None:
    """``Success`` as a bool: Alibaba's own SDK types it as a string, so accept "true"/"false" too."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"Success must be true/false (bool or string), got {value!r}")


class AITask(BaseModel):
    """One AI task (``GetAITask``). ``TaskOutput`` is only present when it was asked for."""

    # ROS adds fields: keep unknown ones.
    model_config = ConfigDict(extra="allow")

    TaskId: str | None = None
    RequestId: str | None = None
    TaskType: str | None = None
    Status: str
    StatusReason: str | None = None
    TaskOutput: Any = None
    Code: str | None = None
    HttpStatusCode: int | None = None
    Message: str | None = None
    Success: bool | None = None

    @field_validator("Success", mode="before")
    @classmethod
    def _success(cls, value: Any) -> bool | None:
        return parse_success(value)
