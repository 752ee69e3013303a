"""AWS HealthOmics runs and run tasks, on the amazon provider's ``omics`` client.

The hook is an :class:`AwsBaseHook`: the ``aws`` connection's credentials, role assumption,
region, ``endpoint_url``, ``service_config`` and ``config_kwargs`` all work as in the amazon
provider. It also fulfils the core hook contract (``get_task_status`` / ``get_run_status``
and their ``a``-prefixed async twins, ``aclose``), so the core sensor and trigger serve it.

The sync calls (the worker's) are boto3's. The async ones (the triggerer's status, list and
cancel calls) are sent by :mod:`airflow_task_runs.aws.omics_rest` on the shared httpx session,
signed by :mod:`airflow_task_runs.aws.sigv4`, with the endpoint, region, credentials and
settings of the aiobotocore client the hook builds once (:meth:`HealthOmicsHook.aomics`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from airflow_task_runs.core.botocore_errors import api_error
from airflow_task_runs.core.errors import ApiError
from airflow_task_runs.core.hooks import RunStatusMixin, StatusPair
from airflow_task_runs.core.shared import RecentListing
from airflow_task_runs.core.states import RunState, RunStatus, StatusTable

if TYPE_CHECKING:
    import asyncio

    import boto3
    from botocore.config import Config

    from airflow_task_runs.aws.models import Run, RunListItem, RunTask, TaskListItem
    from airflow_task_runs.aws.omics_rest import OmicsRestClient
    from airflow_task_runs.core.http import RetryPolicy, Timeouts

CLOUD = "AWS HealthOmics"
LOGS = "AWS CloudWatch Logs"
S3 = "AWS S3"
#: GetLogEvents paging bounds (a page holds up to 10,000 events / 1 MB)
DEFAULT_MAX_LOG_PAGES = 10_000
DEFAULT_MAX_LOG_SECONDS = 3600.0
#: ListObjectsV2 paging bounds of a run's output listing (a page holds up to 1,000 keys)
DEFAULT_MAX_LIST_PAGES = 1_000
DEFAULT_MAX_LIST_SECONDS = 1800.0
DEFAULT_LOG_GROUP = "/aws/omics/WorkflowLog"
#: the call named by an error of the async client's first credentials fetch when no call was named
OPENING = "opening the HealthOmics client"
#: what building a client does that can fail: the connection's role is assumed (STS AssumeRole)
OPENING_WHAT = "the aws connection's credentials and region; its role, if it names one, assumed with STS"
#: botocore retry settings used when neither the hook nor the connection sets ``retries``
DEFAULT_RETRIES: dict[str, Any] = {"mode": "standard", "total_max_attempts": 5}

TASK_STATES = StatusTable(
    CLOUD,
    {
        RunState.PENDING: ("PENDING", "STARTING"),
        RunState.RUNNING: ("RUNNING", "STOPPING"),
        RunState.SUCCEEDED: ("COMPLETED",),
        RunState.FAILED: ("FAILED",),
        RunState.CANCELLED: ("CANCELLED",),
    },
)

RUN_STATES = StatusTable(
    CLOUD,
    {
        RunState.PENDING: ("PENDING", "STARTING"),
        RunState.RUNNING: ("RUNNING", "STOPPING"),
        RunState.SUCCEEDED: ("COMPLETED",),
        RunState.FAILED: ("FAILED",),
        RunState.CANCELLED: ("CANCELLED", "DELETED"),
    },
)

_LOG_STREAM_ARN = re.compile(
    r"^arn:(?P<partition>[^:]+):logs:[^:]*:[^:]*:log-group:(?P<group>.+?):log-stream:(?P<stream>.*)$"
)


def parse_log_stream(log_stream: str, default_group: str = DEFAULT_LOG_GROUP) -> tuple[str, str]:
    """``(log group, log stream)`` from a task's ``logStream``: a full log-stream ARN or a bare name."""
    if not log_stream or not log_stream.strip():
        raise ValueError("the task has no logStream: HealthOmics has not created its log yet")
    match = _LOG_STREAM_ARN.match(log_stream.strip())
    if match:
        return match.group("group"), match.group("stream")
    if log_stream.startswith("arn:"):
        raise ValueError(
            f"logStream {log_stream!r} is an ARN but not a CloudWatch Logs log-stream ARN "
            "(arn:aws:logs:<region>:<account>:log-group:<group>:log-stream:<stream>)"
        )
    return default_group, log_stream.strip()


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``(bucket, key prefix)`` of an ``s3://bucket/prefix`` URI."""
    if not uri or not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket")
    return bucket, prefix


def failure_reason(failure: str | None, message: str | None) -> str | None:
    """HealthOmics splits the reason in two: ``failureReason`` (a code) and ``statusMessage`` (words)."""
    parts = [p.strip() for p in (failure, message) if p and p.strip()]
    if not parts:
        return None
    if len(parts) == 2 and parts[0] == parts[1]:
        return parts[0]
    return ": ".join(parts)


