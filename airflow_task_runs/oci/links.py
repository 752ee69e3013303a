"""Console links for the Airflow UI (operator extra links).

The URL is computed in the worker, where the connection (region, ``console_url``) can be read,
and stored in XCom under the link's ``xcom_key``; the UI reads it back from there.

The console paths follow the OCI Console's ``/ai-data-platform/...`` pages; Oracle does not
document deep links, so set the connection's ``console_url`` (e.g. a realm's own console host)
if yours differ.
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


def _q(value: str) -> str:
    return urllib.parse.quote(str(value), safe="")


def task_run_console_url(
    console: str, region: str | None, ai_data_platform_id: str, workspace_key: str, task_run_key: str
) -> str:
    query = f"?region={_q(region)}" if region else ""
    return (
        f"{console}/ai-data-platform/instances/{_q(ai_data_platform_id)}/workspaces/{_q(workspace_key)}"
        f"/task-runs/{_q(task_run_key)}{query}"
    )


def experiment_run_console_url(
    console: str, region: str | None, ai_data_platform_id: str, workspace_key: str, run_id: str
) -> str:
    query = f"?region={_q(region)}" if region else ""
    return (
        f"{console}/ai-data-platform/instances/{_q(ai_data_platform_id)}/workspaces/{_q(workspace_key)}"
        f"/mlflow/runs/{_q(run_id)}{query}"
    )


class _XComLink(BaseOperatorLink):
    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return str(value) if value else ""


class OciTaskRunLink(_XComLink):
    """The task run in the OCI Console."""

    name = "OCI task run"


class OciExperimentRunLink(_XComLink):
    """The MLflow experiment run in the OCI Console."""

    name = "OCI MLflow run"


def push_link(context: Context, link: type[BaseOperatorLink], build: Any) -> None:
    """Store ``build()`` as the link's URL; a link that cannot be built never fails the task."""
    try:
        url = build()
        context["ti"].xcom_push(key=link().xcom_key, value=url)
    except Exception as exc:
        log.warning("Could not build the %s console link: %s", link.__name__, exc)
