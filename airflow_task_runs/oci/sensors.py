"""Wait for an OCI AI Data Platform task run or MLflow experiment run to end."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_task_runs.core.ids import check_literal_ids
from airflow_task_runs.core.sensors import TaskRunSensor
from airflow_task_runs.oci.links import OciExperimentRunLink, OciTaskRunLink, push_link

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_task_runs.oci.hooks import OciAiDataPlatformHook  # noqa: F401 (the sensor's base names it)

_HOOK = "airflow_task_runs.oci.hooks.OciAiDataPlatformHook"


class OciTaskRunSensor(TaskRunSensor["OciAiDataPlatformHook"]):
    """Wait until a task run is SUCCESS; fail with its ``stateMessage`` / ``errorTrace`` otherwise.

    SKIPPED and EXCLUDED runs skip the Airflow task.

    :param ai_data_platform_id: the AI Data Platform OCID (templated).
    :param workspace_key: the workspace key (templated).
    :param task_run_key: the task run key (templated).
    :param oci_conn_id: an ``oci`` connection.
    """

    template_fields: Sequence[str] = ("ai_data_platform_id", "workspace_key", "task_run_key", "oci_conn_id")
    operator_extra_links = (OciTaskRunLink(),)
    hook_class_path = _HOOK
    status_kind = "task_run"

    def __init__(
        self,
        *,
        ai_data_platform_id: str,
        workspace_key: str,
        task_run_key: str,
        oci_conn_id: str = "oci_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_literal_ids(
            ai_data_platform_id=ai_data_platform_id, workspace_key=workspace_key, task_run_key=task_run_key
        )
        self.ai_data_platform_id = ai_data_platform_id
        self.workspace_key = workspace_key
        self.task_run_key = task_run_key
        self.oci_conn_id = oci_conn_id

    def hook_kwargs(self) -> dict[str, Any]:
        return {"oci_conn_id": self.oci_conn_id}

    def run_ref(self) -> dict[str, Any]:
        return {
            "ai_data_platform_id": self.ai_data_platform_id,
            "workspace_key": self.workspace_key,
            "task_run_key": self.task_run_key,
        }

    def describe_run(self) -> str:
        return f"OCI task run {self.task_run_key} (workspace {self.workspace_key})"

    def execute(self, context: Context) -> Any:
        from airflow_task_runs.oci.links import task_run_console_url

        hook = self.hook
        push_link(
            context,
            OciTaskRunLink,
            lambda: task_run_console_url(hook.console_url(), hook.credentials().region, **self.run_ref()),
        )
        return super().execute(context)


class OciMlflowRunSensor(TaskRunSensor["OciAiDataPlatformHook"]):
    """Wait until an MLflow experiment run is FINISHED; fail if it ends FAILED, INTERNAL_ERROR or KILLED.

    :param ai_data_platform_id: the AI Data Platform OCID (templated).
    :param workspace_key: the workspace key (templated).
    :param run_id: the MLflow run id (templated).
    :param user_principal: sent as ``dh-user-principal`` when given (templated).
    :param oci_conn_id: an ``oci`` connection.
    """

    template_fields: Sequence[str] = ("ai_data_platform_id", "workspace_key", "run_id", "user_principal", "oci_conn_id")
    operator_extra_links = (OciExperimentRunLink(),)
    hook_class_path = _HOOK
    status_kind = "experiment_run"

    def __init__(
        self,
        *,
        ai_data_platform_id: str,
        workspace_key: str,
        run_id: str,
        user_principal: str | None = None,
        oci_conn_id: str = "oci_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_literal_ids(ai_data_platform_id=ai_data_platform_id, workspace_key=workspace_key, run_id=run_id)
        self.ai_data_platform_id = ai_data_platform_id
        self.workspace_key = workspace_key
        self.run_id = run_id
        self.user_principal = user_principal
        self.oci_conn_id = oci_conn_id

    def hook_kwargs(self) -> dict[str, Any]:
        return {"oci_conn_id": self.oci_conn_id}

    def run_ref(self) -> dict[str, Any]:
        return {
            "ai_data_platform_id": self.ai_data_platform_id,
            "workspace_key": self.workspace_key,
            "run_id": self.run_id,
            "user_principal": self.user_principal or None,
        }

    def describe_run(self) -> str:
        return f"OCI MLflow run {self.run_id} (workspace {self.workspace_key})"

    def execute(self, context: Context) -> Any:
        from airflow_task_runs.oci.links import experiment_run_console_url

        hook = self.hook
        push_link(
            context,
            OciExperimentRunLink,
            lambda: experiment_run_console_url(
                hook.console_url(), hook.credentials().region, self.ai_data_platform_id, self.workspace_key, self.run_id
            ),
        )
        return super().execute(context)
