"""The contract every cloud hook fulfils, and the base for hooks on the shared httpx session.

A status method comes in a pair: ``get_<kind>_status(**run_ref) -> RunStatus`` for the
worker and ``aget_<kind>_status(**run_ref)`` for the triggerer. The core sensor and trigger
call them by name, so one sensor and one trigger serve every cloud.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_task_runs.core.errors import ConnectionConfigError

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_task_runs.core.http import ApiSession


class TaskRunHook(BaseHook):
    """Base of every cloud hook: connection loading (sync or async) and field checks."""

    conn_name_attr = "conn_id"
    default_conn_name = ""
    conn_type = ""
    hook_name = ""

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

    def close(self) -> None:
        """Release network resources; safe to call more than once."""

    async def aclose(self) -> None:
        """Release async network resources; safe to call more than once."""


class HttpTaskRunHook(TaskRunHook):
    """A hook whose API is spoken over the shared :class:`ApiSession` (every cloud but AWS)."""

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(conn_id, **kwargs)
        self._session: ApiSession | None = None

    def _build_session(self, conn: Connection) -> ApiSession:
        raise NotImplementedError

    @property
    def session(self) -> ApiSession:
        if self._session is None:
            self._session = self._build_session(self.connection)
        return self._session

    async def asession(self) -> ApiSession:
        if self._session is None:
            conn = await self.aconnection()
            # Building a session may read a key file or (OCI principals) call a metadata
            # service: keep that off the triggerer's event loop.
            import asyncio

            self._session = await asyncio.to_thread(self._build_session, conn)
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
