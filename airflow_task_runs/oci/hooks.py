"""Oracle OCI AI Data Platform: task runs, their outputs and MLflow experiment runs, signed requests."""

from __future__ import annotations

import dataclasses
import logging
import re
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_task_runs.core.connection_test import ConnectionProbe, run_probe, single_attempt
from airflow_task_runs.core.errors import ApiError, ConnectionConfigError
from airflow_task_runs.core.hooks import HttpTaskRunHook, StatusPair, normalize_url
from airflow_task_runs.core.states import RunState, RunStatus, StatusTable

if TYPE_CHECKING:
    import httpx
    from airflow.sdk import Connection

    from airflow_task_runs.core.http import ApiSession
    from airflow_task_runs.oci.models import ExperimentRun, TaskRun, TaskRunOutput
    from airflow_task_runs.oci.output_stream import StreamedOutput

log = logging.getLogger(__name__)

CLOUD = "OCI AI Data Platform"
API_VERSION = "/20260430"
#: The OCI CLI's host. Oracle's SDK uses ``https://datalake.{region}.oci.oraclecloud.com``;
#: set the connection's ``endpoint`` to use another one.
DEFAULT_ENDPOINT_TEMPLATE = "https://aidp.{region}.oci.oraclecloud.com"
DEFAULT_CONSOLE_URL = "https://cloud.oracle.com"
AUTH_TYPES = ("api_key", "instance_principal", "resource_principal")
#: 409 codes OCI's SDK retries by default (its DEFAULT_RETRY_STRATEGY).
RETRYABLE_409_CODES = frozenset({"IncorrectState", "LockConflict"})

TASK_RUN_STATES = StatusTable(
    "OCI AI Data Platform task run",
    {
        RunState.PENDING: ("PENDING", "QUEUED", "BLOCKED", "PAUSED_MAINTENANCE"),
        RunState.RUNNING: ("RUNNING", "CANCELING"),
        RunState.SUCCEEDED: ("SUCCESS",),
        RunState.FAILED: ("FAILED", "INTERNAL_ERROR", "UPSTREAM_FAILED", "TIMED_OUT"),
        RunState.CANCELLED: ("CANCELED", "UPSTREAM_CANCELED"),
        RunState.SKIPPED: ("SKIPPED", "EXCLUDED"),
    },
)
EXPERIMENT_RUN_STATES = StatusTable(
    "OCI AI Data Platform MLflow run",
    {
        RunState.PENDING: ("SCHEDULED",),
        RunState.RUNNING: ("RUNNING",),
        RunState.SUCCEEDED: ("FINISHED",),
        RunState.FAILED: ("FAILED", "INTERNAL_ERROR"),
        RunState.CANCELLED: ("KILLED",),
    },
)

_OCID = re.compile(r"^ocid1\.(?P<kind>[a-z0-9]+)\.[a-z0-9-]*\.[a-z0-9-]*\.[A-Za-z0-9._-]+$")
_FINGERPRINT = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){15}$")
_REGION = re.compile(r"^[a-z]{2,}(-[a-z0-9]+)+-\d+$|^[a-z]{3}$")
_ERROR_TRACE_IN_MESSAGE = 2000
_READ_CHUNK = 256 * 1024


def _parse_error(response: httpx.Response, body: Any) -> tuple[str | None, str | None, str | None]:
    """OCI error bodies: ``{"code": "NotAuthorizedOrNotFound", "message": "..."}``."""
    if isinstance(body, dict):
        code = body.get("code")
        message = body.get("message")
        return (str(code) if code is not None else None), (str(message) if message is not None else None), None
    return None, None, None


def _is_retryable(err: ApiError) -> bool:
    """OCI SDK's default retry rules beyond the core's statuses: 409 IncorrectState/LockConflict, 5xx but 501."""
    status = err.status_code
    if status is None:
        return False
    if status == 409:
        return err.code in RETRYABLE_409_CODES
    return status == 429 or (status >= 500 and status != 501)


