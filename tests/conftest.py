"""Test session set-up: a throwaway AIRFLOW_HOME and SQLite DB, DAGs folder with the example DAGs.

Airflow reads its configuration when first imported, so the environment is set here, at
import time of the root conftest, before any test module imports airflow.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_HOME = Path(tempfile.mkdtemp(prefix="atr-airflow-home-"))
if not os.environ.get("ATR_KEEP_HOME"):  # ATR_KEEP_HOME=1 keeps it, to read a failed run's logs
    atexit.register(shutil.rmtree, _HOME, ignore_errors=True)  # no throwaway homes left in /tmp
DAGS_FOLDER = _HOME / "dags"
DAGS_FOLDER.mkdir()
for source in (ROOT / "example_dags", ROOT / "tests" / "dag_files"):
    if source.is_dir():
        for dag_file in source.glob("*.py"):
            shutil.copy(dag_file, DAGS_FOLDER / dag_file.name)

os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
    }
)

import pytest  # noqa: E402

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def airflow_db():
    """An initialised metadata DB (needed by dag.test())."""
    from airflow.utils import db

    db.resetdb(skip_init=False)
    return _HOME


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


@pytest.fixture
def captured_logs(caplog, capsys):
    """Everything logged so far: stdlib records and Airflow's structlog output (printed to the console)."""
    caplog.set_level("DEBUG")
    seen: list[str] = []

    def text() -> str:
        out, err = capsys.readouterr()
        seen.extend([out, err])
        return caplog.text + "".join(seen)

    return text


#: tests that start real Airflow processes run last, together, sharing one deployment
REAL_AIRFLOW_DIRS = ("deployment", "ui")


def pytest_collection_modifyitems(config, items):
    def is_real(item) -> bool:
        return item.path.parent.name in REAL_AIRFLOW_DIRS and item.path.parent.parent == ROOT / "tests"

    items.sort(key=is_real)  # stable: everything else keeps its order


@pytest.fixture(scope="session")
def airflow_deployment(task_runs_emulator):
    """api-server, scheduler, dag-processor and triggerer, each its own process, on the emulator."""
    import contextlib

    from airflow_task_runs.testing.deployment import AirflowDeployment

    keep = os.environ.get("ATR_KEEP_HOME")  # keep the logs of a failed run to read them
    place = contextlib.nullcontext(tempfile.mkdtemp(prefix="atr-deployment-")) if keep else None
    restore = task_runs_emulator.pace_for_real_airflow()  # as `airflow-task-runs emulator` serves it
    try:
        for cloud in task_runs_emulator.clouds.values():
            cloud.clear_faults()  # a fault another test left unconsumed must not hit the deployment
            cloud.seed_demo()
        with place or tempfile.TemporaryDirectory(prefix="atr-deployment-") as home:
            dag_files = sorted((ROOT / "example_dags").glob("example_*.py"))
            with AirflowDeployment(Path(home), dag_files, task_runs_emulator.environment()) as deployment:
                yield deployment
    finally:
        restore()  # later tests get the emulator as it ships
