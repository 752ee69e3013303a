"""``airflow-task-runs``: --help explains the commands; ``emulator`` serves a real Airflow's needs;
``demo`` talks as runs progress, lists tasks in dependency order and cleans up after itself."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from airflow_task_runs import cli

ROOT = Path(__file__).resolve().parents[1]


def test_help_explains_every_command(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert re.search(r"demo\s+run every example DAG", text)
    assert re.search(r"emulator\s+serve every cloud's emulator", text)
    assert cli.main([]) == 2  # no command: the same help, and a usage error


def test_emulator_command_serves_until_stopped_and_writes_the_environment(tmp_path, monkeypatch):
    env_file = tmp_path / "emulator.env"
    args = cli.build_parser().parse_args(["emulator", "--port-base", "0", "--env-file", str(env_file)])
    stop = threading.Event()
    server = threading.Thread(target=cli.serve_emulator, args=(args, stop))
    server.start()
    try:
        from airflow_task_runs.testing.deployment import wait_for

        wait_for("the env file", env_file.exists, timeout=60)
        lines = env_file.read_text().splitlines()
        env = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines)
        assert {"AIRFLOW_CONN_NCP_DEFAULT", "AIRFLOW_CONN_OCI_DEFAULT", "AIRFLOW_CONN_ALIBABA_ROS_DEFAULT"} <= set(env)
        assert "AIRFLOW_CONN_AWS_DEFAULT" in env and env["AIRFLOW__CORE__TEST_CONNECTION"] == "Enabled"
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook

        from airflow_task_runs.alibaba.hooks import RosHook
        from airflow_task_runs.ncp.hooks import NclueHook
        from airflow_task_runs.oci.hooks import OciAiDataPlatformHook

        # aws_default's Test is the amazon provider's (STS GetCallerIdentity): moto answers it
        for hook in (NclueHook(), OciAiDataPlatformHook(), RosHook(), AwsGenericHook(aws_conn_id="aws_default")):
            ok, message = hook.test_connection()
            assert ok, message
        # seeded: the example DAG's default run is there, at a pace a real scheduler keeps up with
        reads = [NclueHook().get_task_run("demo-nclue-run").status for _ in range(11)]
        assert reads == ["registered"] + ["in_progress"] * 8 + ["completed"] * 2
        # a run the example DAGs create stays registered for 5 reads (a cancel reads, then deletes)
        created = NclueHook().create_task_run(
            {
                "name": "cli-pace",
                "task_id": "3179664c-0000-0000-0000-af6354344018",
                "feature_id": "28bd06bb-0000-0000-0000-9f2d6a9c3313",
                "result_bucket": "nclue-results",
                "result_file_path": "cli/",
            }
        )
        assert [NclueHook().get_task_run(created).status for _ in range(6)] == ["registered"] * 5 + ["in_progress"]
        assert json.loads(env["AIRFLOW_CONN_NCP_DEFAULT"])["conn_type"] == "ncp"
    finally:
        stop.set()
        server.join(timeout=30)
    assert not server.is_alive()


def test_emulator_command_on_a_busy_port_says_how_to_fix_it(capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = cli.build_parser().parse_args(["emulator", "--port-base", str(port - 4)])
        assert cli.serve_emulator(args, threading.Event()) == 1
    assert "pass --port-base N" in capsys.readouterr().err


def test_dependency_order_puts_sensors_before_the_tasks_that_wait_on_them():
    from airflow.sdk import DAG
    from airflow.sdk.bases.operator import BaseOperator

    with DAG("order") as dag:
        wait = BaseOperator(task_id="wait_z")
        fetch_a = BaseOperator(task_id="a_fetch")
        fetch_b = BaseOperator(task_id="b_fetch")
        wait >> [fetch_b, fetch_a]
    assert cli.dependency_order(dag) == ["wait_z", "a_fetch", "b_fetch"]


@pytest.mark.dags
def test_demo_talks_orders_tasks_counts_this_runs_files_and_removes_its_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    command = [sys.executable, "-m", "airflow_task_runs.cli", "demo", "--dags-folder", str(ROOT / "example_dags")]
    command += ["--output", str(tmp_path / "out"), "--dag", "example_ncp_nclue"]
    outputs = []
    for _ in range(2):  # a rerun must not count the first run's files
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        outputs.append(done.stdout)
    text = outputs[-1]
    # a line per state change, of the cloud run and of each task, as it happens
    assert re.search(r"ncp demo-nclue-run: registered -> in_progress", text), text
    assert re.search(r"ncp demo-nclue-run: in_progress -> completed", text), text
    assert re.search(r"wait_for_task_run: resumed", text), text
    # the final table in dependency order: the sensor before the fetches waiting on it
    table = re.findall(r"^  success    (\w+)$", text, flags=re.MULTILINE)
    assert table == ["wait_for_task_run", "result_to_object_storage", "result_to_s3", "result_to_xcom"], text
    # each run in its own folder, counted alone
    runs = sorted((tmp_path / "out" / "example_ncp_nclue").iterdir())
    assert len(runs) == 2 and all(len(list(r.iterdir())) == 1 for r in runs)
    assert f"example_ncp_nclue: 1 file(s) in {runs[-1]}" in text, text
    # and where the s3:// copy went, in the emulator's store
    assert re.search(r"^  s3://my-bucket/demo/ncp/\S+ \(\d+ bytes\)$", text, flags=re.MULTILINE), text
    # nothing left in the temporary directory
    assert list((tmp_path / "tmp").iterdir()) == []
    # and no warning of dag.test()'s unregistered assets (a real deployment has none)
    assert "AssetModel" not in text + done.stderr, done.stderr


def test_the_demo_tells_a_reschedule_wait_once_instead_of_airflows_warning_every_second(capsys):
    """dag.test() logs "No tasks to run" every second while a reschedule-mode sensor waits."""
    import logging

    narrator = cli.Narrator()
    logger = logging.getLogger("airflow.sdk.definitions.dag")
    kept: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = kept.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.addFilter(narrator.reschedule_waits)
    waiting = (
        "{<TaskInstance: example_aws_healthomics.wait_for_run manual__2026-12-02T23:44:36.616749+00:00 "
        "[up_for_reschedule] ti_id=01a23925-51a5-7df0-9b8e-e9cbc5201d90>, <TaskInstance: "
        "example_aws_healthomics.run_outputs manual__2026-12-02T23:44:36.616749+00:00 [None] ti_id=01a2>}"
    )
    try:
        for _ in range(3):  # as dag.test() logs it, once a second
            logger.warning("No tasks to run. unrunnable tasks: %s", waiting)
        logger.warning("something else")
    finally:
        logger.removeFilter(narrator.reschedule_waits)
        logger.removeHandler(handler)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("s  ", 1)[1] for line in lines] == ["wait_for_run: up for reschedule"]
    assert [r.getMessage() for r in kept] == ["something else"]  # Airflow's other warnings still show
