"""The triggerer's HealthOmics client (aws.omics_rest) against boto3 and the emulator.

The async calls no longer go through aiobotocore: these tests hold them to what the boto3 path
(the worker's, unchanged) returns for the same run, byte for byte, and to the errors, retries,
bounds and endpoints users had.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from airflow_task_runs.aws.hooks import HealthOmicsHook
from airflow_task_runs.core.errors import ApiError, MalformedResponseError
from airflow_task_runs.testing.aws import throttling_fault
from airflow_task_runs.testing.sensors import defer, run_trigger, task_context


def _async(call, **hook_kwargs):
    """``call(hook)`` on a fresh hook in a fresh event loop, the hook closed after."""

    async def scenario():
        hook = HealthOmicsHook(**hook_kwargs)
        try:
            return await call(hook)
        finally:
            await hook.aclose()

    return asyncio.run(scenario())


def _dumped(status) -> str:
    """A RunStatus as the trigger's event carries it, as JSON text (key order included)."""
    return json.dumps(status.to_dict())


# -- the same answers as boto3 ----------------------------------------------------------------
RUN_STATES = [
    pytest.param([("COMPLETED", 0)], {}, id="completed"),
    pytest.param([("FAILED", 0)], {"failure_reason": "OUT_OF_DISK", "status_message": "scratch full"}, id="failed"),
    pytest.param([("RUNNING", 0)], {}, id="running"),
    pytest.param([("CANCELLED", 0)], {}, id="cancelled"),
]


@pytest.mark.parametrize(("lifecycle", "fields"), RUN_STATES)
def test_run_status_is_boto3s_byte_for_byte(emu, lifecycle, fields):
    run_id = emu.add_run(lifecycle=lifecycle, **fields)
    sync = HealthOmicsHook().get_run_status(run_id)
    new = _async(lambda hook: hook.aget_run_status(run_id))
    assert _dumped(new).replace(new.request_id, "") == _dumped(sync).replace(sync.request_id, "")
    assert new.request_id and new.request_id != sync.request_id  # each answer's own
    assert new.details["creationTime"].endswith("Z") and "outputUriPrefixMode" in new.details


@pytest.mark.parametrize(("lifecycle", "fields"), RUN_STATES)
def test_task_status_is_boto3s_byte_for_byte(emu, lifecycle, fields):
    run_id = emu.add_run(lifecycle=[("FAILED", 0)], failure_reason="X", status_message="a task failed")
    task_id = emu.add_task(run_id, lifecycle=lifecycle, **fields)
    sync = HealthOmicsHook().get_task_status(run_id, task_id)
    new = _async(lambda hook: hook.aget_task_status(run_id, task_id))
    assert _dumped(new).replace(new.request_id, "") == _dumped(sync).replace(sync.request_id, "")
    if fields:
        assert new.message == "OUT_OF_DISK: scratch full"


def test_the_deferred_sensors_terminal_event_is_what_poke_mode_returns(emu):
    from airflow_task_runs.aws.sensors import HealthOmicsRunSensor

    run_id = emu.add_run(lifecycle=[("RUNNING", 1), ("FAILED", 0)], failure_reason="OOM", status_message="killed")
    sensor = HealthOmicsRunSensor(task_id="wait", run_id=run_id, deferrable=True, poke_interval=0.05, timeout=60)
    _, trigger = defer(sensor, task_context())
    event = run_trigger(trigger)
    alone = HealthOmicsHook().get_run_status(run_id).to_dict()
    assert event["status"]["details"] == alone["details"]
    assert json.dumps(event["status"]["details"]) == json.dumps(alone["details"])
    assert event["status"]["message"] == alone["message"] == "OOM: killed"


