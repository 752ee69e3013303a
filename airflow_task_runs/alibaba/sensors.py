"""Wait for a ROS AI task to succeed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_task_runs.alibaba.links import RosAITaskLink, push_ai_task_link
from airflow_task_runs.core.ids import check_literal_ids
from airflow_task_runs.core.sensors import TaskRunSensor

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_task_runs.alibaba.hooks import RosHook  # noqa: F401 (the sensor's base names it)


class RosAITaskSensor(TaskRunSensor["RosHook"]):
    """Wait until a ROS AI task is ``SUCCESS``; fail with its ``StatusReason`` on ``FAILURE``.

    Polls ``GetAITask`` with ``OutputOption=Disabled``: the (possibly large) TaskOutput is
    fetched once, by :class:`~airflow_task_runs.alibaba.operators.RosFetchAITaskOutputOperator`.

    :param ai_task_id: the ROS AI task id, ``TaskId`` (templated; ``task_id`` is Airflow's).
    :param alibaba_ros_conn_id: an ``alibaba_ros`` (or ``alibaba_cloud``) connection.
    :param region_id: overrides the connection's region (console link only; templated).
    """

    template_fields: Sequence[str] = ("ai_task_id", "alibaba_ros_conn_id", "region_id")
    hook_class_path = "airflow_task_runs.alibaba.hooks.RosHook"
    status_kind = "ai_task"
    operator_extra_links = (RosAITaskLink(),)

    def __init__(
        self,
        *,
        ai_task_id: str,
        alibaba_ros_conn_id: str = "alibaba_ros_default",
        region_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_literal_ids(ai_task_id=ai_task_id)
        self.ai_task_id = ai_task_id
        self.alibaba_ros_conn_id = alibaba_ros_conn_id
        self.region_id = region_id

    def hook_kwargs(self) -> dict[str, Any]:
        return {"alibaba_ros_conn_id": self.alibaba_ros_conn_id, "region_id": self.region_id}

    def run_ref(self) -> dict[str, Any]:
        return {"ai_task_id": self.ai_task_id}

    def describe_run(self) -> str:
        return f"ROS AI task {self.ai_task_id}"

    def execute(self, context: Context) -> Any:
        push_ai_task_link(context, self.hook, self.ai_task_id)
        return super().execute(context)
