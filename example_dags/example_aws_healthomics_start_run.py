"""AWS HealthOmics: start a workflow run, wait for it, list its outputs; start another and cancel it.

Run it against the bundled emulator with ``make demo``; against AWS, use your ``aws_default``
connection (the amazon provider's) and trigger with your workflow id, service role and output
location. The connection's role needs omics:StartRun, omics:GetRun, omics:CancelRun,
iam:PassRole on the service role, and s3:ListBucket on the output bucket.

A retry of ``start_run`` reconnects to the run it started (the run id is in the task's state
store); marking the task failed or clearing it while the run goes on cancels that run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_task_runs.aws.operators import HealthOmicsCancelRunOperator, HealthOmicsStartRunOperator

with DAG(
    dag_id="example_aws_healthomics_start_run",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "aws", "airflow-task-runs"],
    params={
        "workflow_id": Param("9876543", type="string", description="HealthOmics workflow id"),
        "role_arn": Param(
            "arn:aws:iam::123456789012:role/OmicsWorkflowRole",
            type="string",
            description="IAM service role the run uses",
        ),
        "omics_output_uri": Param(
            "s3://omics-demo-outputs/runs/", type="string", description="s3:// URI the run writes under"
        ),
    },
):
    start_run = HealthOmicsStartRunOperator(
        task_id="start_run",
        workflow_id="{{ params.workflow_id }}",
        role_arn="{{ params.role_arn }}",
        output_uri="{{ params.omics_output_uri }}",
        parameters={"sample_id": "NA12878", "dag_run": "{{ run_id }}"},
        storage_type="DYNAMIC",
        tags={"airflow-dag": "{{ dag.dag_id }}"},
        name="{{ dag.dag_id }}-{{ dag_run.run_after | ts_nodash }}",
        deferrable=True,
        poke_interval=1,
        timeout=3600,
        retries=2,
        retry_delay=timedelta(seconds=30),
    )
    start_unwaited = HealthOmicsStartRunOperator(
        task_id="start_without_waiting",
        workflow_id="{{ params.workflow_id }}",
        role_arn="{{ params.role_arn }}",
        output_uri="{{ params.omics_output_uri }}",
        output_uri_prefix_mode="SERVICE_DEFINED",
        storage_type="DYNAMIC",
        wait_for_completion=False,
    )
    cancel_run = HealthOmicsCancelRunOperator(
        task_id="cancel_run",
        run_id="{{ ti.xcom_pull(task_ids='start_without_waiting')['runId'] }}",
    )
    start_unwaited >> cancel_run
