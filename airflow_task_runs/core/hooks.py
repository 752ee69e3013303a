"""The contract every cloud hook fulfils, and the base for hooks on the shared httpx session.

A hook answers "what is the status of this run?" for one or more *kinds* of run (``status_kinds``:
an OCI task run or MLflow run, a HealthOmics task or run...). :class:`RunStatusHook` is that
contract as a ``typing.Protocol``: mypy checks every cloud's hook against it (each hooks module
ends with a typing-only assignment), and a test checks every sensor's hook at run time.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol, runtime_checkable

from airflow.sdk import BaseHook

from airflow_task_runs.core.errors import ConnectionConfigError

if TYPE_CHECKING:
    import asyncio

    from airflow.sdk import Connection

    from airflow_task_runs.core.http import ApiSession
    from airflow_task_runs.core.shared import RateLimiter
    from airflow_task_runs.core.states import RunStatus


def connection_rate_limiter(
    extra: Mapping[str, Any], conn_id: str, kind: str, default: float | None = None
) -> RateLimiter:
    """The process's limiter of connection ``conn_id``, shared by every hook on it (``kind``, the
    connection type, keeps types apart), at its extra's ``max_requests_per_second`` (``default``
    when the extra does not set it; 0/""/null: no limit). A bad value is a ConnectionConfigError
    naming ``extra.max_requests_per_second``. Every hook builds its limiter here, the AWS hook
    (not a :class:`TaskRunHook`: an amazon-provider hook) included."""
    from airflow_task_runs.core.shared import rate_from_extra, rate_limiter

    return rate_limiter(kind, conn_id, rate_from_extra(extra, default, conn_id))


class StatusPair(NamedTuple):
    """A status method and its async twin, named explicitly (typed, no implied ``a`` prefix)."""

    get: Callable[..., RunStatus]
    aget: Callable[..., Awaitable[RunStatus]]


@runtime_checkable
class RunStatusHook(Protocol):
    """What the core sensor and trigger need from a hook.

    ``run_status`` / ``arun_status`` answer for one run (worker / triggerer). ``batch_key``
    says which runs one list call can answer together (``None``: this run is polled alone);
    ``arun_statuses`` answers such a group in one call, in order, an exception in place of a
    run it could not answer. ``aclose`` releases the async clients.
    """

    status_kinds: ClassVar[frozenset[str]]

    def run_status(self, kind: str, ref: Mapping[str, Any]) -> RunStatus: ...

    async def arun_status(self, kind: str, ref: Mapping[str, Any]) -> RunStatus: ...

    def batch_key(self, kind: str, ref: Mapping[str, Any]) -> Hashable | None: ...

    async def arun_statuses(self, kind: str, refs: Sequence[Mapping[str, Any]]) -> list[RunStatus | BaseException]: ...

    async def aclose(self) -> None: ...


class RunStatusMixin:
    """``run_status`` / ``arun_status`` by kind, and per-run batches; a hook names its pairs."""

    status_kinds: ClassVar[frozenset[str]] = frozenset()
    #: modules the hook's async calls import on first use, which a trigger imports in a thread
    #: before its first poll (a first import on the triggerer's loop would stall every watch)
    triggerer_modules: ClassVar[tuple[str, ...]] = (
        "airflow_task_runs.core.ids",
        "airflow_task_runs.core.secrets",
        "airflow_task_runs.core.outputs",  # the terminal event's bounds
    )

    def status_pair(self, kind: str) -> StatusPair:
        raise NotImplementedError

    def _pair(self, kind: str) -> StatusPair:
        if kind not in self.status_kinds:
            raise ValueError(
                f"{type(self).__name__} has no status kind {kind!r}; it knows {', '.join(sorted(self.status_kinds))}"
            )
        return self.status_pair(kind)

    def run_status(self, kind: str, ref: Mapping[str, Any]) -> RunStatus:
        return self._pair(kind).get(**ref)

    async def arun_status(self, kind: str, ref: Mapping[str, Any]) -> RunStatus:
        return await self._pair(kind).aget(**ref)

    def batch_key(self, kind: str, ref: Mapping[str, Any]) -> Hashable | None:
        """No list call answers several runs unless the cloud's hook says so."""
        return None

    async def arun_statuses(self, kind: str, refs: Sequence[Mapping[str, Any]]) -> list[RunStatus | BaseException]:
        from airflow_task_runs.core.shared import gather_statuses

        return await gather_statuses(lambda ref: self.arun_status(kind, ref), refs)


