"""HealthOmicsHook StartRun / CancelRun over real HTTP (SigV4 checked by the emulator)."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from airflow_task_runs.aws.hooks import HealthOmicsHook
from airflow_task_runs.aws.runs import start_run_request
from airflow_task_runs.core.errors import ApiError
from airflow_task_runs.testing.aws import DEMO_ROLE_ARN, DEMO_WORKFLOW_ID


@pytest.fixture
def emu(task_runs_connections):
    emu = task_runs_connections.aws
    emu.lose_start_replies = 0
    emu.reset_log()
    yield emu
    emu.lose_start_replies = 0


def _request(**overrides):
    fields = {
        "request_id": str(uuid.uuid4()),
        "role_arn": DEMO_ROLE_ARN,
        "output_uri": "s3://omics-outputs/start-tests/",
        "workflow_id": DEMO_WORKFLOW_ID,
    }
    fields.update(overrides)
    return start_run_request(**fields)


def _start_calls(emu):
    return emu.requests_to("/run", "POST")


def test_start_run_sends_every_field_signed(emu):
    request = _request(
        workflow_type="PRIVATE",
        parameters={"sample": "s3://in/sample.fq"},
        run_group_id="555",
        priority=10,
        storage_type="DYNAMIC",
        tags={"team": "genomics"},
        name="nightly",
        extra={"logLevel": "ALL"},
    )
    body = HealthOmicsHook().start_run(request)
    run_id = body["id"]
    assert emu.started[-1] == run_id
    sent = json.loads(_start_calls(emu)[-1].body)
    assert sent == {**request}
    run = HealthOmicsHook().get_run(run_id)
    assert (run.workflowId, run.runGroupId, run.priority, run.name) == (DEMO_WORKFLOW_ID, "555", 10, "nightly")
    assert run.parameters == {"sample": "s3://in/sample.fq"}


def test_output_uri_prefix_mode_reaches_the_service_and_comes_back(emu):
    request = _request(output_uri_prefix_mode="NONE_WITH_OVERWRITE")
    body = HealthOmicsHook().start_run(request)
    assert json.loads(_start_calls(emu)[-1].body)["outputUriPrefixMode"] == "NONE_WITH_OVERWRITE"
    assert body["outputUriPrefixMode"] == "NONE_WITH_OVERWRITE"
    run = HealthOmicsHook().get_run(body["id"])
    assert run.outputUriPrefixMode == "NONE_WITH_OVERWRITE"
    assert run.runOutputUri == "s3://omics-outputs/start-tests/"


def test_a_5xx_on_start_run_is_retried_with_the_same_request_id_and_starts_one_run(emu):
    emu.lose_start_replies = 2  # the run is created, the answer is lost twice
    before = len(emu.started)
    request = _request()
    body = HealthOmicsHook().start_run(request)
    assert len(emu.started) == before + 1 and emu.started[-1] == body["id"]
    calls = _start_calls(emu)
    assert len(calls) == 3
    assert {json.loads(c.body)["requestId"] for c in calls} == {request["requestId"]}


def test_a_rejected_start_run_surfaces_the_service_code_and_message(emu):
    with pytest.raises(ApiError, match=r"ResourceNotFoundException: StartRun .*workflow 4040404 was not found"):
        HealthOmicsHook().start_run(_request(workflow_id="4040404"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"role_arn": None}, "role_arn is missing"),
        ({"output_uri": ""}, "output_uri is missing"),
        ({"workflow_id": None}, "workflow_id is missing"),
        ({"role_arn": "OmicsRole"}, "role_arn is 'OmicsRole', not an ARN"),
        ({"output_uri": "/tmp/out"}, "must be an s3:// URI"),
        ({"workflow_id": "abc"}, "workflow_id is 'abc'; HealthOmics ids are 1-18 digits"),
        ({"priority": 100001}, "priority is 100001; it must be from 0 to 100000"),
        ({"storage_type": "FAST"}, "storage_type is 'FAST'; use one of STATIC, DYNAMIC"),
        ({"output_uri_prefix_mode": "NONE"}, "use one of SERVICE_DEFINED, NONE_WITH_OVERWRITE"),
        ({"parameters": "[1, 2]"}, "parameters must be a dict"),
        ({"extra": {"requestId": "x"}}, "start_run_kwargs repeats requestId"),
    ],
)
def test_bad_start_input_fails_before_any_call_naming_the_field(emu, overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        _request(**overrides)
    assert _start_calls(emu) == []


def test_cancel_run_cancels_a_running_run_and_leaves_an_ended_one(emu):
    hook = HealthOmicsHook()
    running = emu.add_run(lifecycle=[("RUNNING", 0)])
    done = emu.add_run(lifecycle=[("COMPLETED", 0)])
    assert hook.cancel_run(running) is True
    assert hook.cancel_run(done) is False
    assert running in emu.cancelled and done not in emu.cancelled
    statuses = [hook.get_run(running).status for _ in range(2)]
    assert statuses == ["STOPPING", "CANCELLED"]


def test_async_cancel_run(emu):
    running = emu.add_run(lifecycle=[("STARTING", 0)])

    async def cancel() -> bool:
        hook = HealthOmicsHook()
        try:
            return await hook.acancel_run(running)
        finally:
            await hook.aclose()

    assert asyncio.run(cancel()) is True
    assert emu.cancelled[-1] == running
