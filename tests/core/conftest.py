"""Fixtures shared by the core tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def ncp(task_runs_connections):
    """The NCLUE emulator (its request log emptied) and a run that stays in progress; faults cleared after."""
    emu = task_runs_connections.ncp
    emu.reset_log()
    run_id = emu.add_run(lifecycle=[("in_progress", 0)])
    yield emu, run_id
    emu.clear_faults()
