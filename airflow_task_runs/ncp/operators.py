"""Collect a finished NCLUE task run's result file."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_task_runs.core.ids import check_literal_ids
from airflow_task_runs.core.lineage import OUTPUT_TEMPLATE_FIELDS, WritesOutputs

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_task_runs.core.outputs import Destination
    from airflow_task_runs.ncp.create_run import NclueCreateTaskRunOperator as NclueCreateTaskRunOperator
    from airflow_task_runs.ncp.hooks import NclueHook

#: operators that live in their own module (they import the sensor machinery), loaded on first use
_LAZY = {"NclueCreateTaskRunOperator": "airflow_task_runs.ncp.create_run"}


def __getattr__(name: str) -> Any:
    """``from airflow_task_runs.ncp.operators import NclueCreateTaskRunOperator`` keeps working,
    while DAGs that only fetch do not pay for importing the sensor machinery."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class NclueFetchTaskRunResultOperator(WritesOutputs, BaseOperator):
    """Stream a completed run's result file to ``destination``, or return its text to XCom.

    The file is read by key from NCP Object Storage (``result_bucket`` /
    ``result_file_path``; NCP does not support ListObjectsV2). With ``destination`` (an
    ObjectStoragePath or URI; a folder when it ends with ``/``), the file is streamed there
    atomically and XCom gets ``{"uri", "size", ...}``. Without it, XCom gets the UTF-8 text,
    under ``[task_runs] xcom_max_bytes``.

    :param run_id: the NCLUE task run id (templated).
    :param destination: where to write the file (templated); ``None`` returns its text.
    :param destination_conn_id: the connection to write with (templated); default: the URI's
        ``conn_id@`` part, else the store's default credentials.
    :param asset_alias: an ``AssetAlias`` name that gets the written file as an Asset event.
    :param ncp_conn_id: an ``ncp`` connection.
    """

    template_fields: Sequence[str] = ("run_id", *OUTPUT_TEMPLATE_FIELDS, "ncp_conn_id")

    def __init__(
        self,
        *,
        run_id: str,
        destination: ObjectStoragePath | str | None = None,
        destination_conn_id: str | None = None,
        asset_alias: str | None = None,
        ncp_conn_id: str = "ncp_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_literal_ids(run_id=run_id)
        self.run_id = run_id
        self.ncp_conn_id = ncp_conn_id
        self._init_outputs(destination, destination_conn_id, asset_alias)

    @property
    def hook(self) -> NclueHook:
        from airflow_task_runs.ncp.hooks import NclueHook

        return NclueHook(ncp_conn_id=self.ncp_conn_id)

    def execute(self, context: Context) -> Any:
        destination = self.resolve_output()  # a destination that cannot work fails before any cloud call
        hook = self.hook
        try:
            self.set_lineage_input(f"nclue://{_host(hook)}", f"task-runs/{self.run_id}")
            result = fetch_task_run_result(hook, self.run_id, destination, self.log)
        finally:
            hook.close()  # its API and Object Storage pools
        if destination is not None:
            self.record_outputs(context, [result["uri"]])
        return result


def _host(hook: NclueHook) -> str:
    import urllib.parse

    return urllib.parse.urlsplit(hook.api_url(hook.connection)).netloc


def fetch_task_run_result(
    hook: NclueHook, run_id: str, destination: Destination | ObjectStoragePath | str | None, log: Any
) -> Any:
    """A completed run's result file: its UTF-8 text, or ``{"uri", "size", ...}`` once written to ``destination``."""
    from airflow_task_runs.core.errors import OutputTooLargeError, RunNotFinishedError, TaskRunsError
    from airflow_task_runs.core.outputs import (
        Destination,
        read_for_xcom,
        resolve_destination,
        write_atomically,
        xcom_max_bytes,
    )
    from airflow_task_runs.core.states import RunState

    if destination is not None and not isinstance(destination, Destination):
        destination = resolve_destination(destination)
    run = hook.get_task_run(run_id)
    status = hook.status_of(run)
    if status.state is not RunState.SUCCEEDED:
        reason = f": {run.fail_message}" if run.fail_message else ""
        raise RunNotFinishedError(
            f"NCLUE task run {run_id} is {run.status}, not completed{reason}; "
            "wait for it with NclueTaskRunSensor before fetching its result"
        )
    name = posixpath.basename(str(run.result_file_path or ""))
    if not name:
        raise TaskRunsError(
            f"NCLUE task run {run_id}: result_file_path {run.result_file_path!r} names a folder, not a "
            "file (it ends with '/'); there is no result file to fetch. Nothing was written"
        )
    what = f"NCLUE task run {run_id} result {run.result_bucket}/{run.result_file_path}"
    with hook.open_result(run) as (size, chunks):
        log.info("Fetching %s (%d bytes)", what, size)
        if destination is None:
            if size > xcom_max_bytes():  # known from its Content-Length: refused before reading
                raise OutputTooLargeError(what, size, xcom_max_bytes())
            data = read_for_xcom(chunks, what)
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                    "pass destination= to copy it byte for byte to object storage"
                ) from None
        uri = write_atomically(destination.file(name), chunks, expected_size=size)
    return {
        "uri": uri,
        "size": size,
        "run_id": run.run_id,
        "result_bucket": run.result_bucket,
        "result_file_path": run.result_file_path,
    }


class NclueCancelTaskRunOperator(BaseOperator):
    """Cancel an NCLUE task run: delete it while ``registered``; fail clearly once it has started.

    NCLUE cancels a run only by deleting it before it starts; a ``pending`` or ``in_progress``
    run cannot be stopped, and this operator fails saying so. A run that has ended is left alone.
    XCom gets ``{"run_id", "cancelled"}``.

    :param run_id: the NCLUE task run id (templated).
    :param ncp_conn_id: an ``ncp`` connection.
    """

    template_fields: Sequence[str] = ("run_id", "ncp_conn_id")

    def __init__(self, *, run_id: str, ncp_conn_id: str = "ncp_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_literal_ids(run_id=run_id)
        self.run_id = run_id
        self.ncp_conn_id = ncp_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_task_runs.ncp.hooks import NclueHook

        cancelled = NclueHook(ncp_conn_id=self.ncp_conn_id).cancel_task_run(self.run_id)
        if not cancelled:
            self.log.info("NCLUE task run %s had already ended: nothing to cancel", self.run_id)
        return {"run_id": self.run_id, "cancelled": cancelled}
