"""A test DAG: the NCLUE sensor in each of its three modes, under Airflow's real task runner."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_task_runs.ncp.sensors import NclueTaskRunSensor

with DAG(
    dag_id="ncp_sensor_modes",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"poke_run": "", "reschedule_run": "", "deferrable_run": "", "failing_run": ""},
):
    NclueTaskRunSensor(task_id="poke", run_id="{{ params.poke_run }}", mode="poke", poke_interval=0.1, timeout=60)
    NclueTaskRunSensor(
        task_id="reschedule", run_id="{{ params.reschedule_run }}", mode="reschedule", poke_interval=1, timeout=60
    )
    NclueTaskRunSensor(
        task_id="deferrable", run_id="{{ params.deferrable_run }}", deferrable=True, poke_interval=0.1, timeout=60
    )
    NclueTaskRunSensor(
        task_id="failing", run_id="{{ params.failing_run }}", deferrable=True, poke_interval=0.1, timeout=60
    )
