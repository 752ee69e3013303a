"""NAVER Cloud NCLUE: wait for a task run, then collect its result file.

Run it against the bundled emulator with ``make demo``; against NCP, create an ``ncp``
connection (Access Key ID, Secret Key) and trigger with ``{"run_id": "<your run id>"}``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_task_runs.ncp.operators import NclueFetchTaskRunResultOperator
from airflow_task_runs.ncp.sensors import NclueTaskRunSensor

with DAG(
    dag_id="example_ncp_nclue",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "ncp", "airflow-task-runs"],
    params={
        "run_id": Param("demo-nclue-run", type="string", description="NCLUE task run id"),
        "output_uri": Param(
            "file:///tmp/airflow-task-runs-demo/ncp/",
            type="string",
            description="Folder (ObjectStoragePath URI) that receives the result file",
        ),
        "s3_uri": Param(
            "s3://my-bucket/demo/ncp/",
            type="string",
            description="s3:// folder for a copy; credentials: boto3's default chain (AWS_* variables)",
        ),
    },
):
    wait_for_run = NclueTaskRunSensor(
        task_id="wait_for_task_run",
        run_id="{{ params.run_id }}",
        poke_interval=1,
        timeout=300,
        deferrable=True,
    )
    result_to_storage = NclueFetchTaskRunResultOperator(
        task_id="result_to_object_storage",
        run_id="{{ params.run_id }}",
        destination="{{ params.output_uri }}",
    )
    # s3:// with no connection named: boto3's default chain (make demo points it at the emulator's S3).
    # Each written file is an Asset event on the alias "nclue_results".
    result_to_s3 = NclueFetchTaskRunResultOperator(
        task_id="result_to_s3",
        run_id="{{ params.run_id }}",
        destination="{{ params.s3_uri }}{{ run_id | replace(':', '_') }}/",
        asset_alias="nclue_results",
    )
    result_to_xcom = NclueFetchTaskRunResultOperator(
        task_id="result_to_xcom",
        run_id="{{ params.run_id }}",
    )
    wait_for_run >> [result_to_storage, result_to_s3, result_to_xcom]
