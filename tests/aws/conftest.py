"""The HealthOmics emulator, its request log emptied before a test and its faults cleared after."""

from __future__ import annotations

import pytest


@pytest.fixture
def emu(task_runs_connections):
    task_runs_connections.aws.reset_log()
    yield task_runs_connections.aws
    task_runs_connections.aws.clear_faults()
