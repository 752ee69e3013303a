"""The example DAGs in a real Airflow: api-server, scheduler, dag-processor and triggerer as
separate processes (LocalExecutor, SQLite), triggered through the REST API, deferrable
sensors running in the real triggerer, and a watch that survives the triggerer's SIGKILL.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from airflow_task_runs.testing.deployment import wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = sorted(p.stem for p in (ROOT / "example_dags").glob("example_*.py"))
DONE = ("success", "failed", "upstream_failed")

pytestmark = pytest.mark.deployment


def trigger_logs(deployment, dag_id: str, run_id: str, task_id: str) -> dict[str, str]:
    """{file name: text} of the logs a triggerer wrote for this task (one file per triggerer job)."""
    folder = deployment.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return {p.name: p.read_text() for p in sorted(folder.glob("attempt=1.log.trigger.*.log"))}


def wait_for_run(deployment, dag_id: str, run_id: str, timeout: float = 180) -> str:
    def finished() -> str | None:
        state = deployment.run_state(dag_id, run_id)
        return state if state in DONE else None

    try:
        return wait_for(f"DAG run {dag_id}/{run_id}", finished, timeout, interval=0.5)
    except TimeoutError as exc:
        states = deployment.task_states(dag_id, run_id)
        raise AssertionError(f"{exc}; tasks: {states}\n{deployment.logs('scheduler')}") from None


def test_every_example_dag_succeeds_with_its_sensors_deferred_in_the_triggerer(
    airflow_deployment, task_runs_emulator, airflow_db
):
    deployment = airflow_deployment
    deployment.wait_for_dags(EXAMPLE_DAGS)
    out = deployment.home / "out"
    writers = {dag_id for dag_id in EXAMPLE_DAGS if "output_uri" in example_dag(dag_id).params}
    runs = {
        dag_id: deployment.trigger(dag_id, {"output_uri": f"file://{out}/{dag_id}/"} if dag_id in writers else {})
        for dag_id in EXAMPLE_DAGS
    }
    for dag_id, run_id in runs.items():
        state = wait_for_run(deployment, dag_id, run_id)
        tasks = deployment.task_states(dag_id, run_id)
        assert state == "success", tasks
        assert tasks and set(tasks.values()) == {"success"}, tasks
        if dag_id in writers:
            assert list((out / dag_id).rglob("*.*")), f"{dag_id} wrote nothing under {out / dag_id}"

    # Every deferrable task ran in the triggerer: its trigger wrote the task's trigger log.
    for dag_id, run_id in runs.items():
        deferrable = deferrable_tasks(dag_id)
        assert deferrable, f"{dag_id} has no deferrable task"
        for task_id in deferrable:
            logs = trigger_logs(deployment, dag_id, run_id, task_id)
            assert any("Trigger fired event" in text for text in logs.values()), (dag_id, task_id, logs)


def example_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "example_dags" / f"{dag_id}.py")).get_dag(dag_id)


def deferrable_tasks(dag_id: str) -> list[str]:
    return [task.task_id for task in example_dag(dag_id).tasks if getattr(task, "deferrable", False)]


def test_a_watch_survives_the_triggerer_being_killed(airflow_deployment, task_runs_emulator):
    deployment = airflow_deployment
    deployment.wait_for_dags(["example_ncp_nclue"])
    ncp = task_runs_emulator.ncp
    run_id = ncp.add_run(lifecycle=[("in_progress", 10**6), ("completed", 0)], result=b"id\n1\n")
    out = deployment.home / "out-sigkill"

    def reads() -> int:  # status reads of the run: GET /task-runs/{run_id} or a list page the trigger shares
        return ncp.runs[run_id].lifecycle.polls

    dag_run = deployment.trigger("example_ncp_nclue", {"run_id": run_id, "output_uri": f"file://{out}/"})

    def deferred_and_polled() -> bool:
        states = deployment.task_states("example_ncp_nclue", dag_run)
        return states.get("wait_for_task_run") == "deferred" and reads() >= 2

    wait_for("the sensor to defer and its trigger to poll", deferred_and_polled, timeout=120)
    deployment.kill("triggerer")  # SIGKILL: no clean-up, as after an OOM kill
    polls_at_kill = reads()
    time.sleep(2)
    assert reads() <= polls_at_kill + 1, "something still polls after the triggerer died"
    assert deployment.task_states("example_ncp_nclue", dag_run)["wait_for_task_run"] == "deferred"

    deployment.start("triggerer")
    wait_for("a new triggerer to resume the watch", lambda: reads() > polls_at_kill + 1, 120)
    ncp.runs[run_id].lifecycle.finish()
    state = wait_for_run(deployment, "example_ncp_nclue", dag_run)
    assert state == "success", deployment.task_states("example_ncp_nclue", dag_run)
    logs = trigger_logs(deployment, "example_ncp_nclue", dag_run, "wait_for_task_run")
    assert len(logs) == 2, f"expected the killed triggerer's log and the new one's: {list(logs)}"
    assert "Trigger fired event" in logs[sorted(logs, key=_job_id)[-1]]
    assert (out / "result.csv").read_bytes() == b"id\n1\n"


def _job_id(name: str) -> int:
    return int(name.rsplit(".", 2)[-2])
