"""The helpers a user tests their DAGs with: they accept runs already finished, render templates
with params like Airflow, stay quiet, and the plugin gives a ready Airflow home for dag.test()."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

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


ROOT = Path(__file__).resolve().parents[1]


def readme_testing_snippets() -> list[str]:
    """The Python blocks of the README's "Testing your own DAGs" section, as a user copies them."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Testing your own DAGs against the emulator", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


@pytest.mark.dags
def test_the_readme_testing_snippets_run_in_a_fresh_project(pytester, monkeypatch):
    """A fresh project with no Airflow set-up: the README's snippets and the plugin are all it needs."""
    snippets = readme_testing_snippets()
    assert len(snippets) == 2
    for name in list(os.environ):
        if name.startswith("AIRFLOW"):
            monkeypatch.delenv(name)
    shutil.copytree(ROOT / "example_dags", pytester.path / "example_dags")
    pytester.makepyfile(**{f"test_readme_{i}": snippet for i, snippet in enumerate(snippets)})
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=2)


def test_the_real_airflow_pace_slows_the_demo_and_its_restore_puts_everything_back():
    """The deployment fixture and `airflow-task-runs emulator` pace the demo for a real scheduler;
    the tests after the deployment get the emulator as it ships."""
    from airflow_task_runs.testing import Emulator
    from airflow_task_runs.testing.server import EmulatorServer

    emu = Emulator()  # not started: the pace is settings, read when runs are seeded or created
    shipped = (list(emu.ncp.create_lifecycle), list(emu.aws.start_lifecycle))
    emu.ncp.demo_running_polls = 3  # a value a test set stays that value after the restore
    restore = emu.pace_for_real_airflow()
    assert {cloud.demo_running_polls for cloud in emu.clouds.values()} == {8}
    assert emu.ncp.create_lifecycle[0] == ("registered", 5)
    assert ("RUNNING", 8) in emu.aws.start_lifecycle
    restore()
    assert (emu.ncp.create_lifecycle, emu.aws.start_lifecycle) == shipped
    assert emu.ncp.demo_running_polls == 3
    assert all("demo_running_polls" not in vars(c) for name, c in emu.clouds.items() if name != "ncp")
    assert emu.oci.demo_running_polls == EmulatorServer.demo_running_polls