class TaskRunHook(RunStatusMixin, BaseHook):
    """Base of every cloud hook: connection loading (sync or async) and field checks."""

    conn_name_attr = "conn_id"
    default_conn_name = ""
    conn_type = ""
    hook_name = ""
    #: requests per second per connection when its extra sets no ``max_requests_per_second``
    default_max_requests_per_second: ClassVar[float | None] = None

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.default_conn_name
        self._connection: Connection | None = None

    # -- connection --------------------------------------------------------------------------
    @property
    def connection(self) -> Connection:
        """The Airflow connection, read once (synchronously: never from the triggerer's loop)."""
        if self._connection is None:
            self._connection = self.get_connection(self.conn_id)
            self._on_connection(self._connection)
        return self._connection

    async def aconnection(self) -> Connection:
        """The Airflow connection, read once through the async lookup (safe in the triggerer)."""
        if self._connection is None:
            self._connection = await self.aget_connection(self.conn_id)
            self._on_connection(self._connection)
        return self._connection

    def _on_connection(self, conn: Connection) -> None:
        """Register the connection's secrets with the masker as soon as it is read."""
        from airflow_task_runs.core.secrets import mask_secrets

        mask_secrets(conn.password, *(self._secret_extra_values(conn)))

    def _secret_extra_values(self, conn: Connection) -> list[Any]:
        """Secret values kept in the extra; clouds override."""
        return []

    @staticmethod
    def extra_of(conn: Connection) -> dict[str, Any]:
        raw = conn.extra
        if not raw:
            return {}
        if isinstance(raw, Mapping):
            return dict(raw)
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConnectionConfigError(conn.conn_id, "extra", f"is not valid JSON ({exc.msg})") from None
        if not isinstance(parsed, dict):
            raise ConnectionConfigError(conn.conn_id, "extra", "must be a JSON object")
        return parsed

    def require(self, conn: Connection, value: Any, field: str, how: str) -> str:
        """Return ``value`` as a non-empty string or raise an error naming the field and the fix."""
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ConnectionConfigError(conn.conn_id, field, f"is missing: {how}")
        return str(value).strip()

    def rate_limiter(self, conn: Connection) -> RateLimiter:
        """The connection's limiter, shared by every hook on it in this process."""
        return connection_rate_limiter(
            self.extra_of(conn),
            conn.conn_id,
            self.conn_type or type(self).__name__,
            self.default_max_requests_per_second,
        )

    def close(self) -> None:
        """Release network resources; safe to call more than once."""

    async def aclose(self) -> None:
        """Release async network resources; safe to call more than once."""


class HttpTaskRunHook(TaskRunHook):
    """A hook whose API is spoken only over the shared :class:`ApiSession`.

    AWS is not one: its workers keep boto3, and only its triggerer calls use the session
    (``aws/omics_rest.py``).
    """

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(conn_id, **kwargs)
        self._session: ApiSession | None = None
        self._session_lock: asyncio.Lock | None = None

    def _build_session(self, conn: Connection) -> ApiSession:
        raise NotImplementedError

    def _limited_session(self, conn: Connection) -> ApiSession:
        session = self._build_session(conn)
        session.limiter = self.rate_limiter(conn)
        return session

    def _async_session(self, conn: Connection) -> ApiSession:
        # in asession()'s thread: what the async calls import on first use (the cloud's models:
        # pydantic builds every validator) is imported here too, for callers other than a trigger
        import importlib

        for module in self.triggerer_modules:
            importlib.import_module(module)
        session = self._limited_session(conn)
        session.warm_async()
        return session

    @property
    def session(self) -> ApiSession:
        if self._session is None:
            self._session = self._limited_session(self.connection)
        return self._session

    async def asession(self) -> ApiSession:
        """The session, built once even when many triggers sharing this hook ask at once."""
        if self._session is not None:
            return self._session
        import asyncio

        if self._session_lock is None:
            self._session_lock = asyncio.Lock()
        async with self._session_lock:
            if self._session is None:
                conn = await self.aconnection()
                # Building a session may read a key file or (OCI principals) call a metadata
                # service, and its async client's first use imports aiohttp: keep all of it off
                # the triggerer's event loop.
                self._session = await asyncio.to_thread(self._async_session, conn)
        return self._session

    def get_conn(self) -> ApiSession:
        return self.session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.aclose()


def normalize_url(value: str, default_scheme: str = "https") -> str:
    """Accept a host with or without a scheme; no trailing slash."""
    value = value.strip().rstrip("/")
    if "://" not in value:
        value = f"{default_scheme}://{value}"
    return value
