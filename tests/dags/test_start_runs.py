"""The start operators under Airflow's real task runner (dag.test): real task_state_store, real retries."""

from __future__ import annotations

import json

import pytest


def _run(dag_id: str, **conf):
    from airflow.dag_processing.dagbag import DagBag

    dagrun = DagBag().get_dag(dag_id).test(run_conf=conf or None)
    (ti,) = dagrun.get_task_instances()
    return ti


@pytest.mark.dags
@pytest.mark.parametrize("mode", ["poke", "deferrable", "reschedule"])
def test_healthomics_start_wait_outputs(airflow_db, task_runs_connections, mode):
    emu = task_runs_connections.aws
    before, lifecycle = len(emu.started), emu.start_lifecycle
    if mode == "reschedule":  # each reschedule waits poke_interval (1 s at least): keep the run short
        emu.start_lifecycle = [("RUNNING", 1), ("COMPLETED", 0)]
    try:
        ti = _run(f"start_healthomics_{mode}")
    finally:
        emu.start_lifecycle = lifecycle
    assert ti.state == "success"
    (run_id,) = emu.started[before:]
    result = ti.xcom_pull(task_ids="start")
    assert result["runId"] == run_id
    assert result["status"]["raw_status"] == "COMPLETED"
    assert result["outputUri"] == f"s3://omics-outputs/dag-tests/{run_id}/"
    assert sorted(result["uris"]) == sorted(f"s3://omics-outputs/dag-tests/{run_id}/{k}" for k in emu.start_outputs)


@pytest.mark.dags
@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_healthomics_retry_after_a_try_died_mid_wait_reconnects(airflow_db, task_runs_connections, mode):
    emu = task_runs_connections.aws
    before = len(emu.started)
    denied = {"x-amzn-ErrorType": "AccessDeniedException"}
    emu.inject("status", status=403, headers=denied, body=b'{"message": "injected"}', match="/run/")
    ti = _run(f"start_healthomics_{mode}")
    assert (ti.state, ti.try_number) == ("success", 2)
    (run_id,) = emu.started[before:]  # one run started, not two
    assert ti.xcom_pull(task_ids="start")["runId"] == run_id


@pytest.mark.dags
def test_healthomics_start_whose_answers_were_all_lost_is_found_by_the_next_try(airflow_db, task_runs_connections):
    from airflow_task_runs.aws.hooks import HealthOmicsHook

    emu = task_runs_connections.aws
    attempts = HealthOmicsHook().client.meta.config.retries["total_max_attempts"]
    emu.lose_start_replies = attempts  # every attempt of the first try creates-or-finds, then its 500 answer is lost
    before, calls_before = len(emu.started), len(emu.requests_to("/run", "POST"))
    try:
        ti = _run("start_healthomics_poke")
    finally:
        emu.lose_start_replies = 0
    assert (ti.state, ti.try_number) == ("success", 2)
    (run_id,) = emu.started[before:]
    calls = emu.requests_to("/run", "POST")[calls_before:]
    assert len(calls) == attempts + 1
    assert len({json.loads(c.body)["requestId"] for c in calls}) == 1  # the second try reused the token
    assert ti.xcom_pull(task_ids="start")["runId"] == run_id


@pytest.mark.dags
def test_healthomics_outputs_directly_under_output_uri(airflow_db, task_runs_connections):
    emu = task_runs_connections.aws
    output_uri = "s3://omics-outputs/flat/"
    ti = _run("start_healthomics_poke", output_uri=output_uri, prefix_mode="NONE_WITH_OVERWRITE")
    result = ti.xcom_pull(task_ids="start")
    assert result["outputUri"] == output_uri
    assert sorted(result["uris"]) == sorted(f"{output_uri}{k}" for k in emu.start_outputs)


@pytest.mark.dags
@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_nclue_create_wait_fetch(airflow_db, task_runs_connections, mode):
    emu = task_runs_connections.ncp
    before = len(emu.created)
    ti = _run(f"create_nclue_{mode}")
    assert ti.state == "success"
    (run_id,) = emu.created[before:]
    result = ti.xcom_pull(task_ids="create")
    assert result["run_id"] == run_id
    assert result["status"]["raw_status"] == "completed"
    assert result["result"] == emu.create_result.decode()
    assert emu.runs[run_id].fields["run_name"].startswith(f"create_nclue_{mode}.create-")


@pytest.mark.dags
def test_nclue_create_that_may_have_happened_is_looked_up_not_repeated(airflow_db, task_runs_connections):
    emu = task_runs_connections.ncp
    before = len(emu.created)
    emu.lose_create_replies, emu.refuse_lists = 1, 1  # the run is made, its reply lost, the first look-up fails
    try:
        ti = _run("create_nclue_poke")
    finally:
        emu.lose_create_replies = emu.refuse_lists = 0
    assert (ti.state, ti.try_number) == ("success", 2)
    (run_id,) = emu.created[before:]  # the second try found it by name instead of creating another
    assert ti.xcom_pull(task_ids="create")["run_id"] == run_id


@pytest.mark.dags
def test_sigterm_to_the_task_process_cancels_exactly_the_run_it_started(airflow_db, task_runs_connections, tmp_path):
    """Airflow's task runner turns SIGTERM (mark failed, clear, execution_timeout) into on_kill."""
    import os
    import signal
    import subprocess
    import sys
    import time

    emu = task_runs_connections.aws
    lifecycle, emu.start_lifecycle = emu.start_lifecycle, [("RUNNING", 0)]
    watched = emu.add_run(lifecycle=[("RUNNING", 0)])  # another run going on meanwhile
    before, cancelled_before = len(emu.started), list(emu.cancelled)
    dag_file = os.path.join(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], "start_runs.py")
    script = (
        "from airflow.dag_processing.dagbag import DagBag; "
        f"DagBag(dag_folder={dag_file!r}).get_dag('start_healthomics_poke').test()"
    )
    log = tmp_path / "task.log"
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ), stdout=out, stderr=out)
            deadline = time.monotonic() + 60
            while not (emu.started[before:] and len(emu.requests_to(f"/run/{emu.started[-1]}", "GET")) >= 2):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    finally:
        emu.start_lifecycle = lifecycle
    (run_id,) = emu.started[before:]
    assert emu.cancelled[len(cancelled_before) :] == [run_id], log.read_text()[-3000:]
    assert watched not in emu.cancelled