@contextlib.contextmanager
def _mapped(operation: str, what: str = "", cloud: str = CLOUD, host: str | None = None) -> Iterator[None]:
    """botocore, transport and parse errors as one :class:`ApiError`; ours pass through, named."""
    from botocore.exceptions import BotoCoreError, ClientError
    from pydantic import ValidationError

    try:
        yield
    except ApiError as exc:  # raised by the guards: name the call
        if exc.operation is None:
            exc.operation = operation
            exc.message = f"{exc.message}{f' ({what})' if what else ''}"
            exc.refresh()
        raise
    except (ClientError, BotoCoreError, ValidationError, RecursionError) as exc:
        raise api_error(exc, operation, what, cloud, host, hint_not_found=cloud == CLOUD) from None


def _log_page(page: dict[str, Any], what: str, host: str | None) -> dict[str, Any]:
    """A GetLogEvents page as CloudWatch always sends it (``events`` and ``nextForwardToken``), or an error."""
    from airflow_task_runs.core.errors import MalformedResponseError

    events, token = page.get("events"), page.get("nextForwardToken")
    if isinstance(events, list) and isinstance(token, str) and token:
        return page
    _, request_id = _strip(page)
    missing = [name for name, ok in (("events", isinstance(events, list)), ("nextForwardToken", bool(token))) if not ok]
    shown = {k: v for k, v in page.items() if k != "ResponseMetadata"}
    raise MalformedResponseError(
        cloud=LOGS,
        status_code=200,
        code=None,
        message=f"GetLogEvents ({what}) answered without {' and '.join(missing)}, which CloudWatch always sends "
        f"(keys: {sorted(shown)[:5]}; a cut or garbled page, or another server answering): nothing was kept",
        request_id=request_id,
        host=host,
        operation="GetLogEvents",
        retryable=True,
    )


class _PagingBounds:
    """At most ``max_pages`` pages and ``max_seconds`` for one listing (GetLogEvents, ListObjectsV2).

    Each page is one call under the call's own time budget; these bound the whole: a server that
    never ends a listing (inventing continuation tokens) ends it with :meth:`exceeded`, not a loop.
    """

    def __init__(self, max_pages: int, max_seconds: float) -> None:
        import time

        self.max_pages = max_pages
        self.max_seconds = max_seconds
        self.pages = 0
        self._started = time.monotonic()

    @property
    def elapsed(self) -> float:
        import time

        return time.monotonic() - self._started

    def __iter__(self) -> Iterator[int]:
        """Page numbers, 1 on, while both bounds hold (the time counts the caller's work too)."""
        while self.pages < self.max_pages and self.elapsed <= self.max_seconds:
            self.pages += 1
            yield self.pages

    def exceeded(
        self, *, cloud: str, operation: str, what: str, host: str | None, code: str, end: str, limits: str, hint: str
    ) -> ApiError:
        return ApiError(
            cloud=cloud,
            status_code=None,
            code=code,
            message=f"{operation} ({what}): still paging after {self.pages} page(s) and {self.elapsed:.0f} s "
            f"without {end}. The limits are {limits}: {hint}",
            host=host,
            operation=operation,
        )


def _listed_status(item: TaskListItem, run_id: str) -> RunStatus:
    """A task still going, as ``ListRunTasks`` shows it (ended tasks are read with GetRunTask)."""
    return TASK_STATES.status(item.status, details={"runId": run_id, **item.model_dump(mode="json", exclude_none=True)})


def _listed_run_status(item: RunListItem) -> RunStatus:
    """A run still going, as ``ListRuns`` shows it (ended runs are read with GetRun)."""
    return RUN_STATES.status(item.status, details=item.model_dump(mode="json", exclude_none=True))


#: the statuses of a run that has not ended, one ``ListRuns`` call each
ACTIVE_RUN_STATUSES = ("PENDING", "STARTING", "RUNNING", "STOPPING")
#: pages of 100 read per status and round; watched runs beyond them are read with GetRun
MAX_ACTIVE_RUN_PAGES = 20


def _strip(response: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    meta = response.get("ResponseMetadata") or {}
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}, meta.get("RequestId")


def _warm_session(session: Any, service: str) -> None:
    """Read what a botocore session's first ``service`` client needs, into the session's caches.

    aiobotocore creates a client on the event loop, and the first one of a session reads and
    parses botocore's JSON data there (the service model, its endpoint rules, endpoints and
    partitions, the retry and defaults tables: a tenth of a second and more), builds the endpoint
    resolver and reads the AWS config files. Done here first, in a thread, ``create_client`` finds
    them cached. An error is left for ``create_client`` to raise, where it always did.
    """
    from botocore.exceptions import BotoCoreError

    with contextlib.suppress(BotoCoreError):
        loader = session.get_component("data_loader")
        api_version = (session.get_config_variable("api_versions") or {}).get(service)
        # called as aiobotocore and botocore call them: the loader's cache keys on the arguments' form
        loader.load_service_model(service, type_name="service-2", api_version=api_version)
        loader.load_service_model(service, "endpoint-rule-set-1", api_version=api_version)
        for name in ("partitions", "_retry", "sdk-default-configuration"):
            loader.load_data(name)
        session._get_internal_component("endpoint_resolver")
        session.get_scoped_config()


