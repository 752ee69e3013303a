"""Console links for the Airflow UI (operator extra links).

The URL is computed in the worker, where the connection (region, ``console_url``) can be read,
and stored in XCom under the link's ``xcom_key``; the UI reads it back from there.

The console paths follow the OCI Console's ``/ai-data-platform/...`` pages; Oracle does not
document deep links, so set the connection's ``console_url`` (e.g. a realm's own console host)
if yours differ.
"""

from __future__ import annotations

from airflow_task_runs.core.links import XComConsoleLink, push_link, quote_segment

__all__ = ["OciExperimentRunLink", "OciTaskRunLink", "experiment_run_console_url", "push_link", "task_run_console_url"]


def task_run_console_url(
    console: str, region: str | None, ai_data_platform_id: str, workspace_key: str, task_run_key: str
) -> str:
    query = f"?region={quote_segment(region)}" if region else ""
    return (
        f"{console}/ai-data-platform/instances/{quote_segment(ai_data_platform_id)}"
        f"/workspaces/{quote_segment(workspace_key)}/task-runs/{quote_segment(task_run_key)}{query}"
    )


def experiment_run_console_url(
    console: str, region: str | None, ai_data_platform_id: str, workspace_key: str, run_id: str
) -> str:
    query = f"?region={quote_segment(region)}" if region else ""
    return (
        f"{console}/ai-data-platform/instances/{quote_segment(ai_data_platform_id)}"
        f"/workspaces/{quote_segment(workspace_key)}/mlflow/runs/{quote_segment(run_id)}{query}"
    )


class OciTaskRunLink(XComConsoleLink):
    """The task run in the OCI Console."""

    name = "OCI task run"


class OciExperimentRunLink(XComConsoleLink):
    """The MLflow experiment run in the OCI Console."""

    name = "OCI MLflow run"
