"""Alibaba Cloud ROS AI tasks (``GetAITask``) over the shared httpx session, V3-signed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_task_runs.alibaba.provider_info import ROS_MAX_OUTPUT_BYTES
from airflow_task_runs.core.connection_test import ConnectionProbe, check_choice, run_probe, single_attempt
from airflow_task_runs.core.hooks import HttpTaskRunHook, StatusPair, normalize_url
from airflow_task_runs.core.states import RunState, RunStatus, StatusTable

if TYPE_CHECKING:
    import httpx
    from airflow.sdk import Connection

    from airflow_task_runs.alibaba.models import AITask
    from airflow_task_runs.core.errors import ApiError
    from airflow_task_runs.core.http import ApiSession

CLOUD = "Alibaba Cloud ROS"
API_VERSION = "2019-09-10"
DEFAULT_REGION = "cn-hangzhou"
#: ROS endpoints are not per region: ros.aliyuncs.com serves every region (China-site accounts);
#: international-site accounts use ros-intl.aliyuncs.com; VPC: ros[-intl].vpc-proxy.aliyuncs.com.
DEFAULT_ENDPOINT = "https://ros.aliyuncs.com"
DEFAULT_CONSOLE_URL = "https://ros.console.aliyun.com"
#: Alibaba Cloud region ids (the "Regions and zones" page); extra ``allow_any_region`` admits a newer one.
ALIBABA_REGIONS = (
    "cn-qingdao",
    "cn-beijing",
    "cn-zhangjiakou",
    "cn-huhehaote",
    "cn-wulanchabu",
    "cn-hangzhou",
    "cn-shanghai",
    "cn-nanjing",
    "cn-fuzhou",
    "cn-shenzhen",
    "cn-heyuan",
    "cn-guangzhou",
    "cn-chengdu",
    "cn-wuhan-lr",
    "cn-hongkong",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-3",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "us-east-1",
    "us-west-1",
    "na-south-1",
    "eu-central-1",
    "eu-west-1",
    "me-east-1",
    "me-central-1",
)

AI_TASK_STATES = StatusTable(
    CLOUD,
    {
        RunState.PENDING: ("PENDING", "WAITING"),
        RunState.RUNNING: ("RUNNING",),
        RunState.SUCCEEDED: ("SUCCESS",),
        RunState.FAILED: ("FAILURE",),
    },
)

#: error codes that mean the credentials or their permissions are wrong (test_connection)
AUTH_ERROR_PREFIXES = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "SignatureNonceUsed",
    "InvalidTimeStamp",
    "InvalidSecurityToken",
    "Forbidden",
    "NoPermission",
    "MissingSecurityToken",
)


def _parse_error(response: httpx.Response, body: Any) -> tuple[str | None, str | None, str | None]:
    """Alibaba errors: ``{"Code", "Message", "RequestId", "Recommend"?}``."""
    if not isinstance(body, dict):
        return None, None, None
    code = body.get("Code")
    message = body.get("Message")
    if message and body.get("Recommend"):
        message = f"{message} (diagnosis: {body['Recommend']})"
    request_id = body.get("RequestId")
    return (
        str(code) if code is not None else None,
        str(message) if message is not None else None,
        str(request_id) if request_id is not None else None,
    )


def _check_success_body(response: httpx.Response, body: Any) -> tuple[str | None, str | None] | None:
    """A 200 whose body says the call failed: ``Success`` false, or an ``HttpStatusCode`` >= 400.

    A ``Code`` next to ``Success: true`` (as in the API page's own sample) is not a failure.
    """
    from airflow_task_runs.alibaba.models import parse_success

    if not isinstance(body, dict):
        return None
    try:
        success = parse_success(body.get("Success"))
    except ValueError:
        success = None
    http_status = body.get("HttpStatusCode")
    failed = success is False or (isinstance(http_status, int) and http_status >= 400)
    if not failed:
        return None
    code = body.get("Code")
    message = body.get("Message") or f"the response says Success={body.get('Success')!r}"
    if isinstance(http_status, int):
        message = f"{message} (HttpStatusCode {http_status} in an HTTP 200 body)"
    return (str(code) if code is not None else "Success=false"), str(message)


def _is_retryable(err: ApiError) -> bool:
    """ROS throttles with HTTP 400 ``Throttling.User`` (and other ``Throttling*`` codes): a 429 in spirit."""
    code = err.code or ""
    return code == "Throttling" or code.startswith("Throttling.")


class RosHook(HttpTaskRunHook):
    """ROS AI tasks (GenerateTemplate, FixTemplate), signed with ``ACS3-HMAC-SHA256``.

    Connection ``alibaba_ros``: Login = AccessKey ID, Password = AccessKey Secret; extra
    ``region_id`` (default ``cn-hangzhou``), ``security_token`` (STS), ``endpoint`` (default
    ``https://ros.aliyuncs.com``, which serves every region; ``ros-intl.aliyuncs.com`` for
    international-site accounts), ``console_url``, ``connect_timeout`` / ``read_timeout``,
    ``retry_max_attempts`` / ``retry_max_elapsed``, ``verify``. Connections in the alibaba
    provider's ``alibaba_cloud`` shape (extra ``access_key_id`` / ``access_key_secret`` /
    ``region``) work as they are.

    :param region_id: overrides the connection's region (used for the console link).
    """

    conn_name_attr = "alibaba_ros_conn_id"
    default_conn_name = "alibaba_ros_default"
    conn_type = "alibaba_ros"
    hook_name = "Alibaba Cloud ROS"

    def __init__(
        self, alibaba_ros_conn_id: str = default_conn_name, region_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(alibaba_ros_conn_id, **kwargs)
        self.alibaba_ros_conn_id = alibaba_ros_conn_id
        self._region_id = region_id

    # -- connection --------------------------------------------------------------------------
    def _secret_extra_values(self, conn: Connection) -> list[Any]:
        extra = self.extra_of(conn)
        return [extra.get("access_key_secret"), extra.get("security_token")]

    def credentials(self, conn: Connection) -> tuple[str, str, str | None]:
        """(AccessKey ID, AccessKey Secret, STS token or None) from the connection."""
        extra = self.extra_of(conn)
        access_key_id = self.require(
            conn,
            conn.login or extra.get("access_key_id"),
            "AccessKey ID (login, or extra access_key_id)",
            "set Login to your AccessKey ID (LTAI...)",
        )
        access_key_secret = self.require(
            conn,
            conn.password or extra.get("access_key_secret"),
            "AccessKey Secret (password, or extra access_key_secret)",
            "set Password to the AccessKey Secret of that AccessKey ID",
        )
        token = extra.get("security_token")
        return access_key_id, access_key_secret, (str(token).strip() or None) if token else None

    @property
    def region_id(self) -> str:
        """The region (console links), checked against :data:`ALIBABA_REGIONS`."""
        conn = self.connection
        extra = self.extra_of(conn)
        region = str(self._region_id or extra.get("region_id") or extra.get("region") or DEFAULT_REGION)
        if extra.get("allow_any_region"):
            return region
        field = "region_id (operator argument)" if self._region_id else "Region ID (extra region_id)"
        return check_choice(conn.conn_id, field, region, ALIBABA_REGIONS, 'extra "allow_any_region": true')

    def endpoint(self, conn: Connection) -> str:
        extra = self.extra_of(conn)
        value = str(extra.get("endpoint") or "").strip()
        return normalize_url(value) if value else DEFAULT_ENDPOINT

    def console_url(self) -> str:
        extra = self.extra_of(self.connection)
        return normalize_url(str(extra.get("console_url") or DEFAULT_CONSOLE_URL))

    def _build_session(self, conn: Connection) -> ApiSession:
        from airflow_task_runs.alibaba.auth import AcsV3Auth
        from airflow_task_runs.core.http import ApiDialect, ApiSession

        access_key_id, access_key_secret, token = self.credentials(conn)
        extra = self.extra_of(conn)
        return ApiSession.for_connection(
            self.endpoint(conn),
            extra,
            conn.conn_id,
            dialect=ApiDialect(
                cloud=CLOUD,
                request_id_headers=("x-acs-request-id",),
                parse_error=_parse_error,
                is_retryable=_is_retryable,
                check_success_body=_check_success_body,
            ),
            auth=AcsV3Auth(access_key_id, access_key_secret, token),
            default_max_output_bytes=ROS_MAX_OUTPUT_BYTES,
        )

    # -- AI tasks ----------------------------------------------------------------------------
    @staticmethod
    def _request(ai_task_id: str, output: bool) -> tuple[dict[str, str], dict[str, str]]:
        """(query, headers) of a GetAITask call: RPC style, ``POST /?OutputOption=..&TaskId=..``."""
        from airflow_task_runs.core.ids import path_segment

        path_segment(ai_task_id, "ai_task_id", "pass the ROS AI task id (TaskId, e.g. t-asasas****)")
        # sorted by key, so the query on the wire is already in canonical order
        params = {"OutputOption": "Enabled" if output else "Disabled", "TaskId": ai_task_id}
        return params, {"x-acs-action": "GetAITask", "x-acs-version": API_VERSION}

    def _get_ai_task_call(self, session: ApiSession, ai_task_id: str, output: bool) -> dict[str, Any]:
        """GetAITask's request. A status poll is capped like any answer; one carrying the TaskOutput
        is read as a download (bounded by progress), capped by ``max_output_bytes``."""
        params, headers = self._request(ai_task_id, output)
        return {
            "params": params,
            "content": b"",
            "headers": headers,
            "operation": "GetAITask",
            "max_bytes": session.max_output_bytes if output else None,
            "download": output,
        }

    def get_ai_task(self, ai_task_id: str, output: bool = False) -> AITask:
        """The AI task; ``output=True`` asks for the (possibly large) ``TaskOutput`` as well."""
        # GetAITask only reads: a POST by RPC convention, safe to repeat (retry_ok defaults to True)
        session = self.session
        body, response = session.request_json("POST", "/", **self._get_ai_task_call(session, ai_task_id, output))
        return self._ai_task(body, response)

    async def aget_ai_task(self, ai_task_id: str, output: bool = False) -> AITask:
        session = await self.asession()
        body, response = await session.arequest_json("POST", "/", **self._get_ai_task_call(session, ai_task_id, output))
        return self._ai_task(body, response)

    @staticmethod
    def _ai_task(body: Any, response: httpx.Response) -> AITask:
        from pydantic import ValidationError

        from airflow_task_runs.alibaba.models import AITask
        from airflow_task_runs.core.errors import MalformedResponseError

        try:
            task = AITask.model_validate(body)
        except ValidationError as exc:
            raise MalformedResponseError(
                cloud=CLOUD,
                status_code=response.status_code,
                code=None,
                message=f"GetAITask answered with a body that is not an AI task: {exc.errors()[0]['msg']} "
                f"at {'.'.join(str(p) for p in exc.errors()[0]['loc']) or 'the top level'}",
                request_id=response.headers.get("x-acs-request-id"),
                method=response.request.method,
                path=response.request.url.path,
            ) from None
        if not task.RequestId:
            task.RequestId = response.headers.get("x-acs-request-id")
        return task

    @staticmethod
    def status_of(task: AITask) -> RunStatus:
        return AI_TASK_STATES.status(
            task.Status,
            message=task.StatusReason,
            request_id=task.RequestId,
            details=task.model_dump(mode="json", exclude={"TaskOutput"}),
        )

    status_kinds = frozenset({"ai_task"})
    triggerer_modules = (
        *HttpTaskRunHook.triggerer_modules,
        "airflow_task_runs.alibaba.models",
    )

    def status_pair(self, kind: str) -> StatusPair:
        return StatusPair(self.get_status, self.aget_status)

    def get_status(self, ai_task_id: str) -> RunStatus:
        """The task's state (polls never ask for TaskOutput)."""
        return self.status_of(self.get_ai_task(ai_task_id, output=False))

    async def aget_status(self, ai_task_id: str) -> RunStatus:
        return self.status_of(await self.aget_ai_task(ai_task_id, output=False))

    # -- UI ----------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Sign a GetAITask for a task that does not exist, once: a not-found answer proves the credentials."""

        def describe() -> ConnectionProbe:
            conn = self.connection
            self.credentials(conn)
            _ = self.region_id
            single_attempt(self.session)
            return ConnectionProbe(
                cloud=CLOUD,
                host=self.endpoint(conn),
                credential_fields="AccessKey ID (login), AccessKey Secret (password) and, for STS keys, "
                "STS security token (extra security_token); the RAM user needs ros:GetAITask",
                host_field="Endpoint override (extra endpoint)",
                auth_codes=AUTH_ERROR_PREFIXES,
            )

        def call(probe: ConnectionProbe) -> str:
            from airflow_task_runs.core.errors import ApiError

            try:
                self.get_ai_task("t-airflow-connection-test")
            except ApiError as exc:
                code = exc.code or ""
                if exc.status_code is None or exc.status_code in (401, 403) or code.startswith(AUTH_ERROR_PREFIXES):
                    raise
                return f"Credentials accepted by {probe.host} (probe task answered {code or exc.status_code})"
            return f"Connected to ROS at {probe.host}"

        return run_probe(describe, call)


if TYPE_CHECKING:  # mypy checks the hook against the core contract; nothing runs at import
    from airflow_task_runs.core.hooks import RunStatusHook

    _contract: type[RunStatusHook] = RosHook
