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


def quote_segment(value: object) -> str:
    """One URL path segment or query value, fully escaped."""
    return urllib.parse.quote(str(value), safe="")


class XComConsoleLink(BaseOperatorLink):
    """Base of the provider's console links: the URL is whatever the worker stored."""

    name = "Console"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return str(value) if value else ""


def push_link(context: Context, link: type[BaseOperatorLink], build: Callable[[], str]) -> None:
    """Store ``build()`` as the link's URL for the UI; failures are logged, never raised."""
    try:
        context["ti"].xcom_push(key=link().xcom_key, value=build())
    except Exception as exc:
        log.warning("Could not build the %s console link: %s", link.name, exc)
