"""The helpers a user tests their DAGs with: they accept runs already finished, render templates
with params like Airflow, stay quiet, and the plugin gives a ready Airflow home for dag.test()."""

from __future__ import annotations

import os
import textwrap

import pytest

from airflow_task_runs.ncp.sensors import NclueTaskRunSensor
from airflow_task_runs.testing.sensors import run_deferred, run_sensor


def test_run_deferred_returns_the_result_when_the_run_is_done_at_the_first_poke(task_runs_connections):
    run_id = task_runs_connections.ncp.add_run(lifecycle=[("completed", 0)])
    sensor = NclueTaskRunSensor(task_id="wait", run_id=run_id, deferrable=True, poke_interval=0.1)
    assert run_deferred(sensor)["raw_status"] == "completed"


def test_templates_render_with_the_dags_params_and_overrides_like_airflow(task_runs_connections):
    from airflow.sdk import DAG, Param

    ncp = task_runs_connections.ncp
    default_run = ncp.add_run(lifecycle=[("in_progress", 1), ("completed", 0)])
    other_run = ncp.add_run(lifecycle=[("completed", 0)])
    with DAG("readme_dag", schedule=None, params={"run_id": Param(default_run, type="string")}):
        sensor = NclueTaskRunSensor(task_id="wait", run_id="{{ params.run_id }}", deferrable=True, poke_interval=0.1)
        other = NclueTaskRunSensor(task_id="other", run_id="{{ params.run_id }}", poke_interval=0.1)
    assert run_deferred(sensor)["details"]["run_id"] == default_run
    assert run_sensor(other, params={"run_id": other_run})["details"]["run_id"] == other_run
    assert not ncp.requests_to("/api/v1/task-runs/%7B"), "the literal template was polled"


def test_helpers_are_quiet(task_runs_connections, captured_logs):
    run_id = task_runs_connections.ncp.add_run(lifecycle=[("in_progress", 1), ("completed", 0)])
    run_deferred(NclueTaskRunSensor(task_id="wait", run_id=run_id, deferrable=True, poke_interval=0.1))
    run_sensor(NclueTaskRunSensor(task_id="poke", run_id=run_id, poke_interval=0.1))
    assert "outside of the Task Runner" not in captured_logs()


USER_TEST = '''
    from pathlib import Path

    DAG_FILE = Path(__file__).parent / "my_dag.py"


    def test_my_dag(task_runs_airflow_home, task_runs_connections, tmp_path):
        run_id = task_runs_connections.ncp.add_run(lifecycle=[("in_progress", 1), ("completed", 0)], result=b"a\\n")
        task_runs_airflow_home.add_dags(DAG_FILE)
        dag = task_runs_airflow_home.get_dag("my_dag")
        dagrun = dag.test(run_conf={"run_id": run_id, "out": f"file://{tmp_path}/"})
        states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
        assert dagrun.state == "success", states
        assert (tmp_path / "result.csv").read_bytes() == b"a\\n"
'''

USER_DAG = """
    from datetime import datetime

    from airflow.sdk import DAG, Param

    from airflow_task_runs.ncp.operators import NclueFetchTaskRunResultOperator
    from airflow_task_runs.ncp.sensors import NclueTaskRunSensor

    with DAG("my_dag", schedule=None, start_date=datetime(2026, 1, 1),
             params={"run_id": Param("x", type="string"), "out": Param("file:///tmp/x/", type="string")}):
        wait = NclueTaskRunSensor(task_id="wait", run_id="{{ params.run_id }}", poke_interval=0.1, deferrable=True)
        fetch = NclueFetchTaskRunResultOperator(
            task_id="fetch", run_id="{{ params.run_id }}", destination="{{ params.out }}"
        )
        wait >> fetch
"""


@pytest.mark.dags
def test_a_newcomers_dag_test_runs_with_the_plugins_airflow_home(pytester, monkeypatch):
    """A fresh project with no Airflow set-up: the plugin's fixtures are all it needs."""
    for name in list(os.environ):
        if name.startswith("AIRFLOW"):
            monkeypatch.delenv(name)
    pytester.makepyfile(test_user=textwrap.dedent(USER_TEST), my_dag=textwrap.dedent(USER_DAG))
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=1)
