"""pytest fixtures for DAG tests against the emulator (registered through the ``pytest11`` entry point).

``task_runs_emulator`` starts the emulator once per session; ``task_runs_connections``
points every default connection (``ncp_default``, ...) and boto3's default credential chain
(so ``s3://my-bucket/...`` without a connection) at it for one test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_task_runs.testing.emulator import Emulator


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