@dataclass(frozen=True)
class OciCredentials:
    """What a connection resolves to. ``repr`` hides the key and pass phrase."""

    auth_type: str
    region: str | None
    endpoint: str
    tenancy: str | None = None
    user: str | None = None
    fingerprint: str | None = None
    private_key_pem: str | None = None
    pass_phrase: str | None = None
    #: the key as loaded (and validated) once, so the signer does not load it again
    private_key: Any = dataclasses.field(default=None, compare=False)

    def __repr__(self) -> str:
        return (
            f"OciCredentials(auth_type={self.auth_type!r}, region={self.region!r}, endpoint={self.endpoint!r}, "
            f"tenancy={self.tenancy!r}, user={self.user!r}, fingerprint={self.fingerprint!r})"
        )


def _quote(segment: str, what: str) -> str:
    from airflow_task_runs.core.ids import path_segment

    return urllib.parse.quote(path_segment(segment, what), safe="")


def _expect_json(response: httpx.Response) -> None:
    """A 200 that is an HTML page (a proxy, a portal) is refused by its type, before parsing."""
    from airflow_task_runs.oci.output_stream import MalformedJson

    content_type = response.headers.get("content-type", "")
    if content_type and "json" not in content_type:
        raise MalformedJson(
            f"the response is a {content_type.split(';')[0].strip()} page, not JSON (a proxy, load balancer "
            "or captive portal answering instead of the API?)"
        )


def new_request_id() -> str:
    """An ``opc-request-id``: letters and digits only, as OCI allows."""
    return uuid.uuid4().hex.upper()


