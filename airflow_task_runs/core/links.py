"""Console links (operator extra links) whose URL is built in the worker and kept in XCom.

Only the worker can read the connection (region, console host) and the rendered run ids,
so the operator computes the URL while it runs and stores it under the link's
``xcom_key``; the UI reads it back. A link that cannot be built never fails the task.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)

#: links pushed by this worker process: (dag_id, run_id, task_id, map_index, xcom key) -> URL
_PUSHED: dict[tuple[str, str, str, int, str], str] = {}


def _ti_key(ti: object, xcom_key: str) -> tuple[str, str, str, int, str]:
    map_index = getattr(ti, "map_index", -1)
    return (
        str(getattr(ti, "dag_id", "")),
        str(getattr(ti, "run_id", "")),
        str(getattr(ti, "task_id", "")),
        map_index if isinstance(map_index, int) else -1,
        xcom_key,
    )


def _may_have_pushed_elsewhere(ti: object) -> bool:
    """Whether an earlier process of this task could have stored the link (it resumed after deferral).

    The task runner asks every extra link for its URL when a task ends; a task that failed
    before building its link has none, and reading the absent XCom only logs "XCom not found".
    """
    run_context = getattr(ti, "_ti_context_from_server", None)
    if run_context is None:  # not the task runner's task instance: look it up as before
        return True
    return bool(getattr(run_context, "next_method", None))


def quote_segment(value: object) -> str:
    """One URL path segment or query value, fully escaped."""
    return urllib.parse.quote(str(value), safe="")


class XComConsoleLink(BaseOperatorLink):
    """Base of the provider's console links: the URL is whatever the worker stored."""

    name = "Console"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        pushed = _PUSHED.get(_ti_key(ti_key, self.xcom_key))
        if pushed is not None:
            return pushed
        if not _may_have_pushed_elsewhere(ti_key):
            return ""
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return str(value) if value else ""


def push_link(context: Context, link: type[BaseOperatorLink], build: Callable[[], str]) -> None:
    """Store ``build()`` as the link's URL for the UI; failures are logged, never raised."""
    try:
        key, url = link().xcom_key, build()
        context["ti"].xcom_push(key=key, value=url)
        _PUSHED[_ti_key(context["ti"], key)] = url
    except Exception as exc:
        log.warning("Could not build the %s console link: %s", link.name, exc)
