"""Collect a finished NCLUE task run's result file."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_task_runs.core.ids import check_literal_ids
from airflow_task_runs.core.lineage import OUTPUT_TEMPLATE_FIELDS, WritesOutputs
from airflow_task_runs.core.starting import StartAttempt, StartRunOperator

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_task_runs.core.outputs import Destination
    from airflow_task_runs.ncp.hooks import NclueHook


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
        self.set_lineage_input(f"nclue://{_host(hook)}", f"task-runs/{self.run_id}")
        result = fetch_task_run_result(hook, self.run_id, destination, self.log)
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
    from airflow_task_runs.core.errors import RunNotFinishedError, TaskRunsError
    from airflow_task_runs.core.outputs import Destination, read_for_xcom, resolve_destination, write_atomically
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
    size, chunks = hook.open_result(run)
    what = f"NCLUE task run {run_id} result {run.result_bucket}/{run.result_file_path}"
    log.info("Fetching %s (%d bytes)", what, size)
    if destination is None:
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


class NclueCreateTaskRunOperator(WritesOutputs, StartRunOperator):
    """Create an NCLUE task run, wait for it like the sensor, optionally fetch its result file.

    ``POST /api/v1/task-runs`` carries no idempotency token, so it is sent once and never
    repeated blindly: when its answer is lost (no reply, a timeout, a 5xx) the run is looked up
    by name, and a retry of the task that may have created it looks it up before creating one.
    The run id is kept in the task's state store, so a retry reconnects to the run
    (``durable=False`` opts out). Waiting is the sensor's: ``mode="poke"`` / ``"reschedule"`` or
    ``deferrable=True``. A killed task cancels its run by deleting it, which NCLUE allows only
    while the run is ``registered``: past that point the kill logs that the run goes on.

    XCom gets ``{"run_id", "status"}`` (the final status), plus ``"result"`` with
    ``fetch_result=True`` (the text, or ``{"uri", "size", ...}`` with ``destination``, as
    :class:`NclueFetchTaskRunResultOperator` returns it).

    :param nclue_task_id: the NCLUE task to apply (``task_id`` in the API; Airflow owns ``task_id``).
    :param feature_id: the feature applied to the task.
    :param result_bucket: the NCP Object Storage bucket for the result.
    :param result_file_path: the result's path in the bucket; ending in ``/`` it is a folder
        (NCLUE names the file ``nclue_<random>_<time>.tsv``), else NCLUE appends ``_<random>_<time>.tsv``.
    :param name: the run's name (1-100 characters). Default: the DAG, task and a token of this
        start attempt, unique per attempt, which is what the look-up by name relies on.
    :param fetch_result: fetch the result file once the run has completed.
    :param destination: with ``fetch_result``, where to write it (templated); ``None`` returns its text.
    :param destination_conn_id: the connection to write with (templated), as in the fetch operator.
    :param asset_alias: an ``AssetAlias`` name that gets the written file as an Asset event.
    :param ncp_conn_id: an ``ncp`` connection.
    """

    template_fields: Sequence[str] = (
        "name",
        "nclue_task_id",
        "feature_id",
        "result_bucket",
        "result_file_path",
        *OUTPUT_TEMPLATE_FIELDS,
        "ncp_conn_id",
    )
    hook_class_path = "airflow_task_runs.ncp.hooks.NclueHook"
    status_kind = "task_run"
    cancel_method = "cancel_task_run"
    run_id_field = "run_id"
    external_id_key = "nclue_run_id"

    def __init__(
        self,
        *,
        nclue_task_id: str,
        feature_id: str,
        result_bucket: str,
        result_file_path: str,
        name: str | None = None,
        fetch_result: bool = False,
        destination: ObjectStoragePath | str | None = None,
        destination_conn_id: str | None = None,
        asset_alias: str | None = None,
        ncp_conn_id: str = "ncp_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.nclue_task_id = nclue_task_id
        self.feature_id = feature_id
        self.result_bucket = result_bucket
        self.result_file_path = result_file_path
        self.name = name
        self.fetch_result = fetch_result
        self.ncp_conn_id = ncp_conn_id
        self._init_outputs(destination, destination_conn_id, asset_alias)
        if destination is not None and not fetch_result:
            raise ValueError(f"{type(self).__name__}: destination is set but fetch_result is False; set both")

    def hook_kwargs(self) -> dict[str, Any]:
        return {"ncp_conn_id": self.ncp_conn_id}

    def describe_run(self) -> str:
        return f"NCLUE task run {self.started_run_id or '(not created)'}"

    def run_name(self, context: Context, token: str) -> str:
        if self.name:
            return self.name
        ti = context["ti"]
        return f"{ti.dag_id}.{ti.task_id}"[:91] + f"-{token[:8]}"

    def create_request(self, name: str) -> dict[str, str]:
        from airflow_task_runs.ncp.hooks import task_run_request

        return task_run_request(
            name=name,
            task_id=self.nclue_task_id,
            feature_id=self.feature_id,
            result_bucket=self.result_bucket,
            result_file_path=self.result_file_path,
        )

    def check_input(self, context: Context) -> None:
        self.create_request(self.name or "input-check")
        self.resolve_output()  # a destination that cannot work fails before the run is created

    def start_run(self, context: Context, attempt: StartAttempt) -> str:
        hook: NclueHook = self.hook  # type: ignore[assignment]
        request = self.create_request(self.run_name(context, attempt.token))
        exclude = (attempt.replaces,) if attempt.replaces else ()
        if attempt.maybe_started:
            found = hook.find_created_run(request, exclude)
            if found is not None:
                self.log.info(
                    "A previous try created NCLUE task run %s (%r): reconnecting", found.run_id, request["name"]
                )
                return found.run_id
        run_id = hook.create_task_run(request, exclude)
        self.log.info("Created NCLUE task run %s (%r)", run_id, request["name"])
        return run_id

    def collect(self, context: Context, run_id: str, status: dict[str, Any] | None) -> Any:
        result: dict[str, Any] = {"run_id": run_id, "status": status}
        if self.fetch_result and status is not None:
            hook: NclueHook = self.hook  # type: ignore[assignment]
            destination = self.resolve_output()
            self.set_lineage_input(f"nclue://{_host(hook)}", f"task-runs/{run_id}")
            result["result"] = fetch_task_run_result(hook, run_id, destination, self.log)
            if destination is not None:
                self.record_outputs(context, [result["result"]["uri"]])
        return result


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
