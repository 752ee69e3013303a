"""Collect a HealthOmics run task's details and log, and a run's outputs.

Imported by DAG files on every parse: the amazon provider and botocore load inside ``execute``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_task_runs.aws.links import HealthOmicsRunLink, HealthOmicsRunTaskLink
from airflow_task_runs.core.ids import check_literal_ids
from airflow_task_runs.core.lineage import OUTPUT_TEMPLATE_FIELDS, WritesOutputs

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_task_runs.aws.hooks import HealthOmicsHook
    from airflow_task_runs.aws.models import Run
    from airflow_task_runs.aws.start_run import HealthOmicsStartRunOperator as HealthOmicsStartRunOperator

#: operators that live in their own module (they import the sensor machinery), loaded on first use
_LAZY = {"HealthOmicsStartRunOperator": "airflow_task_runs.aws.start_run"}


def __getattr__(name: str) -> Any:
    """``from airflow_task_runs.aws.operators import HealthOmicsStartRunOperator`` keeps working,
    while DAGs that only fetch do not pay for importing the sensor machinery."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _HealthOmicsOperator(BaseOperator):
    """Shared connection parameters, in the amazon provider's names."""

    def __init__(
        self,
        *,
        run_id: str,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_literal_ids(run_id=run_id)
        self.run_id = run_id
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    @property
    def hook(self) -> HealthOmicsHook:
        from airflow_task_runs.aws.hooks import HealthOmicsHook

        return HealthOmicsHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            botocore_config=self.botocore_config,
        )


class HealthOmicsGetRunTaskOperator(_HealthOmicsOperator):
    """Push a run task's details (every ``GetRunTask`` field, JSON-safe) to XCom.

    ``runId`` and the run's ``runUuid`` are added: run ids are reused after a run is deleted,
    the uuid tells the runs apart.

    :param run_id: the HealthOmics run id (templated).
    :param run_task_id: the HealthOmics task id, ``taskId`` (templated; ``task_id`` is Airflow's).
    :param aws_conn_id: an ``aws`` connection (amazon provider).
    :param region_name: overrides the connection's region (templated).
    """

    template_fields: Sequence[str] = ("run_id", "run_task_id", "aws_conn_id", "region_name")
    operator_extra_links = (HealthOmicsRunLink(), HealthOmicsRunTaskLink())

    def __init__(self, *, run_id: str, run_task_id: str, **kwargs: Any) -> None:
        super().__init__(run_id=run_id, **kwargs)
        check_literal_ids(run_task_id=run_task_id)
        self.run_task_id = run_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_task_runs.aws.links import push_run_links
        from airflow_task_runs.core.outputs import xcom_value

        hook = self.hook
        push_run_links(context, hook, self.run_id, self.run_task_id)
        task = hook.get_run_task(self.run_id, self.run_task_id)
        run = hook.get_run(self.run_id)
        self.log.info("HealthOmics run %s task %s (%s) is %s", self.run_id, self.run_task_id, task.name, task.status)
        details: dict[str, Any] = xcom_value(
            f"HealthOmics run {self.run_id} task {self.run_task_id} details",
            {"runId": self.run_id, "runUuid": run.uuid, **task.model_dump(mode="json", exclude_none=True)},
        )
        return details


def log_file_name(run_id: str, run_task_id: str) -> str:
    return f"healthomics-run-{run_id}-task-{run_task_id}.log"


