"""Collect a finished ROS AI task's ``TaskOutput`` (for GenerateTemplate / FixTemplate: the template)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_task_runs.alibaba.links import RosAITaskLink, push_ai_task_link
from airflow_task_runs.core.ids import check_literal_ids
from airflow_task_runs.core.lineage import OUTPUT_TEMPLATE_FIELDS, WritesOutputs

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_task_runs.alibaba.hooks import RosHook
    from airflow_task_runs.alibaba.models import AITask
    from airflow_task_runs.core.outputs import Destination

FORMATS = ("json", "yaml")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def format_of(destination: str, output_format: str | None) -> str:
    """YAML when asked for or when the destination ends in .yaml/.yml; JSON otherwise."""
    if output_format is not None:
        lowered = output_format.lower()
        if lowered not in FORMATS:
            raise ValueError(f"output_format {output_format!r} is not one of {', '.join(FORMATS)}")
        return lowered
    return "yaml" if destination.lower().endswith((".yaml", ".yml")) else "json"


def serialize(value: Any, fmt: str) -> bytes:
    """A template given as text (already JSON or YAML) is written as is; anything else is dumped."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if fmt == "yaml":
        import yaml

        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        text: str = yaml.dump(value, Dumper=dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)
        return text.encode("utf-8")
    import json

    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def default_file_name(ai_task_id: str, task_type: str | None, fmt: str) -> str:
    """``ros-ai-task-<id>-<type>.json``: a name that is safe on every object store."""
    stem = "-".join(part for part in ("ros-ai-task", ai_task_id, task_type or "") if part)
    stem = _UNSAFE.sub("_", stem).strip("._") or "ros-ai-task"
    return f"{stem}.{'yaml' if fmt == 'yaml' else 'json'}"


