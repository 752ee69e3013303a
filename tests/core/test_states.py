from __future__ import annotations

import logging

from airflow_task_runs.core.states import RunState, RunStatus, StatusTable

TABLE = StatusTable("Cloud", {RunState.SUCCEEDED: ("DONE",), RunState.FAILED: ("BROKEN",)})


def test_terminal_states():
    assert {s for s in RunState if s.is_terminal} == {
        RunState.SUCCEEDED,
        RunState.FAILED,
        RunState.CANCELLED,
        RunState.SKIPPED,
    }


def test_unknown_status_is_not_terminal_and_warns(caplog):
    with caplog.at_level(logging.WARNING):
        status = TABLE.status("BRAND_NEW_STATE")
    assert status.state is RunState.PENDING
    assert status.raw_status == "BRAND_NEW_STATE"
    assert "BRAND_NEW_STATE" in caplog.text


def test_round_trip_through_primitives():
    status = TABLE.status("BROKEN", message="disk full", request_id="rid-1", details={"n": 1})
    assert RunStatus.from_dict(status.to_dict()) == status
    assert status.to_dict()["state"] == "FAILED"
