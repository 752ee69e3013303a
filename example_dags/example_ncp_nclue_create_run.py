"""NAVER Cloud NCLUE: create a task run, wait for it, fetch its result; create another and cancel it.

Run it against the bundled emulator with ``make demo``; against NCP, create an ``ncp``
connection (Access Key ID, Secret Key) and trigger with your task and feature ids.

The create request carries no idempotency token: it is sent once, and a retry that may
follow a created run looks it up by name before creating another. NCLUE cancels a run only
by deleting it while it is ``registered``; ``cancel_run`` fails, saying so, once it has started.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_task_runs.ncp.operators import NclueCancelTaskRunOperator, NclueCreateTaskRunOperator

with DAG(
    dag_id="example_ncp_nclue_create_run",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "ncp", "airflow-task-runs"],
    params={
        "nclue_task_id": Param("3179664c-0000-0000-0000-af6354344018", type="string", description="NCLUE task id"),
        "feature_id": Param("28bd06bb-0000-0000-0000-9f2d6a9c3313", type="string", description="NCLUE feature id"),
        "result_bucket": Param("nclue-results", type="string", description="NCP Object Storage bucket"),
        "output_uri": Param(
            "file:///tmp/airflow-task-runs-demo/ncp-create/",
            type="string",
            description="Folder (ObjectStoragePath URI) that receives the result file",
        ),
    },
):
    create_run = NclueCreateTaskRunOperator(
        task_id="create_run",
        nclue_task_id="{{ params.nclue_task_id }}",
        feature_id="{{ params.feature_id }}",
        result_bucket="{{ params.result_bucket }}",
        result_file_path="airflow/{{ dag.dag_id }}/{{ dag_run.run_after | ds_nodash }}/",
        fetch_result=True,
        destination="{{ params.output_uri }}",
        deferrable=True,
        poke_interval=1,
        timeout=3600,
        retries=2,
        retry_delay=timedelta(seconds=30),
    )
    create_unwaited = NclueCreateTaskRunOperator(
        task_id="create_without_waiting",
        nclue_task_id="{{ params.nclue_task_id }}",
        feature_id="{{ params.feature_id }}",
        result_bucket="{{ params.result_bucket }}",
        result_file_path="airflow/cancelled/",
        wait_for_completion=False,
    )
    cancel_run = NclueCancelTaskRunOperator(
        task_id="cancel_run",
        run_id="{{ ti.xcom_pull(task_ids='create_without_waiting')['run_id'] }}",
    )
    create_unwaited >> cancel_run