class RosFetchAITaskOutputOperator(WritesOutputs, BaseOperator):
    """Fetch a succeeded AI task with ``OutputOption=Enabled`` and deliver its ``TaskOutput``.

    With ``destination`` (an ObjectStoragePath or URI), the output is written atomically as
    JSON, or YAML when the destination ends in ``.yaml``/``.yml`` (or ``output_format="yaml"``);
    a folder destination (ending with ``/``) gets ``ros-ai-task-<id>-<TaskType>.<ext>``. XCom
    then gets ``{"uri", "size", "format", ...}``. Without it, XCom gets the output itself,
    under ``[task_runs] xcom_max_bytes``. A task that has not succeeded fails with its
    ``Status`` and ``StatusReason``.

    :param ai_task_id: the ROS AI task id, ``TaskId`` (templated; ``task_id`` is Airflow's).
    :param destination: file or folder to write to (templated); ``None`` returns it to XCom.
    :param destination_conn_id: the connection to write with (templated); default: the URI's
        ``conn_id@`` part, else the store's default credentials.
    :param asset_alias: an ``AssetAlias`` name that gets the written file as an Asset event.
    :param output_field: deliver only this key of ``TaskOutput`` (e.g. the template under it);
        a string value (a template body as text) is written unchanged.
    :param output_format: ``json`` or ``yaml``; default from the destination's extension.
    :param alibaba_ros_conn_id: an ``alibaba_ros`` (or ``alibaba_cloud``) connection.
    :param region_id: overrides the connection's region (console link only; templated).
    """

    template_fields: Sequence[str] = (
        "ai_task_id",
        *OUTPUT_TEMPLATE_FIELDS,
        "output_field",
        "alibaba_ros_conn_id",
        "region_id",
    )
    operator_extra_links = (RosAITaskLink(),)

    def __init__(
        self,
        *,
        ai_task_id: str,
        destination: ObjectStoragePath | str | None = None,
        destination_conn_id: str | None = None,
        asset_alias: str | None = None,
        output_field: str | None = None,
        output_format: str | None = None,
        alibaba_ros_conn_id: str = "alibaba_ros_default",
        region_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_literal_ids(ai_task_id=ai_task_id)
        if output_format is not None and output_format.lower() not in FORMATS:
            raise ValueError(f"output_format {output_format!r} is not one of {', '.join(FORMATS)}")
        self.ai_task_id = ai_task_id
        self._init_outputs(destination, destination_conn_id, asset_alias)
        self.output_field = output_field
        self.output_format = output_format
        self.alibaba_ros_conn_id = alibaba_ros_conn_id
        self.region_id = region_id

    @property
    def hook(self) -> RosHook:
        from airflow_task_runs.alibaba.hooks import RosHook

        return RosHook(alibaba_ros_conn_id=self.alibaba_ros_conn_id, region_id=self.region_id)

    def execute(self, context: Context) -> Any:
        import urllib.parse

        destination = self.resolve_output()  # a destination that cannot work fails before any cloud call
        hook = self.hook
        push_ai_task_link(context, hook, self.ai_task_id)
        host = urllib.parse.urlsplit(hook.endpoint(hook.connection)).netloc
        self.set_lineage_input(f"ros://{host}", f"ai-tasks/{self.ai_task_id}")
        try:
            task = hook.get_ai_task(self.ai_task_id, output=True)
        finally:
            hook.close()
        self._check_succeeded(hook, task)
        value = self._select(task)
        what = f"ROS AI task {self.ai_task_id} ({task.TaskType or 'unknown type'}) output"
        if destination is None:
            return self._to_xcom(value, what)
        result = self._to_destination(task, value, destination)
        self.record_outputs(context, [result["uri"]])
        return result

    def _check_succeeded(self, hook: RosHook, task: AITask) -> None:
        from airflow_task_runs.core.errors import RunFailedError, RunNotFinishedError
        from airflow_task_runs.core.states import RunState

        status = hook.status_of(task)
        if status.state is RunState.SUCCEEDED:
            return
        if status.state.is_failure:
            raise RunFailedError(f"ROS AI task {self.ai_task_id} has no output: it", status)
        reason = f" ({task.StatusReason})" if task.StatusReason else ""
        raise RunNotFinishedError(
            f"ROS AI task {self.ai_task_id} is {task.Status}{reason}, not SUCCESS: it has no output yet; "
            "wait for it with RosAITaskSensor before fetching its output"
        )

    def _select(self, task: AITask) -> Any:
        from airflow_task_runs.core.errors import TaskRunsError

        output = task.TaskOutput
        if output is None:
            raise TaskRunsError(
                f"ROS AI task {self.ai_task_id} is SUCCESS but GetAITask returned no TaskOutput "
                f"[request id {task.RequestId}]"
            )
        if self.output_field is None:
            return output
        if not isinstance(output, dict) or self.output_field not in output:
            keys = ", ".join(sorted(output)) if isinstance(output, dict) else type(output).__name__
            raise TaskRunsError(
                f"ROS AI task {self.ai_task_id}: TaskOutput has no field {self.output_field!r} "
                f"(it has: {keys}); fix output_field= or leave it unset to deliver the whole TaskOutput"
            )
        return output[self.output_field]

    def _to_xcom(self, value: Any, what: str) -> Any:
        from airflow_task_runs.core.outputs import xcom_value

        return xcom_value(what, value)

    def _to_destination(self, task: AITask, value: Any, destination: Destination) -> dict[str, Any]:
        from airflow_task_runs.core.outputs import write_bytes_atomically

        fmt = format_of("" if destination.is_folder else destination.path.name, self.output_format)
        target = destination.file(default_file_name(self.ai_task_id, task.TaskType, fmt))
        data = serialize(value, fmt)
        uri = write_bytes_atomically(target, data)
        self.log.info("Wrote ROS AI task %s output (%s, %d bytes) to %s", self.ai_task_id, fmt, len(data), uri)
        return {
            "uri": uri,
            "size": len(data),
            "format": fmt,
            "ai_task_id": self.ai_task_id,
            "task_type": task.TaskType,
            "request_id": task.RequestId,
        }