class HealthOmicsHook(RunStatusMixin, AwsBaseHook):
    """HealthOmics ``GetRun`` / ``GetRunTask`` / ``ListRunTasks`` over the ``omics`` client.

    :param aws_conn_id: an ``aws`` connection (as for every amazon-provider hook).
    :param region_name: overrides the connection's region.
    :param verify: TLS verification (bool or CA bundle path), as in the amazon provider.
    :param botocore_config: botocore ``Config`` keyword arguments (a dict, so the trigger can
        rebuild the hook); ``retries`` defaults to standard mode, 5 attempts in all (throttling and
        5xx are retried by botocore; other 4xx fail at once). Whatever the mode, a retry starts only
        within the connection's ``retry_max_elapsed`` (see :mod:`airflow_task_runs.aws.botocore_guard`).
        The async calls make as many attempts, with the session's backoff (see :meth:`aomics`).
    """

    def __init__(
        self,
        aws_conn_id: str | None = AwsBaseHook.default_conn_name,
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            client_type="omics",
            config=dict(botocore_config) if botocore_config else None,
        )
        self._async_stack: contextlib.AsyncExitStack | None = None
        self._async_client: Any = None
        self._async_client_lock: asyncio.Lock | None = None
        #: the triggerer's HealthOmics calls (aws.omics_rest), on the aiobotocore client's settings
        self._omics: OmicsRestClient | None = None
        #: the last ListRuns of the active statuses (coalesced run watches)
        self._active_runs: RecentListing[RunListItem] = RecentListing()
        self._logs_client: Any = None
        self._s3_client: Any = None

    # -- client configuration ----------------------------------------------------------------
    def _get_config(self, config: Config | None = None) -> Config:
        """The connection's RetryPolicy as botocore settings; no ``workflows-`` prefix on a custom endpoint."""
        from botocore.config import Config

        merged = self._with_policy(super()._get_config(config))
        return merged.merge(Config(inject_host_prefix=False)) if self.endpoint_url else merged

    def _policy(self) -> tuple[RetryPolicy, Timeouts]:
        """The connection's retry policy and timeouts (extras ``retry_max_attempts``, ``read_timeout``, ...)."""
        from airflow_task_runs.core.http import RetryPolicy, Timeouts

        extra = self.conn_config.extra_config or {}
        return RetryPolicy.from_extra(extra), Timeouts.from_extra(extra)

    def _with_policy(self, config: Config) -> Config:
        """``config`` with the policy's retries and timeouts wherever the user did not set them."""
        from botocore.config import Config

        policy, timeouts = self._policy()
        defaults = policy.botocore_config(timeouts)
        chosen = getattr(config, "_user_provided_options", {})
        missing = {name: value for name, value in defaults.items() if name not in chosen}
        return config.merge(Config(**missing)) if missing else config

    @property
    def budget(self) -> float:
        """Seconds one call may take, retries included (``retry_max_elapsed`` + ``read_timeout``)."""
        policy, timeouts = self._policy()
        return policy.budget(timeouts)

    def _max_response_bytes(self) -> int:
        from airflow_task_runs.core.http import max_response_bytes

        return max_response_bytes(self.conn_config.extra_config or {}, self.aws_conn_id or "")

    def _guard_bounds(self) -> dict[str, Any]:
        """What the guards hold a client to: the answer size cap, and the read timeout a retry
        must still have after its backoff (so retries start within ``retry_max_elapsed``)."""
        _, timeouts = self._policy()
        return {"max_bytes": self._max_response_bytes(), "retry_reserve": timeouts.read}

    def _guarded(self, client: Any, cloud: str, json_protocol: bool = True) -> Any:
        from airflow_task_runs.aws import botocore_guard

        self._mask_credentials(client)
        return botocore_guard.install(client, cloud=cloud, json_protocol=json_protocol, **self._guard_bounds())

    @property
    def endpoint_url(self) -> str | None:
        """The custom omics endpoint of the connection (``service_config.omics`` or ``endpoint_url``), if any."""
        url: str | None = self.conn_config.get_service_endpoint_url(service_name="omics")
        return url

    def _mask_credentials(self, client: Any = None) -> None:
        """Register the connection's secrets and, once a client exists, the credentials it signs with
        (assumed-role keys and session tokens never appear in the connection)."""
        from airflow_task_runs.core.secrets import mask_secrets

        cfg = self.conn_config
        mask_secrets(cfg.aws_secret_access_key, cfg.aws_session_token)
        credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            if hasattr(frozen, "close") and not hasattr(frozen, "secret_key"):  # aiobotocore: see aclient()
                frozen.close()
                return
            mask_secrets(frozen.secret_key, frozen.token)

    @property
    def client(self) -> Any:
        """The sync boto3 ``omics`` client (one per hook, reused)."""
        self._mask_credentials()
        from airflow_task_runs.aws.runs import support_output_uri_prefix_mode

        with _mapped(OPENING, OPENING_WHAT):  # the provider's AssumeRole runs here, at the first use
            conn = self.conn
        return self._guarded(support_output_uri_prefix_mode(conn), CLOUD)

    def get_session(self, region_name: str | None = None, deferrable: bool = False) -> boto3.session.Session:
        """The amazon provider's session; the async client's (``deferrable``) comes ready to open.

        :meth:`get_async_conn` calls this in a worker thread, and aiobotocore's ``create_client``
        runs later, on the event loop: what it would read there is read here (:func:`_warm_session`).
        """
        session = super().get_session(region_name=region_name, deferrable=deferrable)
        if deferrable:
            _warm_session(session, "omics")
        return session

    async def aclient(self, operation: str = OPENING) -> Any:
        """The aiobotocore ``omics`` client, opened once and kept until :meth:`aclose`.

        Built like the amazon provider's own triggers do (``get_async_conn``): the connection
        is read in a worker thread, never on the triggerer's event loop, and so are botocore's
        data files the client needs (:meth:`get_session`; aiobotocore's ``create_client`` runs on
        the loop, and read and parsed them there, a tenth of a second and more per hook) and the
        first fetch of its credentials (the provider's web identity credentials are fetched at
        their first use, by a blocking STS call); a failed fetch is an :class:`ApiError` naming
        ``operation``, the call that needed the client. The hook's own async calls go through
        :meth:`aomics`, which takes its endpoint, region, credentials and settings from this
        client; the client stays guarded (size cap, retry window) for any call made on it directly.
        """
        if self._async_client is not None:
            return self._async_client
        import asyncio

        if self._async_client_lock is None:  # triggers sharing this hook ask at once: build once
            self._async_client_lock = asyncio.Lock()
        async with self._async_client_lock:
            if self._async_client is None:
                from asgiref.sync import sync_to_async

                await sync_to_async(self._mask_credentials)()
                stack = contextlib.AsyncExitStack()
                try:
                    with _mapped(operation, OPENING_WHAT):  # the provider's AssumeRole runs in get_async_conn
                        client = await stack.enter_async_context(await self.get_async_conn())
                    from airflow_task_runs.aws.runs import support_output_uri_prefix_mode

                    support_output_uri_prefix_mode(client)
                    from airflow_task_runs.aws import botocore_guard

                    bounds = await sync_to_async(self._guard_bounds)()
                    botocore_guard.install(client, cloud=CLOUD, sync=False, **bounds)
                    from airflow_task_runs.aws.omics_rest import first_credentials

                    frozen = await first_credentials(client, operation)
                    if frozen is not None:
                        from airflow_task_runs.core.secrets import mask_secrets

                        await sync_to_async(mask_secrets)(frozen.secret_key, frozen.token)
                except BaseException:  # nothing kept: close what was opened (the next call tries again)
                    await stack.aclose()
                    raise
                self._async_client, self._async_stack = client, stack
        return self._async_client

    @contextlib.contextmanager
    def _call(self, operation: str, what: str, client: Any, cloud: str = CLOUD) -> Iterator[None]:
        """One sync call: errors mapped (naming the host), and bounded by the budget (the guards read it)."""
        from airflow_task_runs.core.http import request_deadline

        with _mapped(operation, what, cloud, client.meta.endpoint_url), request_deadline(self.budget):
            yield

    async def aomics(self, operation: str = OPENING) -> OmicsRestClient:
        """The triggerer's HealthOmics client (:mod:`airflow_task_runs.aws.omics_rest`), built once.

        It signs and sends the async status, list and cancel calls itself, on the shared httpx
        session, with what the aiobotocore client of :meth:`aclient` resolved: endpoint, region,
        credentials (refreshed by aiobotocore, off the event loop), TLS, retry attempts and
        timeouts. Built in a worker thread, never on the triggerer's event loop. ``operation``
        is the call that needs it: an error of the first credentials fetch names it.
        """
        if self._omics is not None:
            return self._omics
        import asyncio

        client = await self.aclient(operation)
        async with self._async_client_lock or asyncio.Lock():
            if self._omics is None:
                self._omics = await asyncio.to_thread(self._build_omics, client)
        return self._omics

    def _build_omics(self, client: Any) -> OmicsRestClient:
        from airflow_task_runs.aws.omics_rest import OmicsRestClient
        from airflow_task_runs.core.hooks import connection_rate_limiter

        conn_id = self.aws_conn_id or ""
        extra = self.conn_config.extra_config or {}
        limiter = connection_rate_limiter(extra, conn_id, self.conn_type or "aws")

        async def mask(credentials: Any) -> None:  # refreshed (assumed-role) keys and tokens
            import asyncio

            from airflow_task_runs.core.secrets import mask_secrets

            await asyncio.to_thread(mask_secrets, credentials.secret_key, credentials.token)

        return OmicsRestClient.from_aiobotocore(
            client,
            extra=extra,
            conn_id=conn_id,
            max_response_bytes=self._max_response_bytes(),
            limiter=limiter,
            on_credentials=mask,
        )

    async def aclose(self) -> None:
        """Close the async clients; safe to call more than once (the core trigger calls it)."""
        omics, self._omics = self._omics, None
        stack, self._async_stack, self._async_client = self._async_stack, None, None
        try:
            if omics is not None:
                await omics.aclose()
        finally:
            if stack is not None:
                await stack.aclose()

    def close(self) -> None:
        """Nothing to release: boto3's client pool lives as long as the hook."""

    # -- API ---------------------------------------------------------------------------------
    @staticmethod
    def _check_ids(run_id: str, run_task_id: str | None = None) -> None:
        from airflow_task_runs.core.ids import path_segment

        path_segment(run_id, "run_id", "pass the HealthOmics run id (the number in the run's ARN)")
        if run_task_id is not None:
            path_segment(run_task_id, "run_task_id", "pass the HealthOmics task id (taskId in ListRunTasks)")

    @staticmethod
    def _run(response: dict[str, Any]) -> Run:
        from airflow_task_runs.aws.models import Run

        body, request_id = _strip(response)
        run = Run.model_validate(body)
        run.request_id = request_id
        return run

    @staticmethod
    def _run_task(response: dict[str, Any]) -> RunTask:
        from airflow_task_runs.aws.models import RunTask

        body, request_id = _strip(response)
        task = RunTask.model_validate(body)
        task.request_id = request_id
        return task

    def get_run(self, run_id: str) -> Run:
        """``GetRun``: the run, with its ``uuid``, ``outputUri`` and status."""
        self._check_ids(run_id)
        client = self.client
        with self._call("GetRun", f"run {run_id}", client):
            return self._run(client.get_run(id=run_id))

    async def aget_run(self, run_id: str) -> Run:
        self._check_ids(run_id)
        return await (await self.aomics("GetRun")).get_run(run_id)

    def get_run_task(self, run_id: str, run_task_id: str) -> RunTask:
        """``GetRunTask``: one task of a run, every field of the API page and of botocore's shape."""
        self._check_ids(run_id, run_task_id)
        client = self.client
        with self._call("GetRunTask", f"run {run_id}, task {run_task_id}", client):
            return self._run_task(client.get_run_task(id=run_id, taskId=run_task_id))

    async def aget_run_task(self, run_id: str, run_task_id: str) -> RunTask:
        self._check_ids(run_id, run_task_id)
        return await (await self.aomics("GetRunTask")).get_run_task(run_id, run_task_id)

    def list_run_tasks(self, run_id: str, status: str | None = None) -> list[TaskListItem]:
        """``ListRunTasks``, every page; ``status`` filters on the task's status word."""
        from airflow_task_runs.aws.models import TaskListItem

        self._check_ids(run_id)
        params: dict[str, Any] = {"id": run_id}
        if status:
            params["status"] = status
        items: list[TaskListItem] = []
        client = self.client
        with self._call("ListRunTasks", f"run {run_id}", client):
            for page in client.get_paginator("list_run_tasks").paginate(**params):
                items.extend(TaskListItem.model_validate(item) for item in page.get("items", []))
        return items

    async def alist_run_tasks(self, run_id: str, status: str | None = None) -> list[TaskListItem]:
        """Every page, within one call's time budget; a ``nextToken`` sent twice is refused (``ListingLoop``)."""
        self._check_ids(run_id)
        return await (await self.aomics("ListRunTasks")).list_run_tasks(run_id, status or None)

    async def alist_runs(self, status: str, max_pages: int = MAX_ACTIVE_RUN_PAGES) -> list[RunListItem]:
        """``ListRuns`` of one status, at most ``max_pages`` pages of 100."""
        return await (await self.aomics("ListRuns")).list_runs(status, max_pages)

    # -- status (the core contract) ----------------------------------------------------------
    @staticmethod
    def run_status_of(run: Run) -> RunStatus:
        return RUN_STATES.status(
            run.status,
            message=failure_reason(run.failureReason, run.statusMessage),
            request_id=run.request_id,
            details=run.model_dump(mode="json", exclude_none=True),
        )

    @staticmethod
    def task_status_of(task: RunTask, run_id: str, run: Run | None = None) -> RunStatus:
        details = {"runId": run_id, **task.model_dump(mode="json", exclude_none=True)}
        if run is not None:
            details["runUuid"] = run.uuid
            details["runStatus"] = run.status
        return TASK_STATES.status(
            task.status,
            message=failure_reason(task.failureReason, task.statusMessage),
            request_id=task.request_id,
            details=details,
        )

    status_kinds = frozenset({"task", "run"})
    triggerer_modules = (
        *RunStatusMixin.triggerer_modules,
        "airflow_task_runs.aws.models",
        "airflow_task_runs.aws.runs",
        "airflow_task_runs.aws.botocore_guard",
        "airflow_task_runs.aws.omics_rest",
        "airflow_task_runs.aws.sigv4",
    )

    def status_pair(self, kind: str) -> StatusPair:
        if kind == "run":
            return StatusPair(self.get_run_status, self.aget_run_status)
        return StatusPair(self.get_task_status, self.aget_task_status)

    def get_run_status(self, run_id: str) -> RunStatus:
        return self.run_status_of(self.get_run(run_id))

    async def aget_run_status(self, run_id: str) -> RunStatus:
        return self.run_status_of(await self.aget_run(run_id))

    def get_task_status(self, run_id: str, run_task_id: str) -> RunStatus:
        """The task's status; once it is terminal the run's ``uuid`` joins the details (ids are reused)."""
        task = self.get_run_task(run_id, run_task_id)
        run = self.get_run(run_id) if TASK_STATES.is_terminal(task.status) else None
        return self.task_status_of(task, run_id, run)

    async def aget_task_status(self, run_id: str, run_task_id: str) -> RunStatus:
        task = await self.aget_run_task(run_id, run_task_id)
        run = await self.aget_run(run_id) if TASK_STATES.is_terminal(task.status) else None
        return self.task_status_of(task, run_id, run)

    # -- coalesced polling: one ListRunTasks answers every watched task of a run --------------
    def batch_key(self, kind: str, ref: Mapping[str, Any]) -> Hashable | None:
        """Task watches of one run share its ``ListRunTasks``; run watches share ``ListRuns``."""
        if kind == "task":
            return ("tasks", str(ref.get("run_id")))
        return ("runs",) if kind == "run" else None

    async def arun_statuses(self, kind: str, refs: Sequence[Mapping[str, Any]]) -> list[RunStatus | BaseException]:
        """Every watched task of one run from one ``ListRunTasks`` (all its pages).

        A task still going is answered from the list. A task the list shows ended is read once
        with ``GetRunTask`` (and the run once with ``GetRun`` for all of them), so its event has
        the same details as a task polled alone (``logStream``, ``failureReason``...). A task the
        list does not show is polled alone, its own not-found error included.
        """
        from airflow_task_runs.core.shared import answer_each, gather_statuses

        if kind == "run":
            return await self._arun_statuses_listed(refs)
        if kind != "task":
            return await super().arun_statuses(kind, refs)
        run_id = str(refs[0]["run_id"])
        listed = {item.taskId: item for item in await self.alist_run_tasks(run_id)}
        ended = [
            ref
            for ref in refs
            if ref["run_task_id"] in listed and TASK_STATES.is_terminal(listed[ref["run_task_id"]].status)
        ]
        alone = [ref for ref in refs if ref["run_task_id"] not in listed]
        run = await self.aget_run(run_id) if ended else None

        async def ended_status(ref: Mapping[str, Any]) -> RunStatus:
            return self.task_status_of(await self.aget_run_task(run_id, ref["run_task_id"]), run_id, run)

        answers: dict[int, RunStatus | BaseException] = {}
        for group, results in (
            (ended, await gather_statuses(ended_status, ended)),
            (alone, await gather_statuses(lambda ref: self.aget_task_status(**ref), alone)),
        ):
            answers.update(zip(map(id, group), results, strict=True))

        def answer(ref: Mapping[str, Any]) -> RunStatus | BaseException:
            return answers[id(ref)] if id(ref) in answers else _listed_status(listed[ref["run_task_id"]], run_id)

        return await answer_each(refs, answer)

    async def _arun_statuses_listed(self, refs: Sequence[Mapping[str, Any]]) -> list[RunStatus | BaseException]:
        """Run watches from ``ListRuns`` of the active statuses, one call each (and their pages).

        ``ListRuns`` filters by status but says nothing of its order, so the hook lists what
        is still going: a watched run found there is answered from the list; one that is not
        (it ended, or moved on between two of the calls) is read with ``GetRun``, so its
        terminal event carries the same details as a run polled alone. Few watches are polled
        alone: the lists would cost more calls than they save. Lists younger than
        :data:`~airflow_task_runs.core.shared.LIST_FRESHNESS` answer the next rounds too.
        """
        from airflow_task_runs.core.shared import answer_each, gather_statuses

        if len(refs) <= len(ACTIVE_RUN_STATUSES):
            return await gather_statuses(lambda ref: self.aget_run_status(**ref), refs)
        for ref in refs:
            self._check_ids(str(ref.get("run_id")))
        listed = self._active_runs.fresh()
        if listed is None:
            listed = {}
            for status in ACTIVE_RUN_STATUSES:
                listed.update((item.id, item) for item in await self.alist_runs(status))
            self._active_runs.store(listed)
        alone = [
            ref
            for ref in refs
            if str(ref["run_id"]) not in listed or RUN_STATES.is_terminal(listed[str(ref["run_id"])].status)
        ]
        read_alone = await gather_statuses(lambda ref: self.aget_run_status(**ref), alone)
        answers = dict(zip(map(id, alone), read_alone, strict=True))

        def answer(ref: Mapping[str, Any]) -> RunStatus | BaseException:
            return answers[id(ref)] if id(ref) in answers else _listed_run_status(listed[str(ref["run_id"])])

        return await answer_each(refs, answer)

    # -- helpers for the operators -----------------------------------------------------------
    def _service_client(self, client_type: str) -> Any:
        """A client of another service on the same connection, under the same RetryPolicy and budget."""
        hook = AwsBaseHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self._region_name,
            verify=self._verify,
            client_type=client_type,
            config=self._with_policy(AwsBaseHook._get_config(self, self._config)),
        )
        return hook.conn

    def logs_client(self) -> Any:
        """A CloudWatch Logs client on the same connection (``service_config.logs`` endpoint honoured)."""
        if self._logs_client is None:
            self._logs_client = self._guarded(self._service_client("logs"), LOGS)
        return self._logs_client

    def s3_client(self) -> Any:
        """An S3 client on the same connection (``service_config.s3`` endpoint honoured)."""
        if self._s3_client is None:
            self._s3_client = self._guarded(self._service_client("s3"), S3, json_protocol=False)
        return self._s3_client

    def iter_log_events(
        self,
        log_group: str,
        log_stream: str,
        page_size: int | None = None,
        *,
        max_pages: int = DEFAULT_MAX_LOG_PAGES,
        max_seconds: float = DEFAULT_MAX_LOG_SECONDS,
    ) -> Iterator[dict[str, Any]]:
        """Every event of a log stream, oldest first, or an error: never a log cut short.

        CloudWatch answers every page with ``events`` and a ``nextForwardToken``, and marks the
        end by returning the token it was sent. Any other page (no token, no events, a cut or
        HTML body that botocore would turn into ``{"message": ...}``) is a
        :class:`MalformedResponseError`; a page that arrived garbled is asked again (same token,
        the connection's RetryPolicy). Paging stops with an error after ``max_pages`` pages or
        ``max_seconds`` without the token repeating.
        """
        from airflow_task_runs.core.errors import MalformedResponseError
        from airflow_task_runs.core.http import RetryRules

        client = self.logs_client()
        params: dict[str, Any] = {"logGroupName": log_group, "logStreamName": log_stream, "startFromHead": True}
        if page_size:
            params["limit"] = page_size
        policy, _ = self._policy()
        rules = RetryRules(policy, LOGS, only=lambda exc: isinstance(exc, MalformedResponseError))
        token: str | None = None
        what = f"log group {log_group}, stream {log_stream}"
        bounds = _PagingBounds(max_pages, max_seconds)
        for _ in bounds:
            call = dict(params, nextToken=token) if token else params

            def page_of(call: dict[str, Any] = call) -> dict[str, Any]:
                with self._call("GetLogEvents", what, client, LOGS):
                    return _log_page(client.get_log_events(**call), what, client.meta.endpoint_url)

            page = rules.retrying()(page_of)
            yield from page["events"]
            next_token = page["nextForwardToken"]
            if next_token == token:
                return
            token = next_token
        raise bounds.exceeded(
            cloud=LOGS,
            operation="GetLogEvents",
            what=what,
            host=client.meta.endpoint_url,
            code="LogPagingLimit",
            end="CloudWatch repeating nextForwardToken (the end of the stream); nothing was kept",
            limits=f"max_log_pages={max_pages}, max_log_seconds={max_seconds:g}",
            hint="raise them if the log really is that long",
        )

    def iter_output_uris(
        self,
        output_uri: str,
        page_size: int | None = None,
        *,
        max_pages: int = DEFAULT_MAX_LIST_PAGES,
        max_seconds: float = DEFAULT_MAX_LIST_SECONDS,
    ) -> Iterator[str]:
        """``s3://`` URIs of every object under ``output_uri``, page after page of ListObjectsV2.

        Each page is one call within the connection's time budget (its retries included); the
        listing as a whole stops with an error after ``max_pages`` pages or ``max_seconds``
        without S3 saying it is complete (``IsTruncated`` false), and at once when S3 sends a
        continuation token it sent before (a loop) or none on a truncated page. URIs come as
        their page arrives: the caller decides how many it keeps.
        """
        import hashlib

        from airflow_task_runs.core.errors import MalformedResponseError

        bucket, prefix = parse_s3_uri(output_uri)
        client = self.s3_client()
        host = client.meta.endpoint_url
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if page_size:
            params["MaxKeys"] = page_size
        bounds = _PagingBounds(max_pages, max_seconds)
        token: str | None = None
        seen: set[bytes] = set()  # digests of the tokens sent: a few bytes a page, whatever the server sends
        for _ in bounds:
            call = dict(params, ContinuationToken=token) if token else params
            with self._call("ListObjectsV2", output_uri, client, S3):
                page = client.list_objects_v2(**call)
            for obj in page.get("Contents") or []:
                yield f"s3://{bucket}/{obj['Key']}"
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")
            _, request_id = _strip(page)
            if not token:
                raise MalformedResponseError(
                    cloud=S3,
                    status_code=200,
                    code=None,
                    message=f"ListObjectsV2 ({output_uri}) answered IsTruncated without a NextContinuationToken "
                    f"after {bounds.pages} page(s): the rest of the listing cannot be asked for",
                    request_id=request_id,
                    host=host,
                    operation="ListObjectsV2",
                )
            digest = hashlib.sha256(token.encode()).digest()
            if digest in seen:
                raise MalformedResponseError(
                    cloud=S3,
                    status_code=200,
                    code="ListingLoop",
                    message=f"ListObjectsV2 ({output_uri}) sent a continuation token it had sent before, after "
                    f"{bounds.pages} page(s): the listing would go round in a loop (a buggy S3-compatible store?)",
                    request_id=request_id,
                    host=host,
                    operation="ListObjectsV2",
                )
            seen.add(digest)
        raise bounds.exceeded(
            cloud=S3,
            operation="ListObjectsV2",
            what=output_uri,
            host=host,
            code="ListPagingLimit",
            end="S3 ending the listing (IsTruncated false)",
            limits=f"max_list_pages={max_pages}, max_list_seconds={max_seconds:g}",
            hint="raise them (the operator's max_list_pages / max_list_seconds, the hook's max_pages / max_seconds) "
            "if the run really has that many outputs",
        )

    def console_region(self) -> str:
        """The region the console links point at."""
        region = self.region_name or self.conn_region_name
        return str(region)

    # -- start and cancel --------------------------------------------------------------------
    def start_run(self, request: dict[str, Any]) -> dict[str, Any]:
        """``StartRun`` (checked input from :func:`aws.runs.start_run_request`); the answer's fields.

        ``requestId`` is the idempotency token: botocore's retries (5xx, throttling) resend the same
        body, and HealthOmics starts one run per token, so a retried call never starts a second run.
        """
        what = f"workflow {request.get('workflowId') or request.get('runId')}, requestId {request.get('requestId')}"
        client = self.client
        with self._call("StartRun", what, client):
            body, request_id = _strip(client.start_run(**request))
        self.log.info("Started HealthOmics run %s (%s) [request id %s]", body.get("id"), what, request_id)
        return body

    def _cancel_needed(self, run: Run) -> bool:
        return not RUN_STATES.is_terminal(run.status)

    def cancel_run(self, run_id: str) -> bool:
        """``CancelRun`` unless the run has ended already; ``False`` then (nothing to cancel)."""
        if not self._cancel_needed(self.get_run(run_id)):
            return False
        client = self.client
        with self._call("CancelRun", f"run {run_id}", client):
            client.cancel_run(id=run_id)
        self.log.info("Cancelled HealthOmics run %s", run_id)
        return True

    async def acancel_run(self, run_id: str) -> bool:
        if not self._cancel_needed(await self.aget_run(run_id)):
            return False
        request_id = await (await self.aomics("CancelRun")).cancel_run(run_id)
        self.log.info("Cancelled HealthOmics run %s [request id %s]", run_id, request_id)
        return True

    # -- UI ----------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:  # type: ignore[override]
        """Reach HealthOmics once with the connection (a not-found answer still proves signing works)."""
        from airflow_task_runs.core.connection_test import ConnectionProbe, run_probe

        probe_hook = type(self)(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            botocore_config={"retries": {"mode": "standard", "total_max_attempts": 1}},
        )

        def describe() -> ConnectionProbe:
            region = probe_hook.region_name or "the default region"
            return ConnectionProbe(
                cloud=CLOUD,
                host=probe_hook.endpoint_url or f"https://workflows-omics.{region}.amazonaws.com",
                credential_fields="the aws connection's credentials (login/password, role_arn, profile) or the "
                "worker's AWS environment, and that the role allows omics:GetRun",
                host_field="region_name / endpoint_url (extra)",
                auth_codes=("AccessDenied", "UnrecognizedClient", "InvalidSignature", "NoCredentials"),
            )

        def call(probe: ConnectionProbe) -> str:
            region = probe_hook.region_name or "the default region"
            try:
                probe_hook.get_run("0")
            except ApiError as exc:
                if exc.code in ("ResourceNotFoundException", "ValidationException"):
                    return f"Reached {CLOUD} at {probe.host} in {region} ({exc.code} for a probe)"
                raise
            return f"Reached {CLOUD} at {probe.host} in {region}"

        return run_probe(describe, call)


if TYPE_CHECKING:  # mypy checks the hook against the core contract; nothing runs at import
    from airflow_task_runs.core.hooks import RunStatusHook

    _contract: type[RunStatusHook] = HealthOmicsHook