def test_list_run_tasks_items_are_boto3s(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    for i in range(130):
        emu.add_task(run_id, lifecycle=[("COMPLETED" if i % 2 else "RUNNING", 0)])
    sync = HealthOmicsHook().list_run_tasks(run_id)
    emu.reset_log()
    new = _async(lambda hook: hook.alist_run_tasks(run_id))
    assert json.dumps([t.model_dump(mode="json") for t in new]) == json.dumps([t.model_dump(mode="json") for t in sync])
    assert len(new) == 130 and len(emu.requests_to(f"/run/{run_id}/task")) == 2  # 100 + 30
    completed = _async(lambda hook: hook.alist_run_tasks(run_id, status="COMPLETED"))
    assert len(completed) == 65 and {t.status for t in completed} == {"COMPLETED"}


def test_list_runs_items_are_boto3s(emu):
    from airflow_task_runs.aws.models import RunListItem

    mine = {emu.add_run(lifecycle=[("STARTING", 0)]) for _ in range(3)}
    client = HealthOmicsHook().client
    sync = [
        RunListItem.model_validate(item)
        for page in client.get_paginator("list_runs").paginate(status="STARTING")
        for item in page["items"]
        if item["id"] in mine
    ]
    new = [item for item in _async(lambda hook: hook.alist_runs("STARTING")) if item.id in mine]
    assert len(new) == 3
    assert json.dumps([r.model_dump(mode="json") for r in new]) == json.dumps([r.model_dump(mode="json") for r in sync])


BODIES = {
    "GetRun": {
        "id": "1",
        "status": "COMPLETED",
        "creationTime": "2026-11-23T00:00:00.123Z",
        "startTime": 1764000000,
        "stopTime": "2026-11-23T10:00:00+02:00",
        "priority": "7",
        "storageCapacity": 1200.0,
        "failureReason": None,
        "parameters": {"nested": [1, {"b": None}], "t": "2026-01-01T00:00:00Z"},
        "logLocation": {"runLogStream": "arn:aws:logs:x", "notInTheModel": 1},
        "tags": {"b": "2", "a": "1"},
        "aFieldNewerThanBotocore": "dropped, as botocore drops it",
        "name": "run",
        "arn": "arn:aws:omics:us-east-1:1:run/1",
    },
    "GetRunTask": {
        "taskId": "2",
        "status": "FAILED",
        "cacheHit": "true",
        "cpus": 2,
        "memory": "4",
        "creationTime": "2026-11-23T00:00:00.123456789Z",
        "startTime": "1764000000.5",
        "imageDetails": {"image": "x", "imageDigest": "sha256:0", "sourceImage": "y", "other": 1},
        "uuid": None,
    },
    "ListRunTasks": {"items": [{"taskId": "3", "status": "RUNNING", "gpus": 0, "x": 1}, None], "nextToken": "n"},
    "ListRuns": {"items": [{"id": "4", "status": "PENDING", "creationTime": "2026-11-23T00:00:00Z"}]},
}


@pytest.mark.parametrize("operation", sorted(BODIES))
def test_answers_are_reduced_as_botocores_parser_reduces_them(operation):
    """Unknown and null members dropped, numbers, booleans and timestamps converted, the shape's
    member order: through the models, the same JSON as botocore's parsed answer gives."""
    from botocore.parsers import RestJSONParser
    from botocore.session import get_session

    from airflow_task_runs.aws import models
    from airflow_task_runs.aws.omics_rest import ResponseShapes

    service = get_session().get_service_model("omics")
    body = BODIES[operation]
    theirs = RestJSONParser().parse(
        {"status_code": 200, "headers": {}, "body": json.dumps(body).encode()},
        service.operation_model(operation).output_shape,
    )
    theirs.pop("ResponseMetadata")
    ours = ResponseShapes(service).parse(operation, body)
    assert list(ours) == list(theirs)
    cls = {"GetRun": models.Run, "GetRunTask": models.RunTask}.get(operation)
    if cls is None:
        item = {"ListRunTasks": models.TaskListItem, "ListRuns": models.RunListItem}[operation]
        assert ours["items"][1:] == theirs["items"][1:]  # a null item stays, as botocore keeps it
        ours, theirs = ours["items"][0], theirs["items"][0]
        cls = item
    assert json.dumps(cls.model_validate(ours).model_dump(mode="json")) == json.dumps(
        cls.model_validate(theirs).model_dump(mode="json")
    )


# -- endpoints and signing ---------------------------------------------------------------------
def test_the_real_endpoint_gets_the_workflows_host_prefix(emu, monkeypatch):
    from airflow_task_runs.aws.omics_rest import endpoint

    conn = emu.airflow_connection()
    del conn["extra"]["endpoint_url"]
    conn["extra"]["region_name"] = "eu-west-2"
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))

    async def base(hook):
        return endpoint(await hook.aclient()), (await hook.aomics()).session.base_url

    assert _async(base) == ("https://workflows-omics.eu-west-2.amazonaws.com",) * 2


def test_a_custom_endpoint_keeps_its_host_and_path(emu, monkeypatch):
    conn = emu.airflow_connection()
    conn["extra"]["endpoint_url"] = f"http://localhost:{emu.port}"
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    run_id = emu.add_run(lifecycle=[("COMPLETED", 0)])
    emu.hosts.clear()
    assert _async(lambda hook: hook.aget_run_status(run_id)).raw_status == "COMPLETED"
    assert emu.hosts == [f"localhost:{emu.port}"]  # not workflows-localhost


def test_session_token_is_sent_signed_and_masked(emu, monkeypatch):
    from airflow_task_runs.core.secrets import redact

    token = "FwoGZXIvYXdzEBYaDSessionToken+/sent=="
    conn = emu.airflow_connection()
    conn["extra"]["aws_session_token"] = token
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    run_id = emu.add_run(lifecycle=[("COMPLETED", 0)])
    assert _async(lambda hook: hook.aget_run_status(run_id)).raw_status == "COMPLETED"  # the emulator checked it
    (sent,) = emu.requests_to(f"/run/{run_id}")
    assert sent.headers["x-amz-security-token"] == token
    assert "x-amz-security-token" in sent.headers["authorization"]
    assert redact(f"key {emu.secret_key} token {token}") == "key *** token ***"


