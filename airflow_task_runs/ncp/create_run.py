"""Create an NCLUE task run, wait for it, fetch its result (``NclueCreateTaskRunOperator``).

Its own module: it builds on the sensor machinery, which DAGs that only fetch need not import.
``airflow_task_runs.ncp.operators`` re-exports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_task_runs.core.lineage import OUTPUT_TEMPLATE_FIELDS, WritesOutputs
from airflow_task_runs.core.starting import StartAttempt, StartRunOperator
from airflow_task_runs.ncp.operators import _host, fetch_task_run_result

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_task_runs.ncp.hooks import NclueHook


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
    :param name: the start of the run's name (1-91 characters): ``-<token>`` of this start attempt
        is appended, so the name is unique per attempt, which the look-up by name relies on.
        Default: ``<dag_id>.<task_id>``.
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
        """``<name or dag.task>-<attempt token>``: the token makes the name unique per start attempt,
        so the look-up by name after a lost answer can only find this attempt's run, never an
        older run that a fixed user-given name would also match."""
        ti = context["ti"]
        base = self.name or f"{ti.dag_id}.{ti.task_id}"
        return f"{base[:91]}-{token[:8]}"

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