class HealthOmicsFetchTaskLogOperator(WritesOutputs, _HealthOmicsOperator):
    """Fetch a run task's whole log from CloudWatch Logs, to an ObjectStoragePath or to XCom.

    The stream is the task's ``logStream`` (a full log-stream ARN naming group and stream, or a
    bare stream name in ``log_group``); events are read oldest first, page after page, until
    CloudWatch returns the same ``nextForwardToken`` twice (the end of the stream). Each event
    becomes one line.

    With ``destination`` (an ObjectStoragePath or URI; a folder when it ends with ``/``), the
    lines are streamed there atomically and XCom gets ``{"uri", "size", "lines", ...}``.
    Without it, XCom gets ``{"log": <text>, ...}`` under ``[task_runs] xcom_max_bytes``.

    :param run_id: the HealthOmics run id (templated).
    :param run_task_id: the HealthOmics task id (templated).
    :param destination: file or folder to write to (templated); ``None`` returns the log to XCom.
    :param destination_conn_id: the connection to write with (templated); default: the URI's
        ``conn_id@`` part, else the store's default credentials.
    :param asset_alias: an ``AssetAlias`` name that gets the written log as an Asset event.
    :param log_group: the group of a bare stream name (default ``/aws/omics/WorkflowLog``).
    :param page_size: events per GetLogEvents call (``limit``); ``None`` is CloudWatch's default.
    :param max_log_pages: / :param max_log_seconds: stop paging with an error past this many
        GetLogEvents pages (default 10,000) or seconds (default 3600) without reaching the end.
    :param allow_unfinished: fetch the log of a task that has not ended yet. Off by default: a
        running task's log is incomplete, and written out it would look complete.
    :param aws_conn_id: an ``aws`` connection; ``service_config.logs`` in its extra is honoured.
    """

    template_fields: Sequence[str] = (
        "run_id",
        "run_task_id",
        *OUTPUT_TEMPLATE_FIELDS,
        "log_group",
        "aws_conn_id",
        "region_name",
    )
    operator_extra_links = (HealthOmicsRunLink(), HealthOmicsRunTaskLink())

    def __init__(
        self,
        *,
        run_id: str,
        run_task_id: str,
        destination: ObjectStoragePath | str | None = None,
        destination_conn_id: str | None = None,
        asset_alias: str | None = None,
        log_group: str | None = None,
        page_size: int | None = None,
        allow_unfinished: bool = False,
        max_log_pages: int | None = None,
        max_log_seconds: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(run_id=run_id, **kwargs)
        check_literal_ids(run_task_id=run_task_id)
        self.allow_unfinished = allow_unfinished
        self.max_log_pages = max_log_pages
        self.max_log_seconds = max_log_seconds
        if page_size is not None and not 1 <= page_size <= 10000:
            raise ValueError(f"page_size must be from 1 to 10000 (CloudWatch's bound), got {page_size!r}")
        self.run_task_id = run_task_id
        self._init_outputs(destination, destination_conn_id, asset_alias)
        self.log_group = log_group
        self.page_size = page_size

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_task_runs.aws.hooks import DEFAULT_LOG_GROUP, TASK_STATES, parse_log_stream
        from airflow_task_runs.aws.links import push_run_links
        from airflow_task_runs.core.errors import RunNotFinishedError, TaskRunsError
        from airflow_task_runs.core.outputs import read_for_xcom, write_atomically

        destination = self.resolve_output()  # a destination that cannot work fails before any cloud call
        hook = self.hook
        push_run_links(context, hook, self.run_id, self.run_task_id)
        self.set_lineage_input(
            f"healthomics://{hook.console_region()}", f"runs/{self.run_id}/tasks/{self.run_task_id}/log"
        )
        task = hook.get_run_task(self.run_id, self.run_task_id)
        run = hook.get_run(self.run_id)
        if not task.logStream:
            raise TaskRunsError(
                f"HealthOmics run {self.run_id} task {self.run_task_id} is {task.status} and has no logStream yet; "
                "wait for it with HealthOmicsRunTaskSensor before fetching its log"
            )
        if not TASK_STATES.is_terminal(task.status) and not self.allow_unfinished:
            raise RunNotFinishedError(
                f"HealthOmics run {self.run_id} task {self.run_task_id} is {task.status}: its log is not complete "
                "yet. Wait for it with HealthOmicsRunTaskSensor, or pass allow_unfinished=True for a partial log"
            )
        group, stream = parse_log_stream(task.logStream, self.log_group or DEFAULT_LOG_GROUP)
        what = f"HealthOmics run {self.run_id} task {self.run_task_id} log ({group} {stream})"
        counts = {"lines": 0, "size": 0}

        def lines() -> Iterator[bytes]:
            limits: dict[str, Any] = {}
            if self.max_log_pages is not None:
                limits["max_pages"] = self.max_log_pages
            if self.max_log_seconds is not None:
                limits["max_seconds"] = self.max_log_seconds
            for event in hook.iter_log_events(group, stream, self.page_size, **limits):
                line = (str(event.get("message", "")).rstrip("\n") + "\n").encode("utf-8")
                counts["lines"] += 1
                counts["size"] += len(line)
                yield line

        result: dict[str, Any] = {
            "runId": self.run_id,
            "runUuid": run.uuid,
            "taskId": self.run_task_id,
            "logGroup": group,
            "logStream": stream,
            "taskStatus": task.status,
        }
        if destination is None:
            text = read_for_xcom(lines(), what).decode("utf-8")
            self.log.info("Fetched %s: %d lines, %d bytes, to XCom", what, counts["lines"], counts["size"])
            return {**result, "log": text, "lines": counts["lines"], "size": counts["size"]}
        uri = write_atomically(destination.file(log_file_name(self.run_id, self.run_task_id)), lines())
        self.record_outputs(context, [uri])
        self.log.info("Fetched %s: %d lines, %d bytes, to %s", what, counts["lines"], counts["size"], uri)
        return {**result, "uri": uri, "lines": counts["lines"], "size": counts["size"]}


def run_output_root(run: Run) -> str:
    """Where a run's outputs are: ``runOutputUri``; else ``outputUri`` itself for a run started with
    ``outputUriPrefixMode=NONE_WITH_OVERWRITE``, ``<outputUri>/<run id>/`` otherwise (HealthOmics' layout)."""
    from airflow_task_runs.core.errors import TaskRunsError

    if run.runOutputUri:
        root: str | None = run.runOutputUri
    elif run.outputUri and run.outputUriPrefixMode == "NONE_WITH_OVERWRITE":
        root = run.outputUri
    else:
        root = posixpath.join(run.outputUri, run.id) if run.outputUri else None
    if not root:
        raise TaskRunsError(f"HealthOmics run {run.id} has no outputUri: it was started without an output location")
    return root.rstrip("/") + "/"


class HealthOmicsListRunOutputsOperator(_HealthOmicsOperator):
    """List a completed run's output objects (S3, every page) to XCom as ``s3://`` URIs.

    Downstream tasks read them with ``ObjectStoragePath(uri, conn_id=...)``. XCom gets
    ``{"runId", "runUuid", "outputUri", "uris"}``. A run that is not ``COMPLETED`` fails
    (with its reason when it failed) unless ``require_completed=False``.

    The listing stops with an error as soon as the URIs are over ``[task_runs] xcom_max_bytes``
    (they are never all held first), and after ``max_list_pages`` pages or ``max_list_seconds``
    without S3 ending it.

    :param run_id: the HealthOmics run id (templated).
    :param require_completed: refuse to list a run that has not completed.
    :param page_size: keys per ListObjectsV2 call (1-1000); ``None`` is S3's default (1000).
    :param max_list_pages: / :param max_list_seconds: stop listing with an error past this many
        ListObjectsV2 pages (default 1,000) or seconds (default 1800) without reaching the end.
    :param aws_conn_id: an ``aws`` connection; ``service_config.s3`` in its extra is honoured.
    """

    template_fields: Sequence[str] = ("run_id", "aws_conn_id", "region_name")
    operator_extra_links = (HealthOmicsRunLink(),)

    def __init__(
        self,
        *,
        run_id: str,
        require_completed: bool = True,
        page_size: int | None = None,
        max_list_pages: int | None = None,
        max_list_seconds: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(run_id=run_id, **kwargs)
        check_listing(page_size, max_list_pages, max_list_seconds)
        self.require_completed = require_completed
        self.page_size = page_size
        self.max_list_pages = max_list_pages
        self.max_list_seconds = max_list_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_task_runs.aws.links import push_run_links
        from airflow_task_runs.core.errors import RunFailedError, RunNotFinishedError
        from airflow_task_runs.core.states import RunState

        hook = self.hook
        push_run_links(context, hook, self.run_id)
        run = hook.get_run(self.run_id)
        if self.require_completed:
            status = hook.run_status_of(run)
            if status.state.is_failure:
                raise RunFailedError(f"HealthOmics run {self.run_id} has no outputs: it", status)
            if status.state is not RunState.SUCCEEDED:
                raise RunNotFinishedError(
                    f"HealthOmics run {self.run_id} is {run.status}, not COMPLETED: its outputs are not final; "
                    "wait for it with HealthOmicsRunSensor, or pass require_completed=False"
                )
        return list_run_outputs(
            hook, run, self.page_size, self.log, max_pages=self.max_list_pages, max_seconds=self.max_list_seconds
        )


def check_listing(page_size: int | None, max_list_pages: int | None, max_list_seconds: float | None) -> None:
    """The listing parameters, checked when the DAG is parsed."""
    if page_size is not None and not 1 <= page_size <= 1000:
        raise ValueError(f"page_size must be from 1 to 1000 (ListObjectsV2's bound), got {page_size!r}")
    if max_list_pages is not None and max_list_pages < 1:
        raise ValueError(f"max_list_pages must be at least 1, got {max_list_pages!r}")
    if max_list_seconds is not None and not max_list_seconds > 0:
        raise ValueError(f"max_list_seconds must be above 0, got {max_list_seconds!r}")


def list_run_outputs(
    hook: HealthOmicsHook,
    run: Run,
    page_size: int | None,
    log: Any,
    *,
    max_pages: int | None = None,
    max_seconds: float | None = None,
) -> dict[str, Any]:
    """``{"runId", "runUuid", "outputUri", "uris"}`` of a run's output objects, size-guarded for XCom.

    URIs are kept while they fit in ``[task_runs] xcom_max_bytes``: the first one past it stops
    the listing with :class:`OutputTooLargeError`, before more pages are asked for.
    """
    import json

    from airflow_task_runs.aws.hooks import DEFAULT_MAX_LIST_PAGES, DEFAULT_MAX_LIST_SECONDS
    from airflow_task_runs.core.errors import OutputTooLargeError
    from airflow_task_runs.core.outputs import xcom_max_bytes, xcom_value

    root = run_output_root(run)
    what = f"HealthOmics run {run.id} output listing"
    uris: list[str] = []
    result = {"runId": run.id, "runUuid": run.uuid, "outputUri": root, "uris": uris}
    limit = xcom_max_bytes()
    size = len(json.dumps(result, default=str).encode())
    listing = hook.iter_output_uris(
        root,
        page_size,
        max_pages=DEFAULT_MAX_LIST_PAGES if max_pages is None else max_pages,
        max_seconds=DEFAULT_MAX_LIST_SECONDS if max_seconds is None else max_seconds,
    )
    for uri in listing:
        size += len(json.dumps(uri).encode()) + 2  # and its ", "
        if size > limit:
            raise OutputTooLargeError(f"{what} under {root} (stopped at object {len(uris) + 1})", size, limit)
        uris.append(uri)
    log.info("HealthOmics run %s has %d output object(s) under %s", run.id, len(uris), root)
    value: dict[str, Any] = xcom_value(what, result)
    return value


class HealthOmicsCancelRunOperator(_HealthOmicsOperator):
    """Cancel a HealthOmics run (``CancelRun``); a run that has already ended is left as it is.

    XCom gets ``{"runId", "cancelled"}``: ``cancelled`` is ``False`` when the run had ended.

    :param run_id: the HealthOmics run id (templated).
    :param aws_conn_id: an ``aws`` connection (amazon provider).
    """

    template_fields: Sequence[str] = ("run_id", "aws_conn_id", "region_name")
    operator_extra_links = (HealthOmicsRunLink(),)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_task_runs.aws.links import push_run_links

        hook = self.hook
        push_run_links(context, hook, self.run_id)
        cancelled = hook.cancel_run(self.run_id)
        if not cancelled:
            self.log.info("HealthOmics run %s had already ended: nothing to cancel", self.run_id)
        return {"runId": self.run_id, "cancelled": cancelled}