def test_a_wrong_secret_fails_at_once_naming_the_credentials(emu, monkeypatch):
    conn = emu.airflow_connection()
    conn["password"] = "not-the-right-secret"
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    run_id = emu.add_run()
    with pytest.raises(ApiError) as caught:
        _async(lambda hook: hook.aget_run(run_id))
    err = caught.value
    assert (err.status_code, err.code, err.operation) == (403, "InvalidSignatureException", "GetRun")
    assert "check the aws connection's credentials" in str(err) and "not-the-right-secret" not in str(err)
    assert len(emu.requests_to(f"/run/{run_id}")) == 1


def test_no_credentials_fail_before_any_request(emu):
    async def call(hook):
        client = await hook.aclient()
        client._request_signer._credentials = None
        return await hook.aget_run("1234567")

    with pytest.raises(ApiError, match="no AWS credentials found") as caught:
        _async(call)
    assert caught.value.code == "NoCredentials"
    assert emu.requests == []


# -- errors, retries, limits ---------------------------------------------------------------------
def test_not_found_carries_code_status_request_id_host_and_what_to_check(emu):
    with pytest.raises(ApiError) as caught:
        _async(lambda hook: hook.aget_run_task("424242", "1"))
    err = caught.value
    assert (err.cloud, err.status_code, err.code, err.host) == (
        "AWS HealthOmics",
        404,
        "ResourceNotFoundException",
        emu.url,
    )
    assert err.request_id and err.request_id in str(err)
    assert "/run/424242/task/1" in str(err) and "GetRunTask" in str(err) and "region" in str(err)
    assert not err.retryable and len(emu.requests_to("/run/424242")) == 1


@pytest.mark.parametrize("status", [429, 400], ids=["429", "400"])
def test_throttling_is_retried_whatever_its_status(emu, status):
    """AWS answers some throttling with a 400: botocore retries it by its code, and so do we."""
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    emu.inject("status", times=2, match=f"/run/{run_id}", **{**throttling_fault(), "status": status})
    assert _async(lambda hook: hook.aget_run_status(run_id)).raw_status == "RUNNING"
    assert len(emu.requests_to(f"/run/{run_id}")) == 3


