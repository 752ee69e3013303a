"""A sensor that fails before it reaches its cloud (a broken connection): for the log-noise tests."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_task_runs.ncp.operators import NclueFetchTaskRunResultOperator
from airflow_task_runs.oci.sensors import OciTaskRunSensor

with DAG(dag_id="early_failure", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    OciTaskRunSensor(
        task_id="wait_broken",
        oci_conn_id="oci_broken",
        ai_data_platform_id="ocid1.aidataplatform.oc1.iad.emulator",
        workspace_key="demo-workspace",
        task_run_key="never-polled",
        poke_interval=0.1,
        timeout=30,
        mode="poke",
    )
    NclueFetchTaskRunResultOperator(
        task_id="fetch_missing", run_id="no-such-run", destination="file:///tmp/atr-never-written/"
    )
