"""Console links (operator extra links) to a HealthOmics run and run task, for the connection's region.

The region comes from the connection (or ``region_name``), which only the worker can read,
so the URL is built while the task runs and kept in XCom (see :mod:`airflow_task_runs.core.links`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_task_runs.core.links import XComConsoleLink, push_link, quote_segment

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_task_runs.aws.hooks import HealthOmicsHook


def console_base(region: str) -> str:
    region = quote_segment(region)
    return f"https://{region}.console.aws.amazon.com/omics/home?region={region}#"


def run_console_url(region: str, run_id: str) -> str:
    return f"{console_base(region)}/runs/{quote_segment(run_id)}"


def run_task_console_url(region: str, run_id: str, run_task_id: str) -> str:
    return f"{run_console_url(region, run_id)}/tasks/{quote_segment(run_task_id)}"


class HealthOmicsRunLink(XComConsoleLink):
    """The run in the AWS HealthOmics console."""

    name = "HealthOmics run"


class HealthOmicsRunTaskLink(XComConsoleLink):
    """The run task in the AWS HealthOmics console."""

    name = "HealthOmics run task"


def push_run_links(context: Context, hook: HealthOmicsHook, run_id: str, run_task_id: str | None = None) -> None:
    """Store the run link (and the task link when there is a task); never fails the task."""
    push_link(context, HealthOmicsRunLink, lambda: run_console_url(hook.console_region(), run_id))
    if run_task_id is not None:
        push_link(
            context,
            HealthOmicsRunTaskLink,
            lambda: run_task_console_url(hook.console_region(), run_id, run_task_id),
        )