def test_throttling_gives_up_after_the_clients_attempts_with_awss_words(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    emu.inject("status", times=10, match=f"/run/{run_id}", **throttling_fault())
    with pytest.raises(ApiError) as caught:
        _async(lambda h: h.aget_run(run_id), botocore_config={"retries": {"mode": "standard", "max_attempts": 2}})
    err = caught.value
    assert (err.status_code, err.code, err.retryable, err.request_id) == (
        429,
        "ThrottlingException",
        True,
        "throttled-request",
    )
    assert "Rate exceeded" in str(err)
    assert len(emu.requests_to(f"/run/{run_id}")) == 3  # botocore's max_attempts counts retries: 1 + 2


def test_error_codes_are_found_where_botocore_finds_them():
    import httpx

    from airflow_task_runs.aws.omics_rest import error_code, parse_error

    def response(headers=None):
        return httpx.Response(400, headers=headers or {})

    assert (
        error_code(response({"x-amzn-ErrorType": "ValidationException:http://internal"}), {}) == "ValidationException"
    )
    assert error_code(response(), {"__type": "com.amazonaws.omics#ConflictException"}) == "ConflictException"
    assert error_code(response(), {"code": "AccessDeniedException", "__type": "x"}) == "AccessDeniedException"
    assert error_code(response(), None) is None
    code, message, _ = parse_error(response(), {"Message": "Capital M", "__type": "ExpiredTokenException"})
    assert (code, message) == ("ExpiredTokenException", "Capital M; check the aws connection's credentials and that "
                               "its role allows this call")  # fmt: skip


def test_a_429_with_retry_after_pauses_the_connections_limiter(emu, monkeypatch):
    conn = emu.airflow_connection()
    conn["extra"]["max_requests_per_second"] = 200
    monkeypatch.setenv("AIRFLOW_CONN_AWS_LIMITED", json.dumps(conn))
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    emu.inject("status", times=1, match=f"/run/{run_id}", status=429, headers={"Retry-After": "1"})

    async def call(hook):
        omics = await hook.aomics()
        assert omics.session.limiter.rate == 200
        pauses = omics.session.limiter.pauses
        started = time.monotonic()
        status = await hook.aget_run_status(run_id)
        return status, omics.session.limiter.pauses - pauses, time.monotonic() - started

    status, pauses, elapsed = _async(call, aws_conn_id="aws_limited")
    assert status.raw_status == "RUNNING" and pauses == 1 and elapsed >= 0.9


def test_list_run_tasks_refuses_a_token_it_was_sent_before(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    page = b'{"items": [{"taskId": "1", "status": "RUNNING"}], "nextToken": "again"}'
    emu.inject("status", times=2, status=200, body=page, match=f"/run/{run_id}/task", headers={"x-amzn-RequestId": "r"})
    with pytest.raises(MalformedResponseError) as caught:
        _async(lambda hook: hook.alist_run_tasks(run_id))
    assert (caught.value.code, caught.value.operation) == ("ListingLoop", "ListRunTasks")
    assert len(emu.requests_to(f"/run/{run_id}/task")) == 2
    assert [r.query.get("startingToken") for r in emu.requests_to(f"/run/{run_id}/task")] == [None, "again"]


def test_list_runs_stops_at_its_page_bound(emu):
    for i in range(5):
        body = json.dumps({"items": [{"id": f"9{i}", "status": "RUNNING"}], "nextToken": f"t{i}"}).encode()
        emu.inject("status", status=200, body=body, match="/run", headers={"Content-Type": "application/json"})
    items = _async(lambda hook: hook.alist_runs("RUNNING", max_pages=3))
    assert [item.id for item in items] == ["90", "91", "92"]
    listed = [r for r in emu.requests if r.path == "/run"]
    assert [r.query.get("startingToken") for r in listed] == [None, "t0", "t1"]
    assert {r.query["maxResults"] for r in listed} == {"100"} and {r.query["status"] for r in listed} == {"RUNNING"}


def test_a_body_that_is_not_a_run_is_a_malformed_response(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    emu.inject(
        "status",
        times=1,
        status=200,
        body=b'{"id": "1", "status": "RUNNING", "startTime": "never"}',
        match=f"/run/{run_id}",
    )
    with pytest.raises(MalformedResponseError) as caught:
        _async(lambda hook: hook.aget_run(run_id))
    assert caught.value.operation == "GetRun" and "startTime" in str(caught.value)


def test_cancel_is_retried_like_botocore_retried_it(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    emu.inject("status", times=1, status=503, match=f"/run/{run_id}/cancel")
    assert _async(lambda hook: hook.acancel_run(run_id)) is True
    assert len(emu.requests_to(f"/run/{run_id}/cancel", "POST")) == 2
    assert emu.cancelled[-1] == run_id


def test_aclose_closes_the_http_session_and_the_aiobotocore_client(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])

    async def scenario():
        hook = HealthOmicsHook()
        await hook.aget_run(run_id)
        omics = await hook.aomics()
        assert omics is await hook.aomics()  # one client per hook
        assert omics.session._aclient is not None
        await hook.aclose()
        await hook.aclose()
        return omics, hook

    omics, hook = asyncio.run(scenario())
    assert omics.session._aclient is None and hook._async_client is None and hook._omics is None


def test_a_recursive_shape_is_converted_like_botocore_does():
    """No omics output is recursive today; a model that adds one must not loop or lose values."""
    from botocore.model import ServiceModel
    from botocore.parsers import RestJSONParser

    from airflow_task_runs.aws.omics_rest import ResponseShapes

    model = ServiceModel(
        {
            "metadata": {"protocol": "rest-json", "apiVersion": "2022-11-28", "endpointPrefix": "x"},
            "operations": {
                "GetTree": {
                    "name": "GetTree",
                    "http": {"method": "GET", "requestUri": "/"},
                    "output": {"shape": "Tree"},
                }
            },
            "shapes": {
                "Tree": {
                    "type": "structure",
                    "members": {"at": {"shape": "When"}, "kids": {"shape": "Trees"}, "n": {"shape": "N"}},
                },
                "Trees": {"type": "list", "member": {"shape": "Tree"}},
                "When": {"type": "timestamp"},
                "N": {"type": "integer"},
            },
        }
    )
    body = {"n": "1", "at": 0, "kids": [{"n": 2, "kids": [{"at": "2026-01-01T00:00:00Z", "x": 1}]}, None]}
    theirs = RestJSONParser().parse(
        {"status_code": 200, "headers": {}, "body": json.dumps(body).encode()},
        model.operation_model("GetTree").output_shape,
    )
    theirs.pop("ResponseMetadata")
    ours = ResponseShapes(model, ["GetTree"]).parse("GetTree", body)
    assert ours["kids"][0]["kids"][0] == {"at": "2026-01-01T00:00:00Z"}  # left to pydantic, as on any timestamp
    ours["kids"][0]["kids"][0]["at"] = theirs["kids"][0]["kids"][0]["at"]
    assert ours == theirs


# -- found by review: credentials, empty answers, settings the triggerer cannot honour ------------
def _expired_refreshable(refresh):
    """aiobotocore refreshable credentials already past expiry, refreshed by ``refresh``."""
    import datetime as dt

    from aiobotocore.credentials import AioRefreshableCredentials

    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    return AioRefreshableCredentials("AKIDOLD", "old-secret", "old-token", past, refresh, "assume-role")


def _get_run_refreshed_by(refresh) -> ApiError:
    """The error of a GetRun signed with expired credentials that ``refresh`` renews."""

    async def call(hook):
        client = await hook.aclient()
        client._request_signer._credentials = _expired_refreshable(refresh)
        return await hook.aget_run("1234567")

    with pytest.raises(ApiError) as caught:
        _async(call)
    return caught.value


def test_a_failed_credentials_refresh_is_an_api_error_naming_the_call(emu):
    from botocore.exceptions import ClientError

    def refuse():
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed to assume"}}, "AssumeRole")

    err = _get_run_refreshed_by(refuse)
    assert "refreshing the connection's AWS credentials" in str(err)
    assert err.code == "AccessDenied" and "GetRun" in str(err) and "not allowed to assume" in str(err)
    assert "127.0.0.1" in (err.host or "")
    assert emu.requests == []  # nothing was sent unsigned


def test_a_synchronous_credentials_refresh_runs_off_the_event_loop(emu):
    """The amazon provider refreshes an assumed role with a blocking boto3 STS call; aiobotocore
    made it on the loop, stalling every trigger for as long as STS took."""
    run_id = emu.add_run(lifecycle=[("COMPLETED", 0)])
    refreshed_on_loop: list[bool] = []

    def sts():
        refreshed_on_loop.append(_loop_running())
        return {
            "access_key": emu.access_key,
            "secret_key": emu.secret_key,
            "token": None,
            "expiry_time": "2099-01-01T00:00:00Z",
        }

    async def call(hook):
        client = await hook.aclient()
        client._request_signer._credentials = _expired_refreshable(sts)
        return await asyncio.gather(*(hook.aget_run_status(run_id) for _ in range(20)))

    statuses = _async(call)
    assert {s.raw_status for s in statuses} == {"COMPLETED"}
    assert refreshed_on_loop == [False]  # refreshed once for the 20 calls racing, in a worker thread


@pytest.mark.parametrize("body", [b"", b"null"], ids=["empty", "null"])
def test_an_empty_success_is_a_malformed_response(emu, body):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    emu.inject("status", status=200, body=body, match=f"/run/{run_id}")
    with pytest.raises(MalformedResponseError) as caught:
        _async(lambda hook: hook.aget_run(run_id))
    assert caught.value.operation == "GetRun" and "127.0.0.1" in (caught.value.host or "")


def test_a_next_token_that_is_not_text_is_a_malformed_response(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    emu.inject("status", status=200, body=b'{"items": [], "nextToken": 5}', match=f"/run/{run_id}/task")
    with pytest.raises(MalformedResponseError, match="nextToken is a JSON int") as caught:
        _async(lambda hook: hook.alist_run_tasks(run_id))
    assert caught.value.operation == "ListRunTasks"


def test_botocore_settings_the_triggerer_cannot_honour_are_named(emu, monkeypatch, caplog):
    conn = emu.airflow_connection()
    conn["extra"]["config_kwargs"] = {
        "proxies": {"https": "http://proxy.internal:3128"},
        "retries": {"mode": "adaptive"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    run_id = emu.add_run(lifecycle=[("COMPLETED", 0)])
    with caplog.at_level("WARNING", logger="airflow_task_runs.aws.omics_rest"):
        assert _async(lambda hook: hook.aget_run_status(run_id)).raw_status == "COMPLETED"
    warned = [
        r.getMessage() for r in caplog.records if "do not apply the connection's botocore Config" in r.getMessage()
    ]
    assert len(warned) == 1 and "proxies" in warned[0] and "adaptive" in warned[0]


@pytest.mark.parametrize(
    ("region", "config"),
    [
        ("us-east-1", {}),
        ("eu-west-2", {}),
        ("cn-northwest-1", {}),
        ("us-gov-west-1", {}),
        ("us-east-1", {"use_fips_endpoint": True}),
        ("us-east-1", {"use_dualstack_endpoint": True}),
        ("ap-southeast-1", {"use_dualstack_endpoint": True, "use_fips_endpoint": True}),
    ],
)
def test_the_endpoint_is_the_url_botocore_itself_sends_to(region, config):
    """Not our function against itself: botocore's own request for GetRun, caught before it is sent."""
    from aiobotocore.session import get_session
    from botocore.config import Config

    from airflow_task_runs.aws.omics_rest import endpoint

    async def both() -> tuple[str, str]:
        session = get_session()
        session.set_credentials("AKIDEXAMPLE", "example-secret")
        async with session.create_client("omics", region_name=region, config=Config(**config)) as client:
            sent: list[str] = []

            def stop(request, **_):
                sent.append(request.url)
                raise RuntimeError("caught before sending")

            client.meta.events.register("before-send.omics", stop)
            with pytest.raises(RuntimeError, match="caught before sending"):
                await client.get_run(id="1234567")
            return sent[0], endpoint(client) + "/run/1234567"

    botocores, ours = asyncio.run(both())
    assert ours == botocores


def test_a_plain_refresher_that_returns_a_coroutine_still_refreshes():
    """aiobotocore's credential_process refresher is a lambda returning a coroutine: moved to a
    thread, its coroutine must still be awaited (a review found it handed back un-awaited)."""
    from airflow_task_runs.aws.omics_rest import refresh_off_the_loop

    async def retrieve():
        return {"access_key": "AKIDNEW", "secret_key": "new", "token": None, "expiry_time": "2099-01-01T00:00:00Z"}

    async def frozen():
        credentials = _expired_refreshable(lambda: retrieve())
        refresh_off_the_loop(credentials)
        return await credentials.get_frozen_credentials()

    assert asyncio.run(frozen()).access_key == "AKIDNEW"


# -- the first credentials fetch ---------------------------------------------------------------
def _web_identity(emu, monkeypatch, fetch):
    """The aws connection assumes a role by web identity, as the amazon provider builds it for a
    trigger (deferred credentials: nothing is fetched until the first use), with ``fetch`` in
    place of the blocking boto3 STS call of botocore's fetcher."""
    from types import SimpleNamespace

    from airflow.providers.amazon.aws.hooks.base_aws import BaseSessionFactory

    conn = emu.airflow_connection()
    conn["extra"].update(
        role_arn="arn:aws:iam::123456789012:role/OmicsWatcher",
        assume_role_method="assume_role_with_web_identity",
        assume_role_with_web_identity_federation="file",
    )
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    monkeypatch.setattr(
        BaseSessionFactory,
        "_get_web_identity_credential_fetcher",
        lambda self: SimpleNamespace(fetch_credentials=fetch),
    )


def test_the_first_credentials_fetch_runs_off_the_event_loop(emu, monkeypatch):
    """Web identity credentials are fetched at their first use, in aclient(), where aiobotocore
    called the provider's blocking STS fetcher on the loop: every trigger stalled as long as STS took."""
    from airflow_task_runs.core.secrets import redact

    run_id = emu.add_run(lifecycle=[("COMPLETED", 0)])
    fetched_on_loop: list[bool] = []

    def sts():
        fetched_on_loop.append(_loop_running())
        return {
            "access_key": emu.access_key,
            "secret_key": emu.secret_key,
            "token": "first-fetch-session-token",
            "expiry_time": "2099-01-01T00:00:00Z",
        }

    _web_identity(emu, monkeypatch, sts)

    async def call(hook):
        return await asyncio.gather(*(hook.aget_run_status(run_id) for _ in range(20)))

    statuses = _async(call)
    assert {s.raw_status for s in statuses} == {"COMPLETED"}
    assert fetched_on_loop == [False]  # fetched once for the 20 calls racing, in a worker thread
    assert redact("token first-fetch-session-token") == "token ***"


def _loop_running() -> bool:
    """Whether an event loop runs in this thread (a worker thread has none)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("connection", ["keys", "web identity"])
def test_opening_the_async_client_reads_no_botocore_data_on_the_event_loop(emu, monkeypatch, connection):
    """aiobotocore's create_client runs on the event loop, and the first client of a session read and
    parsed botocore's JSON there (the omics model and endpoint rules, endpoints, partitions): a tenth
    of a second and more that every trigger waited, once per hook. The provider shares one loader
    between its plain sessions (fresh here, as in a new triggerer); an assumed role's has its own."""
    from airflow.providers.amazon.aws.hooks import base_aws
    from botocore.loaders import JSONFileLoader, Loader

    monkeypatch.setattr(base_aws, "_loader", Loader())
    if connection == "web identity":
        _web_identity(
            emu,
            monkeypatch,
            lambda: {
                "access_key": emu.access_key,
                "secret_key": emu.secret_key,
                "token": None,
                "expiry_time": "2099-01-01T00:00:00Z",
            },
        )
    read: list[tuple[str, bool]] = []
    load_file = JSONFileLoader.load_file

    def recording(self, file_path):
        found = load_file(self, file_path)
        if found is not None:
            read.append((os.path.basename(file_path), _loop_running()))
        return found

    monkeypatch.setattr(JSONFileLoader, "load_file", recording)
    run_id = emu.add_run(lifecycle=[("COMPLETED", 0)])

    status = _async(lambda hook: hook.aget_run_status(run_id))
    assert status.raw_status == "COMPLETED"
    assert {"service-2", "endpoint-rule-set-1", "endpoints", "partitions"} <= {name for name, _ in read}, read
    assert [name for name, on_loop in read if on_loop] == []


def test_a_failed_first_credentials_fetch_is_an_api_error_naming_the_call(emu, monkeypatch):
    from botocore.exceptions import ClientError

    def refuse():
        raise ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "not allowed to assume"}}, "AssumeRoleWithWebIdentity"
        )

    _web_identity(emu, monkeypatch, refuse)
    run_id = emu.add_run(lifecycle=[("COMPLETED", 0)])

    opened = []
    get_async_conn = HealthOmicsHook.get_async_conn

    async def recording(self):
        opened.append(await get_async_conn(self))
        return opened[-1]

    monkeypatch.setattr(HealthOmicsHook, "get_async_conn", recording)

    async def call(hook):
        try:
            return await hook.aget_run_status(run_id)
        finally:
            assert hook._async_client is None and hook._async_stack is None  # nothing half-built kept

    with pytest.raises(ApiError, match="refreshing the connection's AWS credentials") as caught:
        _async(call)
    err = caught.value
    assert err.code == "AccessDenied" and "GetRun" in str(err) and "not allowed to assume" in str(err)
    assert "127.0.0.1" in (err.host or "")
    assert emu.requests == []
    (client,) = (context._client for context in opened)
    assert client._endpoint.http_session._sessions is None  # the client opened for it was closed


# -- a refresher's own errors (not botocore's) --------------------------------------------------
SECRET = "wJalrXUtnFEMI/K7MDENG/leaked-in-an-error"
OWN_ERRORS = [
    pytest.param(
        RuntimeError(f"STS answered {{'SecretAccessKey': '{SECRET}'}}"),
        "RuntimeError (its message is left out: it may carry a secret)",
        id="RuntimeError",
    ),
    pytest.param(
        ValueError(f"cannot parse {SECRET}"),
        "ValueError (its message is left out: it may carry a secret)",
        id="ValueError",
    ),
    pytest.param(
        OSError(f"socket said {SECRET}"), "OSError (its message is left out: it may carry a secret)", id="OSError-words"
    ),
    pytest.param(
        FileNotFoundError(2, "No such file or directory", "/var/run/secrets/eks/token"),
        "FileNotFoundError: No such file or directory (/var/run/secrets/eks/token)",
        id="OSError-file",
    ),
]


def _assert_mapped_without_secret(err, said, caplog):
    assert isinstance(err, ApiError) and err.code == "CredentialRetrievalError"
    assert "GetRun (refreshing the connection's AWS credentials)" in str(err) and f"refresher raised {said}" in str(err)
    assert "check the aws connection's role_arn" in str(err)
    assert "127.0.0.1" in (err.host or "")
    logged = caplog.text  # aiobotocore logs a failed refresh with its traceback
    assert "Refreshing temporary credentials failed" in logged
    for text in (str(err), repr(err), logged, repr(err.__context__)):
        assert SECRET not in text
    chained = err.__context__
    assert chained is not None and chained.__context__ is None and chained.__cause__ is None  # nothing kept


@pytest.mark.parametrize(("error", "said"), OWN_ERRORS)
def test_a_refreshers_own_error_is_an_api_error_without_its_words(emu, caplog, error, said):
    def refresh():
        raise error

    err = _get_run_refreshed_by(refresh)
    _assert_mapped_without_secret(err, said, caplog)
    assert "retrieving credentials from assume-role: the refresher" in str(err)
    assert emu.requests == []


@pytest.mark.parametrize(("error", "said"), OWN_ERRORS[:1])
def test_a_refreshers_own_error_at_the_first_fetch_is_the_same_api_error(emu, monkeypatch, caplog, error, said):
    def fetch():
        raise error

    _web_identity(emu, monkeypatch, fetch)
    with pytest.raises(ApiError) as caught:
        _async(lambda hook: hook.aget_run("1234567"))
    _assert_mapped_without_secret(caught.value, said, caplog)
    assert "retrieving credentials from assume-role-with-web-identity: the refresher" in str(caught.value)
    assert emu.requests == []


# -- the same hints on both paths ---------------------------------------------------------------
@pytest.mark.parametrize(
    "code",
    [
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
    ],
)
def test_a_credentials_error_names_the_credentials_on_the_worker_and_the_triggerer(emu, code):
    """One helper words the hints of both paths (the worker's boto3 one named fewer codes)."""
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    emu.inject(
        "status",
        times=20,
        status=403,
        match=f"/run/{run_id}",
        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": "denied"},
        body=b'{"message": "The security token included in the request is expired"}',
    )
    errors = []
    for call in (lambda: HealthOmicsHook().get_run(run_id), lambda: _async(lambda hook: hook.aget_run(run_id))):
        with pytest.raises(ApiError) as caught:
            call()
        errors.append(caught.value)
    hint = "The security token included in the request is expired; check the aws connection's credentials and that "
    for err in errors:
        assert (err.status_code, err.code) == (403, code)
        assert f"{hint}its role allows this call" in str(err)


# -- the connection's rate limit ----------------------------------------------------------------
def _limited_connection(emu, monkeypatch, name, rate):
    """A new aws connection (limiters live as long as the process) whose extra sets ``rate``."""
    import uuid

    conn_id = f"aws_{name}_{uuid.uuid4().hex}"
    conn = emu.airflow_connection()
    conn["extra"]["max_requests_per_second"] = rate
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def _limiter_after_a_call(conn_id, run_id):
    async def call(hook):
        await hook.aget_run(run_id)
        return (await hook.aomics()).session.limiter

    return _async(call, aws_conn_id=conn_id)


def test_the_triggerers_limiter_is_the_aws_connections_one_shared_by_its_hooks(emu, monkeypatch):
    from airflow_task_runs.core.hooks import connection_rate_limiter

    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    shared = _limited_connection(emu, monkeypatch, "shared", 50)
    other = _limited_connection(emu, monkeypatch, "other", "7")
    first, second = (_limiter_after_a_call(shared, run_id) for _ in range(2))
    assert first is second and first.rate == 50 and first.name == f"aws connection {shared!r}"
    assert first is connection_rate_limiter({}, shared, "aws")  # the function every hook builds its limiter with
    assert _limiter_after_a_call(other, run_id).rate == 7.0


@pytest.mark.parametrize("rate", [0, "", None])
def test_a_zero_or_empty_rate_is_no_limit(emu, monkeypatch, rate):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    assert _limiter_after_a_call(_limited_connection(emu, monkeypatch, "unlimited", rate), run_id).rate is None


def test_a_bad_rate_fails_the_first_call_naming_the_field(emu, monkeypatch):
    from airflow_task_runs.core.errors import ConnectionConfigError

    conn_id = _limited_connection(emu, monkeypatch, "bad", "fast")
    with pytest.raises(ConnectionConfigError, match=r"extra\.max_requests_per_second is 'fast'; set a number > 0"):
        _limiter_after_a_call(conn_id, "1234567")
    assert emu.requests == []


def _assume_role_refused(emu, monkeypatch):
    """The aws connection names a role, and STS refuses to let it be assumed."""
    from airflow.providers.amazon.aws.hooks.base_aws import BaseSessionFactory
    from botocore.exceptions import ClientError

    conn = emu.airflow_connection()
    conn["extra"].update(role_arn="arn:aws:iam::123456789012:role/OmicsWatcher", assume_role_method="assume_role")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))

    def refused(self):
        raise ClientError(
            {
                "Error": {
                    "Code": "AccessDenied",
                    "Message": "User: arn:aws:iam::123456789012:user/airflow is not authorized to perform: "
                    "sts:AssumeRole on resource: arn:aws:iam::123456789012:role/OmicsWatcher",
                },
                "ResponseMetadata": {"HTTPStatusCode": 403, "RequestId": "sts-request-1"},
            },
            "AssumeRole",
        )

    monkeypatch.setattr(BaseSessionFactory, "_refresh_credentials", refused)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_role_sts_refuses_to_assume_is_an_api_error_naming_the_call(emu, monkeypatch, mode):
    """The amazon provider assumes the connection's role while building the client; STS's refusal
    came out as botocore's raw ClientError, with no hint and no call named."""
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    _assume_role_refused(emu, monkeypatch)
    with pytest.raises(ApiError) as caught:
        if mode == "async":
            _async(lambda hook: hook.aget_run_status(run_id))
        else:
            HealthOmicsHook().get_run_status(run_id)
    err = caught.value
    assert err.code == "AccessDenied" and err.status_code == 403 and err.request_id == "sts-request-1"
    assert "sts:AssumeRole on resource: arn:aws:iam::123456789012:role/OmicsWatcher" in str(err)
    assert "; check the aws connection's credentials and that its role allows this call" in str(err)
    assert ("GetRun" in str(err)) if mode == "async" else ("opening the HealthOmics client" in str(err))
    assert emu.requests == []  # nothing was sent to HealthOmics


def test_credentials_refreshed_already_expired_are_an_api_error_naming_the_clock(emu):
    """aiobotocore raises a bare RuntimeError when a refresh returns credentials already past
    their expiry (a clock far off, a source handing out stale keys)."""
    import datetime as dt

    def stale():
        past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=30)
        return {"access_key": "AKIDNEW", "secret_key": "new-secret", "token": None, "expiry_time": past.isoformat()}

    err = _get_run_refreshed_by(stale)
    assert err.code == "CredentialRetrievalError"
    assert "GetRun (refreshing the connection's AWS credentials)" in str(err)
    assert "refreshed but are already expired: check this machine's clock" in str(err)
    assert "new-secret" not in str(err)
    assert emu.requests == []


@pytest.mark.parametrize(
    ("make", "hint"),
    [
        (lambda bx: bx.NoRegionError(), "set region_name in the aws connection's extra"),
        (lambda bx: bx.ProfileNotFound(profile="nightly"), "check profile_name in the aws connection's extra"),
    ],
    ids=["no region", "no profile"],
)
def test_a_connection_botocore_cannot_build_a_client_from_says_what_to_set(make, hint):
    """Raised while the client is built (no network yet): the hint is the connection's, not the endpoint's."""
    from botocore import exceptions as bx

    from airflow_task_runs.core.botocore_errors import api_error

    err = api_error(make(bx), "GetRun", "building the client")
    assert isinstance(err, ApiError) and hint in str(err) and "talking to" not in str(err)