class OciAiDataPlatformHook(HttpTaskRunHook):
    """OCI AI Data Platform data plane over one signed httpx session.

    Connection ``oci``: Login = user OCID, Password = API private key (PEM), extra
    ``tenancy``, ``fingerprint``, ``region``, optional ``key_file`` (instead of the password),
    ``passphrase``, ``endpoint``; or ``config_file`` + ``profile`` (an ``~/.oci/config``);
    or ``auth_type`` ``instance_principal`` / ``resource_principal`` (needs the OCI SDK).
    Also ``connect_timeout`` / ``read_timeout``, ``retry_max_attempts`` / ``retry_max_elapsed``,
    ``verify``.
    """

    conn_name_attr = "oci_conn_id"
    default_conn_name = "oci_default"
    conn_type = "oci"
    hook_name = "Oracle OCI AI Data Platform"

    def __init__(self, oci_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(oci_conn_id, **kwargs)
        self.oci_conn_id = oci_conn_id
        self._credentials: OciCredentials | None = None

    # -- connection --------------------------------------------------------------------------
    def _secret_extra_values(self, conn: Connection) -> list[Any]:
        try:
            extra = self.extra_of(conn)
        except ConnectionConfigError:
            return []
        return [extra.get(name) for name in ("passphrase", "pass_phrase", "private_key", "key_content")]

    def credentials(self, conn: Connection | None = None) -> OciCredentials:
        """Resolve and check the connection's fields; errors name the field and the fix."""
        if self._credentials is None:
            self._credentials = self._resolve(conn or self.connection)
        return self._credentials

    def _resolve(self, conn: Connection) -> OciCredentials:
        from airflow_task_runs.core.secrets import mask_secrets

        extra = self.extra_of(conn)
        base: dict[str, str] = {}
        if extra.get("config_file") or extra.get("profile"):
            from airflow_task_runs.oci.config import DEFAULT_CONFIG_FILE, OciConfigFileError, read_config_file

            try:
                base = read_config_file(
                    str(extra.get("config_file") or DEFAULT_CONFIG_FILE), str(extra.get("profile") or "DEFAULT")
                )
            except OciConfigFileError as exc:
                raise ConnectionConfigError(conn.conn_id, "extra.config_file", f"cannot be used: {exc}") from None
            mask_secrets(base.get("pass_phrase"))

        def pick(name: str) -> str | None:
            value = extra.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                value = base.get(name)
            return str(value).strip() if value is not None and str(value).strip() else None

        auth_type = pick("auth_type") or "api_key"
        if auth_type not in AUTH_TYPES:
            raise ConnectionConfigError(conn.conn_id, "extra.auth_type", f"is {auth_type!r}; use one of {AUTH_TYPES}")
        region = pick("region")
        if region is not None and not _REGION.match(region):
            raise ConnectionConfigError(
                conn.conn_id, "region (extra.region)", f"is {region!r}, not an OCI region such as 'us-ashburn-1'"
            )
        endpoint_raw = pick("endpoint") or (conn.host or "").strip() or None
        if endpoint_raw:
            endpoint = normalize_url(endpoint_raw)
            if conn.port and not extra.get("endpoint") and urllib.parse.urlsplit(endpoint).port is None:
                endpoint = f"{endpoint}:{conn.port}"
            parts = urllib.parse.urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConnectionConfigError(
                    conn.conn_id, "endpoint (extra.endpoint)", f"is {endpoint_raw!r}, not an http(s) URL"
                )
        elif region:
            endpoint = DEFAULT_ENDPOINT_TEMPLATE.format(region=region)
        else:
            raise ConnectionConfigError(
                conn.conn_id,
                "region (extra.region)",
                "is missing: set region (e.g. 'us-ashburn-1') or endpoint (the AI Data Platform URL)",
            )
        if auth_type != "api_key":
            return OciCredentials(auth_type=auth_type, region=region, endpoint=endpoint)

        user = (conn.login or "").strip() or base.get("user")
        user = self._ocid(conn, user, "user", "user OCID (login)", "set Login to your user OCID (ocid1.user.oc1..)")
        tenancy = self._ocid(
            conn, pick("tenancy"), "tenancy", "tenancy (extra.tenancy)", "set extra tenancy to your tenancy OCID"
        )
        fingerprint = pick("fingerprint")
        if not fingerprint:
            raise ConnectionConfigError(
                conn.conn_id, "fingerprint (extra.fingerprint)", "is missing: set the API key's fingerprint"
            )
        if not _FINGERPRINT.match(fingerprint):
            raise ConnectionConfigError(
                conn.conn_id,
                "fingerprint (extra.fingerprint)",
                "is not 16 colon-separated hex bytes (like 12:34:...:ef; the console shows it next to the API key)",
            )
        pem = (conn.password or "").strip() or pick("private_key") or pick("key_content")
        if not pem:
            key_file = pick("key_file")
            if not key_file:
                raise ConnectionConfigError(
                    conn.conn_id,
                    "private key (password or extra.key_file)",
                    "is missing: paste the API private key PEM into Password, or set extra key_file to its path",
                )
            path = Path(key_file).expanduser()
            try:
                pem = path.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a readable PEM text file"
                raise ConnectionConfigError(
                    conn.conn_id, "key_file (extra.key_file)", f"{str(path)!r} cannot be read: {reason}"
                ) from None
            mask_secrets(pem.strip())
        # "passphrase" and "private_key" are names Airflow redacts in the UI and API; the
        # config-file spellings (pass_phrase, key_content) are read as aliases.
        pass_phrase = pick("passphrase") or pick("pass_phrase")
        from airflow_task_runs.oci.auth import PrivateKeyError, load_private_key

        try:
            private_key = load_private_key(pem, pass_phrase)
        except PrivateKeyError as exc:
            field = "passphrase (extra passphrase)" if "passphrase" in str(exc) else "private key (password)"
            raise ConnectionConfigError(conn.conn_id, field, str(exc)) from None
        return OciCredentials(
            auth_type=auth_type,
            region=region,
            endpoint=endpoint,
            tenancy=tenancy,
            user=user,
            fingerprint=fingerprint.lower(),
            private_key_pem=pem,
            pass_phrase=pass_phrase,
            private_key=private_key,
        )

    @staticmethod
    def _ocid(conn: Connection, value: str | None, kind: str, field: str, how: str) -> str:
        if not value:
            raise ConnectionConfigError(conn.conn_id, field, f"is missing: {how}")
        match = _OCID.match(value)
        if match is None:
            raise ConnectionConfigError(conn.conn_id, field, f"is not an OCID (ocid1.{kind}.oc1..<id>): {how}")
        if match["kind"] != kind:
            raise ConnectionConfigError(
                conn.conn_id, field, f"is a {match['kind']} OCID, not a {kind} OCID (ocid1.{kind}.oc1..<id>)"
            )
        return value

    def _build_auth(self, creds: OciCredentials) -> httpx.Auth:
        from airflow_task_runs.oci.auth import OciRequestSigner, OciSdkSignerAuth, load_private_key

        if creds.auth_type != "api_key":
            return OciSdkSignerAuth.for_auth_type(creds.auth_type)
        assert creds.private_key_pem and creds.tenancy and creds.user and creds.fingerprint
        return OciRequestSigner(
            tenancy=creds.tenancy,
            user=creds.user,
            fingerprint=creds.fingerprint,
            private_key=creds.private_key or load_private_key(creds.private_key_pem, creds.pass_phrase),
        )

    def _build_session(self, conn: Connection) -> ApiSession:
        from airflow_task_runs.core.http import ApiDialect, ApiSession

        creds = self.credentials(conn)
        extra = self.extra_of(conn)
        return ApiSession.for_connection(
            creds.endpoint + API_VERSION,
            extra,
            conn.conn_id,
            dialect=ApiDialect(
                cloud=CLOUD,
                request_id_headers=("opc-request-id",),
                parse_error=_parse_error,
                is_retryable=_is_retryable,
                never_retry=frozenset({501}),
            ),
            auth=self._build_auth(creds),
            headers={"accept": "application/json", "content-type": "application/json"},
        )

    # -- paths -------------------------------------------------------------------------------
    @staticmethod
    def _workspace_path(ai_data_platform_id: str, workspace_key: str) -> str:
        return (
            f"/aiDataPlatforms/{_quote(ai_data_platform_id, 'ai_data_platform_id')}"
            f"/workspaces/{_quote(workspace_key, 'workspace_key')}"
        )

    def _task_run_path(self, ai_data_platform_id: str, workspace_key: str, task_run_key: str) -> str:
        return (
            self._workspace_path(ai_data_platform_id, workspace_key)
            + f"/taskRuns/{_quote(task_run_key, 'task_run_key')}"
        )

    # -- one call ----------------------------------------------------------------------------
    def _call(
        self, session: ApiSession, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[Any, httpx.Response]:
        request_id = new_request_id()
        answer = session.request_json(method, path, headers={"opc-request-id": request_id, **(headers or {})}, **kwargs)
        return self._logged(session, method, path, request_id, answer, logging.INFO)

    async def _acall(
        self, session: ApiSession, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[Any, httpx.Response]:
        request_id = new_request_id()
        answer = await session.arequest_json(
            method, path, headers={"opc-request-id": request_id, **(headers or {})}, **kwargs
        )
        # the triggerer's polls: a line per poll per watch at INFO is 1,000 lines a second at 1,000
        # watches; the trigger logs each status change, and its event carries the request id
        return self._logged(session, method, path, request_id, answer, logging.DEBUG)

    @staticmethod
    def _logged(
        session: ApiSession,
        method: str,
        path: str,
        request_id: str,
        answer: tuple[Any, httpx.Response],
        level: int,
    ) -> tuple[Any, httpx.Response]:
        """The call's opc-request-id in the log (what OCI support asks for), read from the parsed answer."""
        if log.isEnabledFor(level):
            body, response = answer
            rid = session.request_id_of(response, body) or request_id
            log.log(level, "%s %s %s: opc-request-id %s", CLOUD, method, path, rid)
        return answer

    @staticmethod
    def _model(
        cls: type[Any], body: Any, response: httpx.Response, session: ApiSession, request_id: str | None = None
    ) -> Any:
        return session.parse_model(cls, body, response, request_id)

    # -- task runs ---------------------------------------------------------------------------
    def get_task_run(self, ai_data_platform_id: str, workspace_key: str, task_run_key: str) -> TaskRun:
        from airflow_task_runs.oci.models import TaskRun

        session = self.session
        path = self._task_run_path(ai_data_platform_id, workspace_key, task_run_key)
        return self._model(TaskRun, *self._call(session, "GET", path), session)  # type: ignore[no-any-return]

    async def aget_task_run(self, ai_data_platform_id: str, workspace_key: str, task_run_key: str) -> TaskRun:
        from airflow_task_runs.oci.models import TaskRun

        session = await self.asession()
        path = self._task_run_path(ai_data_platform_id, workspace_key, task_run_key)
        return self._model(TaskRun, *(await self._acall(session, "GET", path)), session)  # type: ignore[no-any-return]

    @staticmethod
    def task_run_status(run: TaskRun) -> RunStatus:
        """The run's state; a failure's message is ``stateMessage`` then the head of ``errorTrace``."""
        raw = run.state.status
        state = TASK_RUN_STATES.lookup(raw)
        message = run.state.stateMessage
        if state is not None and state.is_failure and run.state.errorTrace:
            trace = run.state.errorTrace
            if len(trace) > _ERROR_TRACE_IN_MESSAGE:
                trace = trace[:_ERROR_TRACE_IN_MESSAGE] + " ..."
            message = f"{message}\n{trace}" if message else trace
        return TASK_RUN_STATES.status(
            raw, message=message, request_id=run.request_id, details=run.model_dump(mode="json")
        )

    status_kinds = frozenset({"task_run", "experiment_run"})
    triggerer_modules = (
        *HttpTaskRunHook.triggerer_modules,
        "airflow_task_runs.oci.models",
    )

    def status_pair(self, kind: str) -> StatusPair:
        if kind == "experiment_run":
            return StatusPair(self.get_experiment_run_status, self.aget_experiment_run_status)
        return StatusPair(self.get_task_run_status, self.aget_task_run_status)

    def get_task_run_status(self, ai_data_platform_id: str, workspace_key: str, task_run_key: str) -> RunStatus:
        return self.task_run_status(self.get_task_run(ai_data_platform_id, workspace_key, task_run_key))

    async def aget_task_run_status(self, ai_data_platform_id: str, workspace_key: str, task_run_key: str) -> RunStatus:
        return self.task_run_status(await self.aget_task_run(ai_data_platform_id, workspace_key, task_run_key))

    def fetch_task_run_output(
        self,
        ai_data_platform_id: str,
        workspace_key: str,
        task_run_key: str,
        output_key: str | None = None,
    ) -> TaskRunOutput:
        """POST ``fetchOutput``; ``output_key`` defaults to the task run's ``outputKey``.

        Every item's ``value`` is returned whole, in memory: for large outputs use
        :meth:`stream_task_run_output`, which keeps them in spools.
        """
        with self.stream_task_run_output(ai_data_platform_id, workspace_key, task_run_key, output_key) as streamed:
            return streamed.materialize()

    @contextmanager
    def stream_task_run_output(
        self,
        ai_data_platform_id: str,
        workspace_key: str,
        task_run_key: str,
        output_key: str | None = None,
        *,
        max_bytes: int | None = None,
    ) -> Iterator[StreamedOutput]:
        """POST ``fetchOutput`` and read the answer incrementally; yields a :class:`StreamedOutput`.

        The response is parsed as it arrives (ijson), each ``data[].value`` unescaped into a
        spool (memory up to 1 MiB, then a temporary file), so memory stays flat whatever the
        output's size; the spools are removed when the block exits. The whole document is read
        and checked before this yields. Reading stops past ``max_bytes`` or the connection's
        ``max_output_bytes``, whichever is lower
        (:class:`~airflow_task_runs.oci.output_stream.BodyTooLarge`).

        One ``opc-retry-token`` per call: every attempt (a retryable status, a connection
        error, a body cut or garbled on the way) re-sends it, so OCI runs the action at most
        once; retries follow the session's policy, as for any other call.
        """
        from airflow_task_runs.core.errors import MalformedResponseError
        from airflow_task_runs.oci.models import TaskRunOutput
        from airflow_task_runs.oci.output_stream import (
            DocumentTooLarge,
            JsonNestedTooDeep,
            MalformedJson,
            StreamedOutput,
            parse,
        )

        if output_key is None:
            run = self.get_task_run(ai_data_platform_id, workspace_key, task_run_key)
            if not run.outputKey:
                raise ValueError(
                    f"OCI task run {task_run_key} has no outputKey (status {run.state.status}); "
                    "pass output_key= explicitly"
                )
            output_key = run.outputKey
        if not 1 <= len(output_key) <= 100:
            raise ValueError(f"output_key must be 1 to 100 characters, got {len(output_key)}")
        from airflow_task_runs.core.content_encoding import iter_decoded

        session = self.session
        cap = session.max_output_bytes if max_bytes is None else min(max_bytes, session.max_output_bytes)
        path = self._task_run_path(ai_data_platform_id, workspace_key, task_run_key) + "/actions/fetchOutput"
        request_id = new_request_id()
        headers = {"opc-request-id": request_id, "opc-retry-token": uuid.uuid4().hex}

        def attempt() -> StreamedOutput:
            with session.stream(
                "POST",
                path,
                json_body={"outputKey": output_key},
                headers=headers,
                retry_ok=False,
                operation="fetchOutput",
            ) as response:
                response_id = response.headers.get("opc-request-id") or request_id
                try:
                    _expect_json(response)
                    with session.download_pace():
                        document, values, size = parse(
                            iter_decoded(response, size=_READ_CHUNK),
                            max_bytes=cap,
                            max_document_bytes=session.max_response_bytes,
                        )
                except MalformedJson as exc:
                    raise MalformedResponseError(
                        cloud=CLOUD,
                        status_code=response.status_code,
                        code=None,
                        message=str(exc),
                        request_id=response_id,
                        method="POST",
                        path=response.request.url.path,
                        host=session.host,
                        operation="fetchOutput",
                        # a cut or garbled body: ask again, same token; a hostile one: do not
                        retryable=not isinstance(exc, (JsonNestedTooDeep, DocumentTooLarge)),
                    ) from None
                try:
                    output: TaskRunOutput = self._model(TaskRunOutput, document, response, session, response_id)
                except BaseException:
                    for value in values.values():
                        value.close()
                    raise
            log.info("%s POST %s: opc-request-id %s (%d bytes streamed)", CLOUD, path, response_id, size)
            return StreamedOutput(output, values)

        # the session's own policy and one time budget around the exchange (the body is re-read
        # from the start); the body's streaming is bounded by progress, not by that budget
        with session.deadline():
            streamed: StreamedOutput = session._retrying(True)(attempt)
        try:
            yield streamed
        finally:
            streamed.close()

    # -- MLflow experiment runs --------------------------------------------------------------
    def _experiment_args(
        self, ai_data_platform_id: str, workspace_key: str, run_id: str, user_principal: str | None
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        from airflow_task_runs.core.ids import path_segment

        path_segment(run_id, "run_id", "pass the MLflow run id")
        path = self._workspace_path(ai_data_platform_id, workspace_key) + "/mlops/api/2.0/mlflow/runs/get"
        headers = {"dh-user-principal": user_principal} if user_principal else {}
        return path, {"run_id": run_id}, headers

    @staticmethod
    def _experiment_run(body: Any, session: ApiSession, response: httpx.Response) -> ExperimentRun:
        from airflow_task_runs.oci.models import ExperimentRun

        run = body.get("run") if isinstance(body, dict) else None
        if not isinstance(run, dict):
            from airflow_task_runs.core.errors import MalformedResponseError

            raise MalformedResponseError(
                cloud=CLOUD,
                status_code=response.status_code,
                code=None,
                message="the MLflow runs/get response has no 'run' object",
                request_id=session.request_id_of(response, body),
                method="GET",
                path=response.request.url.path,
            )
        model: ExperimentRun = OciAiDataPlatformHook._model(ExperimentRun, run, response, session)
        return model

    def get_experiment_run(
        self, ai_data_platform_id: str, workspace_key: str, run_id: str, user_principal: str | None = None
    ) -> ExperimentRun:
        path, params, headers = self._experiment_args(ai_data_platform_id, workspace_key, run_id, user_principal)
        session = self.session
        body, response = self._call(session, "GET", path, params=params, headers=headers)
        return self._experiment_run(body, session, response)

    async def aget_experiment_run(
        self, ai_data_platform_id: str, workspace_key: str, run_id: str, user_principal: str | None = None
    ) -> ExperimentRun:
        path, params, headers = self._experiment_args(ai_data_platform_id, workspace_key, run_id, user_principal)
        session = await self.asession()
        body, response = await self._acall(session, "GET", path, params=params, headers=headers)
        return self._experiment_run(body, session, response)

    @staticmethod
    def experiment_run_status(run: ExperimentRun) -> RunStatus:
        info = run.info
        message = None
        if info.status in ("FAILED", "INTERNAL_ERROR", "KILLED"):
            message = f"MLflow run {info.run_name or info.run_id} ended {info.status}"
        return EXPERIMENT_RUN_STATES.status(
            info.status, message=message, request_id=run.request_id, details=run.to_xcom()
        )

    def get_experiment_run_status(
        self, ai_data_platform_id: str, workspace_key: str, run_id: str, user_principal: str | None = None
    ) -> RunStatus:
        return self.experiment_run_status(
            self.get_experiment_run(ai_data_platform_id, workspace_key, run_id, user_principal)
        )

    async def aget_experiment_run_status(
        self, ai_data_platform_id: str, workspace_key: str, run_id: str, user_principal: str | None = None
    ) -> RunStatus:
        return self.experiment_run_status(
            await self.aget_experiment_run(ai_data_platform_id, workspace_key, run_id, user_principal)
        )

    # -- console links -----------------------------------------------------------------------
    def console_url(self, extra: Mapping[str, Any] | None = None) -> str:
        extra = self.extra_of(self.connection) if extra is None else extra
        return str(extra.get("console_url") or DEFAULT_CONSOLE_URL).rstrip("/")

    # -- UI ----------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Load and check the credentials, then make one signed call, once.

        A 404 for a made-up task run proves the signature was accepted (a bad signature is a
        401), without needing a real platform id.
        """

        def describe() -> ConnectionProbe:
            creds = self.credentials()
            single_attempt(self.session)
            return ConnectionProbe(
                cloud="OCI AI Data Platform",
                host=creds.endpoint,
                credential_fields="User OCID (login), private key (password or extra key_file), extra tenancy, "
                "fingerprint and passphrase, and the IAM policy",
                host_field="extra region and extra endpoint",
            )

        def call(probe: ConnectionProbe) -> str:
            try:
                self.get_task_run("ocid1.aidataplatform.oc1..connectiontest", "connection-test", "connection-test")
            except ApiError as exc:
                if exc.status_code == 404:
                    return f"Signed request accepted by {probe.host} (404 for a test task run, as expected)"
                raise
            return f"Connected to {probe.host}"

        return run_probe(describe, call)


if TYPE_CHECKING:  # mypy checks the hook against the core contract; nothing runs at import
    from airflow_task_runs.core.hooks import RunStatusHook

    _contract: type[RunStatusHook] = OciAiDataPlatformHook
