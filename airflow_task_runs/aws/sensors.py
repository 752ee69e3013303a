"""Wait for an AWS HealthOmics run task or run to complete.

Imported by DAG files on every parse: nothing from the amazon provider (or botocore) is
imported here; the hook loads when the sensor first pokes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_task_runs.aws.links import HealthOmicsRunLink, HealthOmicsRunTaskLink
from airflow_task_runs.core.ids import check_literal_ids
from airflow_task_runs.core.sensors import TaskRunSensor

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_task_runs.aws.hooks import HealthOmicsHook  # noqa: F401 (the sensor's base names it)

_HOOK = "airflow_task_runs.aws.hooks.HealthOmicsHook"


class _HealthOmicsSensor(TaskRunSensor["HealthOmicsHook"]):
    """Shared connection parameters, in the amazon provider's names."""

    hook_class_path = _HOOK

    def __init__(
        self,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    def hook_kwargs(self) -> dict[str, Any]:
        return {
            "aws_conn_id": self.aws_conn_id,
            "region_name": self.region_name,
            "verify": self.verify,
            "botocore_config": self.botocore_config,
        }

    def _push_links(self, context: Context) -> None:
        from airflow_task_runs.aws.links import push_run_links

        ref = self.run_ref()
        push_run_links(context, self.hook, ref["run_id"], ref.get("run_task_id"))

    def execute(self, context: Context) -> Any:
        self._push_links(context)
        return super().execute(context)


class HealthOmicsRunTaskSensor(_HealthOmicsSensor):
    """Wait until a HealthOmics run task is ``COMPLETED``; fail with ``failureReason: statusMessage``.

    XCom gets the final status; its ``details`` hold every GetRunTask field plus ``runId``
    and the run's ``runUuid`` (run ids are reused after deletion).

    :param run_id: the HealthOmics run id (templated).
    :param run_task_id: the HealthOmics task id, ``taskId`` (templated; ``task_id`` is Airflow's).
    :param aws_conn_id: an ``aws`` connection (amazon provider).
    :param region_name: overrides the connection's region (templated).
    :param verify: TLS verification, as in the amazon provider.
    :param botocore_config: botocore ``Config`` keyword arguments (e.g. ``{"retries": {...}}``).
    """

    template_fields: Sequence[str] = ("run_id", "run_task_id", "aws_conn_id", "region_name")
    operator_extra_links = (HealthOmicsRunLink(), HealthOmicsRunTaskLink())
    status_kind = "task"

    def __init__(self, *, run_id: str, run_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_literal_ids(run_id=run_id, run_task_id=run_task_id)
        self.run_id = run_id
        self.run_task_id = run_task_id

    def run_ref(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run_task_id": self.run_task_id}

    def describe_run(self) -> str:
        return f"HealthOmics run {self.run_id} task {self.run_task_id}"


class HealthOmicsRunSensor(_HealthOmicsSensor):
    """Wait until a HealthOmics run is ``COMPLETED``; fail on FAILED, CANCELLED or DELETED with its reason.

    XCom gets the final status; its ``details`` hold every GetRun field, ``uuid`` included.

    :param run_id: the HealthOmics run id (templated).
    :param aws_conn_id: an ``aws`` connection (amazon provider).
    :param region_name: overrides the connection's region (templated).
    :param verify: TLS verification, as in the amazon provider.
    :param botocore_config: botocore ``Config`` keyword arguments.
    """

    template_fields: Sequence[str] = ("run_id", "aws_conn_id", "region_name")
    operator_extra_links = (HealthOmicsRunLink(),)
    status_kind = "run"

    def __init__(self, *, run_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_literal_ids(run_id=run_id)
        self.run_id = run_id

    def run_ref(self) -> dict[str, Any]:
        return {"run_id": self.run_id}

    def describe_run(self) -> str:
        return f"HealthOmics run {self.run_id}"
