"""Console link to an AI task in the ROS console (operator extra link).

Alibaba does not document deep links into the ROS console's AI task pages: the path below
follows the console's ``/{region}/...`` layout; set the connection's ``console_url`` (e.g.
``https://ros.console.alibabacloud.com`` for the international site) if yours differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_task_runs.core.links import XComConsoleLink, push_link, quote_segment

if TYPE_CHECKING:
    from airflow.sdk import Context


def ai_task_console_url(console: str, region_id: str, ai_task_id: str) -> str:
    return f"{console.rstrip('/')}/{quote_segment(region_id)}/ai-task/{quote_segment(ai_task_id)}"


class RosAITaskLink(XComConsoleLink):
    """The AI task in the ROS console for the connection's region."""

    name = "ROS AI task"


def push_ai_task_link(context: Context, hook: Any, ai_task_id: str) -> None:
    push_link(context, RosAITaskLink, lambda: ai_task_console_url(hook.console_url(), hook.region_id, ai_task_id))
