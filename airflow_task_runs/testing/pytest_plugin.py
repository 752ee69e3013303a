"""pytest fixtures for DAG tests against the emulator (registered through the ``pytest11`` entry point).

``task_runs_emulator`` starts the emulator once per session; ``task_runs_connections``
points every default connection (``ncp_default``, ...) and boto3's default credential chain
(so ``s3://my-bucket/...`` without a connection) at it for one test. ``task_runs_airflow_home``
gives the session a throwaway Airflow home with its SQLite database created, ready for
``dag.test()``: add your DAG files with ``add_dags(...)`` and get them with ``get_dag(dag_id)``
(ini option ``task_runs_dags_folder`` points it at your own DAGs folder instead).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_task_runs.testing.airflow_home import AirflowHome
    from airflow_task_runs.testing.emulator import Emulator


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "task_runs_dags_folder",
        "DAGs folder of the task_runs_airflow_home fixture (default: an empty folder in the throwaway home)",
        default=None,
    )


@pytest.fixture(scope="session")
def task_runs_airflow_home(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowHome]:
    """A throwaway Airflow home and SQLite database, ready for ``dag.test()``."""
    from airflow_task_runs.testing.airflow_home import AirflowHome

    folder = pytestconfig.getini("task_runs_dags_folder")
    dags_folder = (pytestconfig.rootpath / folder).resolve() if folder else None
    with AirflowHome(tmp_path_factory.mktemp("airflow-home"), dags_folder) as home:
        yield home


@pytest.fixture(scope="session")
def task_runs_emulator() -> Iterator[Emulator]:
    from airflow_task_runs.testing.emulator import Emulator

    emulator = Emulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def task_runs_connections(task_runs_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    for name, value in task_runs_emulator.environment().items():
        monkeypatch.setenv(name, value)
    for cloud in task_runs_emulator.clouds.values():
        cloud.clear_faults()
    return task_runs_emulator
