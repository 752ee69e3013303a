"""Every Python snippet in the README runs as written against the emulator.

A snippet that defines ``test_*`` functions is called with the plugin's ``task_runs_connections``
fixture; one that defines DAGs is saved in the DAGs folder (``dag.test()`` runs only DAGs found
there) and each DAG is run with ``dag.test()``: every task must succeed, and what the DAG writes
to ``s3://my-bucket/`` must appear there.
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, re.S)
#: snippets that need a fresh project (their own Airflow home): tests/test_testing_helpers.py runs them
#: with pytest in one; the rest run here
IN_PROCESS = [code for code in SNIPPETS if "task_runs_airflow_home" not in code]


def _line_of(code: str) -> int:
    return README[: README.index(code)].count("\n") + 1


def test_the_readme_has_snippets_and_each_is_dag_or_test():
    assert len(SNIPPETS) >= 5
    for code in SNIPPETS:
        assert "with DAG(" in code or "def test_" in code, f"README line {_line_of(code)}: neither a DAG nor a test"


@pytest.fixture
def demo_runs(task_runs_connections, monkeypatch):
    for cloud in task_runs_connections.clouds.values():
        cloud.seed_demo()
    monkeypatch.setenv("AIRFLOW__TASK_RUNS__POLL_INTERVAL", "0.2")  # the README's sensors use the default
    return task_runs_connections


def _bucket_keys(emulator) -> set[str]:
    client = emulator.s3.client()
    return {o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket="my-bucket")
            for o in page.get("Contents", [])}  # fmt: skip


@pytest.mark.dags
@pytest.mark.parametrize("code", IN_PROCESS, ids=[f"README-line-{_line_of(c)}" for c in IN_PROCESS])
def test_readme_snippet_runs_as_written(code, airflow_db, demo_runs, tmp_path):
    if "def test_" in code:  # a pytest test (it may build a DAG inside): call it with its fixtures
        namespace: dict = {}
        exec(compile(code, f"README.md:{_line_of(code)}", "exec"), namespace)
        tests = [fn for name, fn in namespace.items() if name.startswith("test_") and callable(fn)]
        assert tests
        fixtures = {"task_runs_connections": demo_runs, "tmp_path": tmp_path}
        for fn in tests:
            fn(**{name: fixtures[name] for name in inspect.signature(fn).parameters})
        return
    from airflow.dag_processing.dagbag import DagBag

    dag_file = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"readme_line_{_line_of(code)}.py"
    dag_file.write_text(code)
    try:
        bag = DagBag(dag_folder=str(dag_file))
        assert not bag.import_errors, bag.import_errors
        assert bag.dags
        for dag in bag.dags.values():
            before = _bucket_keys(demo_runs)
            dagrun = dag.test()
            states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
            assert dagrun.state == "success" and set(states.values()) == {"success"}, states
            if "my-bucket/" in code:  # a destination in the emulator's bucket
                assert _bucket_keys(demo_runs) - before, f"{dag.dag_id} wrote nothing to s3://my-bucket/"
    finally:
        dag_file.unlink()
