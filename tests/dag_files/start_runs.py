"""Test DAGs: the start operators in poke and deferrable mode, one task each, retried once at once."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_task_runs.aws.operators import HealthOmicsStartRunOperator
from airflow_task_runs.ncp.operators import NclueCreateTaskRunOperator

for mode in ("poke", "deferrable", "reschedule"):
    with DAG(
        dag_id=f"start_healthomics_{mode}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        params={"output_uri": "s3://omics-outputs/dag-tests/", "prefix_mode": "SERVICE_DEFINED"},
    ):
        HealthOmicsStartRunOperator(
            task_id="start",
            workflow_id="9876543",
            role_arn="arn:aws:iam::123456789012:role/OmicsWorkflowRole",
            output_uri="{{ params.output_uri }}",
            output_uri_prefix_mode="{{ params.prefix_mode }}",
            parameters={"sample": "{{ run_id }}"},
            deferrable=mode == "deferrable",
            mode="reschedule" if mode == "reschedule" else "poke",
            poke_interval=1 if mode == "reschedule" else 0.1,
            timeout=60,
            retries=1,
            retry_delay=timedelta(0),
        )
    if mode == "reschedule":
        continue
    with DAG(
        dag_id=f"create_nclue_{mode}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
    ):
        NclueCreateTaskRunOperator(
            task_id="create",
            nclue_task_id="3179664c-0000-0000-0000-af6354344018",
            feature_id="28bd06bb-0000-0000-0000-9f2d6a9c3313",
            result_bucket="nclue-results",
            result_file_path="dag-tests/",
            fetch_result=True,
            deferrable=mode == "deferrable",
            poke_interval=0.1,
            timeout=60,
            retries=1,
            retry_delay=timedelta(0),
        )
