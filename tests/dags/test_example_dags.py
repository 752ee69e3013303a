"""Every example DAG runs end to end with dag.test() against the emulator and succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLE_DAGS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "example_dags").glob("example_*.py"))


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag()
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture(scope="module")
def seeded(task_runs_emulator):
    for cloud in task_runs_emulator.clouds.values():
        cloud.seed_demo()
    return task_runs_emulator


@pytest.mark.dags
@pytest.mark.parametrize("dag_file", EXAMPLE_DAGS)
def test_example_dag_runs_to_success(dag_file, dagbag, seeded, task_runs_connections, tmp_path):
    dag = dagbag.get_dag(dag_file)
    assert dag is not None, f"{dag_file} defines no DAG with dag_id {dag_file}"
    conf = {"output_uri": f"file://{tmp_path}/out/"} if "output_uri" in dag.params else None
    dagrun = dag.test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
    assert dagrun.state == "success", states
    assert states and all(state == "success" for state in states.values()), states
    if conf:
        written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
        assert written, "the DAG wrote nothing to its output folder"
        assert not [p for p in written if p.name.endswith(".partial")], written
