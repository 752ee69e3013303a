"""Collect an OCI AI Data Platform task run's output, or an MLflow run's details.

Imported on every DAG parse: the decoding (:mod:`airflow_task_runs.oci.decoding`) and the
streamed reading of ``fetchOutput`` (:mod:`airflow_task_runs.oci.output_stream`) are
imported only when a task runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_task_runs.core.ids import check_literal_ids
from airflow_task_runs.core.lineage import OUTPUT_TEMPLATE_FIELDS, WritesOutputs
from airflow_task_runs.oci.links import OciExperimentRunLink, OciTaskRunLink, push_link

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_task_runs.core.outputs import Destination
    from airflow_task_runs.oci.hooks import OciAiDataPlatformHook
    from airflow_task_runs.oci.output_stream import StreamedOutput

#: names that lived here before :mod:`airflow_task_runs.oci.decoding`; still importable from here
_MOVED_TO_DECODING = frozenset(
    {
        "TEXT_TYPES",
        "BINARY_TYPES",
        "REFERENCE_TYPES",
        "CHARSETS",
        "COMPRESSIONS",
        "describe_item",
        "is_text",
        "extension",
        "declared_length",
        "item_chunks",
        "decode_item",
        "decode_text",
    }
)
#: the fetchOutput response may be this many times the XCom limit before reading stops
#: (base64 of UTF-16 text is 8/3 of the text it carries)
XCOM_RESPONSE_FACTOR = 4


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_DECODING:
        from airflow_task_runs.oci import decoding

        return getattr(decoding, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class OciFetchTaskRunOutputOperator(WritesOutputs, BaseOperator):
    """Fetch a task run's output (``fetchOutput``) and decode every data item exactly.

    With ``destination`` (an ObjectStoragePath or URI of a folder), each content item becomes
    one object ``{position:03d}_{type}{ext}``, streamed, with ``output_parameters.json``
    beside them; XCom gets their URIs and the parameters. The set is all or nothing: the
    objects appear together once every item was written, ``output_parameters.json`` last.
    Without it, XCom gets text items as text, binary items as base64 and the parameters as a
    dict, under ``[task_runs] xcom_max_bytes``. FILE_PATH / NOTEBOOK_PATH items are passed on
    as paths. ``isTruncated`` is logged as a warning and flagged in XCom.

    :param output_key: defaults to the task run's ``outputKey`` (templated).
    :param destination: folder for the objects (templated); ``None`` returns everything to XCom.
    :param destination_conn_id: the connection to write with (templated); default: the URI's
        ``conn_id@`` part, else the store's default credentials.
    :param asset_alias: an ``AssetAlias`` name that gets every written object as an Asset event.
    """

    template_fields: Sequence[str] = (
        "ai_data_platform_id",
        "workspace_key",
        "task_run_key",
        "output_key",
        *OUTPUT_TEMPLATE_FIELDS,
        "oci_conn_id",
    )
    operator_extra_links = (OciTaskRunLink(),)

    def __init__(
        self,
        *,
        ai_data_platform_id: str,
        workspace_key: str,
        task_run_key: str,
        output_key: str | None = None,
        destination: ObjectStoragePath | str | None = None,
        destination_conn_id: str | None = None,
        asset_alias: str | None = None,
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
        self.output_key = output_key
        self.oci_conn_id = oci_conn_id
        self._init_outputs(destination, destination_conn_id, asset_alias)

    @property
    def hook(self) -> OciAiDataPlatformHook:
        from airflow_task_runs.oci.hooks import OciAiDataPlatformHook

        return OciAiDataPlatformHook(oci_conn_id=self.oci_conn_id)

    def execute(self, context: Context) -> Any:
        import urllib.parse

        from airflow_task_runs.core.errors import OutputOverCapError, OutputTooLargeError
        from airflow_task_runs.core.outputs import json_safe, xcom_max_bytes, xcom_value
        from airflow_task_runs.oci.links import task_run_console_url
        from airflow_task_runs.oci.output_stream import BodyTooLarge

        destination = self.resolve_output()  # a destination that cannot work fails before the POST
        hook = self.hook
        self.set_lineage_input(
            f"oci-aidp://{urllib.parse.urlsplit(hook.credentials().endpoint).netloc}",
            f"{self.ai_data_platform_id}/workspaces/{self.workspace_key}/taskRuns/{self.task_run_key}",
        )
        push_link(
            context,
            OciTaskRunLink,
            lambda: task_run_console_url(
                hook.console_url(),
                hook.credentials().region,
                self.ai_data_platform_id,
                self.workspace_key,
                self.task_run_key,
            ),
        )
        what = f"OCI task run {self.task_run_key} output {self.output_key or ''}".rstrip()
        limit = None if destination else xcom_max_bytes()
        try:
            with hook.stream_task_run_output(
                self.ai_data_platform_id,
                self.workspace_key,
                self.task_run_key,
                self.output_key or None,
                max_bytes=None if limit is None else limit * XCOM_RESPONSE_FACTOR,
            ) as streamed:
                result = self._collect(streamed, what, destination)
        except BodyTooLarge as exc:
            cap = hook.session.max_output_bytes
            if limit is None or cap < limit * XCOM_RESPONSE_FACTOR:  # the connection's cap stopped it, not XCom's
                raise OutputOverCapError(
                    f"{what} (its fetchOutput response)", exc.size, cap, self.oci_conn_id
                ) from None
            raise OutputTooLargeError(
                f"{what} (its fetchOutput response; reading stopped at {exc.size} bytes, "
                f"{XCOM_RESPONSE_FACTOR}x the limit)",
                exc.size,
                limit,
            ) from None
        if not destination:
            return xcom_value(what, result)
        self.record_outputs(context, [*result["uris"], result["output_parameters_uri"]])
        return json_safe(result)

    def _collect(self, streamed: StreamedOutput, what: str, destination: Destination | None) -> dict[str, Any]:
        output = streamed.output
        what = f"OCI task run {self.task_run_key} output {output.key or self.output_key or ''}".rstrip()
        self.log.info(
            "Fetched %s: %d item(s), %d parameter(s) [opc-request-id %s]",
            what,
            len(output.data),
            len(output.outputParameters),
            output.request_id,
        )
        if output.isTruncated:
            self.log.warning("%s is truncated by OCI (isTruncated: true): what follows is not the whole output", what)
        if output.errorTrace:
            self.log.warning("%s carries an errorTrace:\n%s", what, output.errorTrace)
        parameters = {p.name: p.value for p in output.outputParameters}
        result: dict[str, Any] = {
            "key": output.key,
            "task_type": output.taskType,
            "version": output.version,
            "is_truncated": output.isTruncated,
            "error_trace": output.errorTrace,
            "request_id": output.request_id,
            "output_parameters": parameters,
        }
        if destination:
            result.update(self._to_destination(streamed, parameters, destination))
        else:
            result["items"] = self._to_xcom(streamed, what)
        return result

    def _to_destination(
        self, streamed: StreamedOutput, parameters: dict[str, Any], destination: Destination
    ) -> dict[str, Any]:
        """Every item, then ``output_parameters.json``: published together, that file last (see OutputSet)."""
        import json

        from airflow_task_runs.core.outputs import OutputSet
        from airflow_task_runs.oci.decoding import REFERENCE_TYPES, extension, item_chunks

        described: list[dict[str, Any]] = []
        uris: list[str] = []
        with OutputSet() as outputs:
            for index, item in enumerate(streamed.output.data):
                if item.type in REFERENCE_TYPES:
                    path = streamed.text(index)
                    described.append({"index": index, "type": item.type, "path": path, "reference": True})
                    continue
                name = f"{index:03d}_{(item.type or 'unknown').lower()}{extension(item)}"
                size = _Counter()
                chunks = item_chunks(index, item, streamed.pieces(index))
                uri = outputs.write(destination.child(name), size.counting(chunks))
                streamed.release(index)  # free the spooled value as soon as it is written
                uris.append(uri)
                described.append(
                    {"index": index, "type": item.type, "uri": uri, "size": size.total, "charset": item.charset}
                )
            params = json.dumps(parameters, indent=2, sort_keys=True, default=str).encode()
            params_uri = outputs.write(destination.child("output_parameters.json"), [params], expected_size=len(params))
        return {"uris": uris, "items": described, "output_parameters_uri": params_uri}

    def _to_xcom(self, streamed: StreamedOutput, what: str) -> list[dict[str, Any]]:
        import base64

        from airflow_task_runs.core.outputs import read_for_xcom
        from airflow_task_runs.oci.decoding import REFERENCE_TYPES, decode_text, describe_item, is_text, item_chunks

        described: list[dict[str, Any]] = []
        for index, item in enumerate(streamed.output.data):
            if item.type in REFERENCE_TYPES:
                described.append({"index": index, "type": item.type, "path": streamed.text(index), "reference": True})
                continue
            chunks = item_chunks(index, item, streamed.pieces(index))
            data = read_for_xcom(chunks, f"{what}, {describe_item(index, item)}")
            entry: dict[str, Any] = {"index": index, "type": item.type, "size": len(data), "charset": item.charset}
            if is_text(item):
                entry["text"] = decode_text(index, item, data)
            else:
                entry["base64"] = base64.b64encode(data).decode()
            described.append(entry)
        return described


class _Counter:
    def __init__(self) -> None:
        self.total = 0

    def counting(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.total += len(chunk)
            yield chunk


class OciGetExperimentRunOperator(BaseOperator):
    """Push an MLflow experiment run's info, metrics, params, tags, inputs and outputs to XCom.

    :param run_id: the MLflow run id (templated).
    :param user_principal: sent as ``dh-user-principal`` when given (templated).
    """

    template_fields: Sequence[str] = ("ai_data_platform_id", "workspace_key", "run_id", "user_principal", "oci_conn_id")
    operator_extra_links = (OciExperimentRunLink(),)

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

    def execute(self, context: Context) -> Any:

        from airflow_task_runs.core.outputs import json_safe, xcom_value
        from airflow_task_runs.oci.hooks import OciAiDataPlatformHook
        from airflow_task_runs.oci.links import experiment_run_console_url

        hook = OciAiDataPlatformHook(oci_conn_id=self.oci_conn_id)
        build: Callable[[], str] = lambda: experiment_run_console_url(  # noqa: E731
            hook.console_url(), hook.credentials().region, self.ai_data_platform_id, self.workspace_key, self.run_id
        )
        push_link(context, OciExperimentRunLink, build)
        run = hook.get_experiment_run(
            self.ai_data_platform_id, self.workspace_key, self.run_id, self.user_principal or None
        )
        result = json_safe(run.to_xcom())
        self.log.info(
            "MLflow run %s is %s: %d metric(s), %d param(s) [opc-request-id %s]",
            self.run_id,
            run.info.status,
            len(result["metrics"]),
            len(result["params"]),
            run.request_id,
        )
        return xcom_value(f"OCI MLflow run {self.run_id}", result)
