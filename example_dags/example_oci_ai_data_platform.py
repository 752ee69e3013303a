"""Oracle OCI AI Data Platform: wait for a task run, fetch its output to Object Storage, then
wait for an MLflow run and push its metrics.

Run it against the bundled emulator with ``make demo``; against OCI, create an ``oci``
connection (user OCID, API private key, tenancy, fingerprint, region) and trigger with
your own ``ai_data_platform_id`` / ``workspace_key`` / ``task_run_key`` / ``mlflow_run_id``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_task_runs.oci.operators import OciFetchTaskRunOutputOperator, OciGetExperimentRunOperator
from airflow_task_runs.oci.sensors import OciMlflowRunSensor, OciTaskRunSensor

with DAG(
    dag_id="example_oci_ai_data_platform",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "oci", "airflow-task-runs"],
    params={
        "ai_data_platform_id": Param(
            "ocid1.aidataplatform.oc1.iad.emulator", type="string", description="AI Data Platform OCID"
        ),
        "workspace_key": Param("demo-workspace", type="string", description="Workspace key"),
        "task_run_key": Param("demo-task-run", type="string", description="Task run key"),
        "mlflow_run_id": Param("demo-mlflow-run", type="string", description="MLflow experiment run id"),
        "output_uri": Param(
            "file:///tmp/airflow-task-runs-demo/oci/",
            type="string",
            description="Folder (ObjectStoragePath URI) that receives the task run's output objects",
        ),
        "s3_uri": Param(
            "s3://my-bucket/demo/oci/",
            type="string",
            description="s3:// folder for a copy; credentials: the aws_default connection (destination_conn_id)",
        ),
    },
):
    wait_for_task_run = OciTaskRunSensor(
        task_id="wait_for_task_run",
        ai_data_platform_id="{{ params.ai_data_platform_id }}",
        workspace_key="{{ params.workspace_key }}",
        task_run_key="{{ params.task_run_key }}",
        poke_interval=1,
        timeout=300,
        deferrable=True,
    )
    output_to_storage = OciFetchTaskRunOutputOperator(
        task_id="output_to_object_storage",
        ai_data_platform_id="{{ params.ai_data_platform_id }}",
        workspace_key="{{ params.workspace_key }}",
        task_run_key="{{ params.task_run_key }}",
        destination="{{ params.output_uri }}{{ run_id | replace(':', '_') }}/",
    )
    # The same output, all items or none, to s3:// with the amazon provider's aws_default connection.
    output_to_s3 = OciFetchTaskRunOutputOperator(
        task_id="output_to_s3",
        ai_data_platform_id="{{ params.ai_data_platform_id }}",
        workspace_key="{{ params.workspace_key }}",
        task_run_key="{{ params.task_run_key }}",
        destination="{{ params.s3_uri }}{{ run_id | replace(':', '_') }}/",
        destination_conn_id="aws_default",
        asset_alias="oci_task_run_outputs",
    )
    wait_for_mlflow_run = OciMlflowRunSensor(
        task_id="wait_for_mlflow_run",
        ai_data_platform_id="{{ params.ai_data_platform_id }}",
        workspace_key="{{ params.workspace_key }}",
        run_id="{{ params.mlflow_run_id }}",
        poke_interval=1,
        timeout=300,
        mode="poke",
    )
    mlflow_metrics = OciGetExperimentRunOperator(
        task_id="mlflow_run_metrics",
        ai_data_platform_id="{{ params.ai_data_platform_id }}",
        workspace_key="{{ params.workspace_key }}",
        run_id="{{ params.mlflow_run_id }}",
    )
    wait_for_task_run >> [output_to_storage, output_to_s3]
    wait_for_mlflow_run >> mlflow_metrics
