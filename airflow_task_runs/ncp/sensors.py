"""Wait for an NCLUE task run to complete."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_task_runs.core.ids import check_literal_ids
from airflow_task_runs.core.sensors import TaskRunSensor

if TYPE_CHECKING:
    from airflow_task_runs.ncp.hooks import NclueHook  # noqa: F401 (the sensor's base names it)


class NclueTaskRunSensor(TaskRunSensor["NclueHook"]):
    """Wait until an NCLUE task run is ``completed``; fail with its ``fail_message`` if it fails.

    :param run_id: the NCLUE task run id (templated).
    :param ncp_conn_id: an ``ncp`` connection.
    """

    template_fields: Sequence[str] = ("run_id", "ncp_conn_id")
    hook_class_path = "airflow_task_runs.ncp.hooks.NclueHook"
    status_kind = "task_run"

    def __init__(self, *, run_id: str, ncp_conn_id: str = "ncp_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_literal_ids(run_id=run_id)
        self.run_id = run_id
        self.ncp_conn_id = ncp_conn_id

    def hook_kwargs(self) -> dict[str, Any]:
        return {"ncp_conn_id": self.ncp_conn_id}

    def run_ref(self) -> dict[str, Any]:
        return {"run_id": self.run_id}

    def describe_run(self) -> str:
        return f"NCLUE task run {self.run_id}"
