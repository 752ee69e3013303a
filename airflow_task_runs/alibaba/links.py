"""Console link to an AI task in the ROS console (operator extra link).

The URL is computed in the worker, where the connection (region, ``console_url``) can be
read, and stored in XCom under the link's ``xcom_key``; the UI reads it back from there.
Alibaba does not document deep links into the ROS console's AI task pages: the path below
follows the console's ``/{region}/...`` layout; set the connection's ``console_url`` (e.g.
``https://ros.console.alibabacloud.com`` for the international site) if yours differs.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)


def ai_task_console_url(console: str, region_id: str, ai_task_id: str) -> str:
    quote = urllib.parse.quote
    return f"{console.rstrip('/')}/{quote(region_id, safe='')}/ai-task/{quote(ai_task_id, safe='')}"


class RosAITaskLink(BaseOperatorLink):
    """The AI task in the ROS console for the connection's region."""

    name = "ROS AI task"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return str(value) if value else ""


def push_ai_task_link(context: Context, hook: Any, ai_task_id: str) -> None:
    """Store the console URL for the UI; a link that cannot be built never fails the task."""
    try:
        url = ai_task_console_url(hook.console_url(), hook.region_id, ai_task_id)
        context["ti"].xcom_push(key=RosAITaskLink().xcom_key, value=url)
    except Exception as exc:
        log.warning("Could not build the ROS AI task console link: %s", exc)
