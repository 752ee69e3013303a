"""A task that fails early says so once, without unrelated noise."""

from __future__ import annotations

import json

import pytest


@pytest.mark.dags
def test_tasks_failing_early_log_their_error_once_and_no_missing_link_xcom(
    airflow_db, task_runs_connections, monkeypatch, captured_logs
):
    from airflow.dag_processing.dagbag import DagBag

    conn = task_runs_connections.oci.airflow_connection()
    conn["extra"] = {**conn["extra"], "fingerprint": "not-a-fingerprint"}
    monkeypatch.setenv("AIRFLOW_CONN_OCI_BROKEN", json.dumps(conn))
    dag = DagBag().get_dag("early_failure")
    dagrun = dag.test()
    states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
    assert states == {"wait_broken": "failed", "fetch_missing": "failed"}
    logs = captured_logs()
    assert "fingerprint (extra.fingerprint) is not 16 colon-separated hex bytes" in logs
    assert "task run no-such-run not found" in logs
    assert "XCom not found" not in logs
    # each failure is told once: one traceback per failed task, no chained re-telling
    assert logs.count("Traceback (most recent call last)") == 2, logs
    assert "During handling of the above exception" not in logs
    assert "The above exception was the direct cause" not in logs
    assert "Could not remove partial object" not in logs
