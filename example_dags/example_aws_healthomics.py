"""AWS HealthOmics: wait for a run task and its run, then collect the task's details, its log and the run's outputs.

Run it against the bundled emulator with ``make demo``; against AWS, use your ``aws_default``
connection (the amazon provider's) and trigger with ``{"run_id": "...", "run_task_id": "..."}``.
The connection's role needs omics:GetRun, omics:GetRunTask, omics:ListRunTasks,
logs:GetLogEvents and s3:ListBucket.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_task_runs.aws.operators import (
    HealthOmicsFetchTaskLogOperator,
    HealthOmicsGetRunTaskOperator,
    HealthOmicsListRunOutputsOperator,
)
from airflow_task_runs.aws.sensors import HealthOmicsRunSensor, HealthOmicsRunTaskSensor

with DAG(
    dag_id="example_aws_healthomics",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "aws", "airflow-task-runs"],
    params={
        "run_id": Param("1234567", type="string", description="HealthOmics run id"),
        "run_task_id": Param("7654321", type="string", description="HealthOmics task id (taskId) of that run"),
        "output_uri": Param(
            "file:///tmp/airflow-task-runs-demo/aws/",
            type="string",
            description="Folder (ObjectStoragePath URI) that receives the task's log",
        ),
        "s3_uri": Param(
            "s3://aws_default@my-bucket/demo/aws/",
            type="string",
            description="s3:// folder for a copy; credentials: aws_default, named in the URI (s3://aws_default@...)",
        ),
    },
):
    wait_for_task = HealthOmicsRunTaskSensor(
        task_id="wait_for_run_task",
        run_id="{{ params.run_id }}",
        run_task_id="{{ params.run_task_id }}",
        poke_interval=1,
        timeout=300,
        deferrable=True,
    )
    # Reschedule mode frees the worker slot between pokes: for waits of minutes or more. Its pokes
    # stay 10 s or more apart: Airflow's LocalExecutor can report a rescheduled task's exit a few
    # seconds late, and fails the task if the scheduler has queued it again by then.
    wait_for_run = HealthOmicsRunSensor(
        task_id="wait_for_run",
        run_id="{{ params.run_id }}",
        poke_interval=10,
        timeout=300,
        mode="reschedule",
    )
    task_details = HealthOmicsGetRunTaskOperator(
        task_id="run_task_details",
        run_id="{{ params.run_id }}",
        run_task_id="{{ params.run_task_id }}",
    )
    log_to_storage = HealthOmicsFetchTaskLogOperator(
        task_id="task_log_to_object_storage",
        run_id="{{ params.run_id }}",
        run_task_id="{{ params.run_task_id }}",
        destination="{{ params.output_uri }}",
        page_size=100,
    )
    # s3://aws_default@bucket/...: the connection named in the URI writes the log.
    log_to_s3 = HealthOmicsFetchTaskLogOperator(
        task_id="task_log_to_s3",
        run_id="{{ params.run_id }}",
        run_task_id="{{ params.run_task_id }}",
        destination="{{ params.s3_uri }}{{ run_id | replace(':', '_') }}/",
        asset_alias="healthomics_task_logs",
        page_size=100,
    )
    log_to_xcom = HealthOmicsFetchTaskLogOperator(
        task_id="task_log_to_xcom",
        run_id="{{ params.run_id }}",
        run_task_id="{{ params.run_task_id }}",
        page_size=100,
    )
    run_outputs = HealthOmicsListRunOutputsOperator(
        task_id="run_outputs",
        run_id="{{ params.run_id }}",
    )
    wait_for_task >> [task_details, log_to_storage, log_to_s3, log_to_xcom]
    wait_for_task >> wait_for_run >> run_outputs
