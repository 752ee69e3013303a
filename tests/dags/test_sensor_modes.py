"""The three sensor modes under Airflow's real task runner (dag.test), against the emulator."""

from __future__ import annotations

import pytest


@pytest.mark.dags
def test_three_modes_and_a_failure_under_dag_test(airflow_db, task_runs_connections):
    from airflow.dag_processing.dagbag import DagBag

    emu = task_runs_connections.ncp
    steps = [("registered", 1), ("in_progress", 1), ("completed", 0)]
    conf = {
        "poke_run": emu.add_run(lifecycle=steps),
        "reschedule_run": emu.add_run(lifecycle=steps),
        "deferrable_run": emu.add_run(lifecycle=steps),
        "failing_run": emu.add_run(lifecycle=[("in_progress", 1), ("failed", 0)], fail_message="bad feature rows"),
    }
    dag = DagBag().get_dag("ncp_sensor_modes")
    dagrun = dag.test(run_conf=conf)
    tis = {ti.task_id: ti for ti in dagrun.get_task_instances()}
    assert {k: tis[k].state for k in tis} == {
        "poke": "success",
        "reschedule": "success",
        "deferrable": "success",
        "failing": "failed",
    }
    for mode in ("poke", "reschedule", "deferrable"):
        run_id = conf[f"{mode}_run"]
        # every mode polled until the run completed: 3 status reads at least (a read by
        # GET /task-runs/{run_id}, or in a list page a deferred watch shares)
        assert emu.runs[run_id].lifecycle.polls >= 3, mode
        assert tis[mode].xcom_pull(task_ids=mode)["raw_status"] == "completed"
