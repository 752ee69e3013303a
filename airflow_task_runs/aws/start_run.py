"""Start a HealthOmics run, wait for it, list its outputs (``HealthOmicsStartRunOperator``).

Its own module: it builds on the sensor machinery, which DAGs that only fetch need not import.
``airflow_task_runs.aws.operators`` re-exports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_task_runs.aws.links import HealthOmicsRunLink
from airflow_task_runs.aws.operators import check_listing, list_run_outputs
from airflow_task_runs.aws.sensors import _HealthOmicsSensor
from airflow_task_runs.core.starting import StartAttempt, StartRunOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class HealthOmicsStartRunOperator(StartRunOperator, _HealthOmicsSensor):
    """Start a HealthOmics workflow run, wait for it, list its outputs; cancel it if the task is killed.

    ``requestId`` (StartRun's idempotency token) is the same for every call within one try,
    so botocore's retries of a throttled or 5xx StartRun never start a second run. The run id
    is kept in the task's state store: a retry reconnects to the run instead of starting
    another (``durable=False`` opts out). Waiting is the sensor's: ``mode="poke"`` /
    ``"reschedule"`` or ``deferrable=True``, with ``poke_interval`` and ``timeout``; a FAILED or
    CANCELLED run fails the task with its ``failureReason``.

    XCom gets ``{"runId", "runUuid", "outputUri", "uris", "status"}`` (the listing of
    :class:`HealthOmicsListRunOutputsOperator`, honouring ``outputUriPrefixMode``, plus the
    final status); with ``list_outputs=False`` no listing, with ``wait_for_completion=False``
    just ``{"runId", "status": None}`` once the run has started.

    :param workflow_id: the workflow's id (templated).
    :param role_arn: the IAM service role the run uses (templated).
    :param output_uri: ``s3://`` URI the run writes under (templated).
    :param workflow_type: ``PRIVATE`` or ``READY2RUN``.
    :param parameters: the workflow's parameters, a dict (templated).
    :param run_group_id: the run group (templated).
    :param priority: 0-100000.
    :param storage_type: ``STATIC`` or ``DYNAMIC``; ``storage_capacity`` in GiB for STATIC.
    :param tags: tags of the run (templated).
    :param name: the run's name (templated).
    :param output_uri_prefix_mode: ``SERVICE_DEFINED`` (outputs under ``<output_uri>/<run id>/``)
        or ``NONE_WITH_OVERWRITE`` (directly under ``output_uri``, overwriting).
    :param start_run_kwargs: any other StartRun field by its API name (``workflowVersionName``,
        ``cacheId``, ``logLevel``, ``retentionMode``, ...).
    :param list_outputs: list the output objects once the run has completed.
    :param page_size: keys per ListObjectsV2 call when listing (1-1000).
    :param max_list_pages: / :param max_list_seconds: stop listing with an error past this many
        ListObjectsV2 pages (default 1,000) or seconds (default 1800); the listing also stops as
        soon as it is over ``[task_runs] xcom_max_bytes``.
    :param wait_for_completion: wait for the run to end; ``False`` returns once it has started.
    :param cancel_on_kill: cancel the run when the task is killed (worker or triggerer).
    :param aws_conn_id: an ``aws`` connection (amazon provider).
    """

    template_fields: Sequence[str] = (
        "workflow_id",
        "role_arn",
        "output_uri",
        "parameters",
        "run_group_id",
        "tags",
        "name",
        "output_uri_prefix_mode",
        "start_run_kwargs",
        "aws_conn_id",
        "region_name",
    )
    template_fields_renderers = {"parameters": "json", "tags": "json", "start_run_kwargs": "json"}
    operator_extra_links = (HealthOmicsRunLink(),)
    status_kind = "run"
    cancel_method = "cancel_run"
    run_id_field = "id"
    external_id_key = "healthomics_run_id"

    def __init__(
        self,
        *,
        workflow_id: str | None,
        role_arn: str,
        output_uri: str,
        workflow_type: str | None = None,
        parameters: dict[str, Any] | None = None,
        run_group_id: str | None = None,
        priority: int | None = None,
        storage_type: str | None = None,
        storage_capacity: int | None = None,
        tags: dict[str, str] | None = None,
        name: str | None = None,
        output_uri_prefix_mode: str | None = None,
        start_run_kwargs: dict[str, Any] | None = None,
        list_outputs: bool = True,
        page_size: int | None = None,
        max_list_pages: int | None = None,
        max_list_seconds: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_listing(page_size, max_list_pages, max_list_seconds)
        self.workflow_id = workflow_id
        self.role_arn = role_arn
        self.output_uri = output_uri
        self.workflow_type = workflow_type
        self.parameters = parameters
        self.run_group_id = run_group_id
        self.priority = priority
        self.storage_type = storage_type
        self.storage_capacity = storage_capacity
        self.tags = tags
        self.name = name
        self.output_uri_prefix_mode = output_uri_prefix_mode
        self.start_run_kwargs = start_run_kwargs
        self.list_outputs = list_outputs
        self.page_size = page_size
        self.max_list_pages = max_list_pages
        self.max_list_seconds = max_list_seconds

    def describe_run(self) -> str:
        return f"HealthOmics run {self.started_run_id or '(not started)'}"

    def start_run_request(self, request_id: str) -> dict[str, Any]:
        from airflow_task_runs.aws.runs import start_run_request

        return start_run_request(
            request_id=request_id,
            role_arn=self.role_arn,
            output_uri=self.output_uri,
            workflow_id=self.workflow_id,
            workflow_type=self.workflow_type,
            parameters=self.parameters,
            run_group_id=self.run_group_id,
            priority=self.priority,
            storage_type=self.storage_type,
            storage_capacity=self.storage_capacity,
            tags=self.tags,
            name=self.name,
            output_uri_prefix_mode=self.output_uri_prefix_mode,
            extra=self.start_run_kwargs,
        )

    def check_input(self, context: Context) -> None:
        self.start_run_request("input-check")

    def start_run(self, context: Context, attempt: StartAttempt) -> str:
        # The same requestId as a try that may have started the run: HealthOmics answers with that run.
        return str(self.hook.start_run(self.start_run_request(attempt.token))["id"])  # type: ignore[attr-defined]

    def run_attached(self, context: Context) -> None:
        self._push_links(context)

    def collect(self, context: Context, run_id: str, status: dict[str, Any] | None) -> Any:
        if status is None or not self.list_outputs:
            return {"runId": run_id, "status": status}
        run = self.hook.get_run(run_id)  # type: ignore[attr-defined]
        listing = list_run_outputs(
            self.hook,  # type: ignore[arg-type]
            run,
            self.page_size,
            self.log,
            max_pages=self.max_list_pages,
            max_seconds=self.max_list_seconds,
        )
        return {**listing, "status": status}
