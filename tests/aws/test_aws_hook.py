"""HealthOmicsHook over real HTTP to the emulator: status tables, errors, retries, endpoints, secrets."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import urllib.error
import urllib.request

import pytest

from airflow_task_runs.aws.hooks import (
    RUN_STATES,
    TASK_STATES,
    HealthOmicsHook,
    failure_reason,
    parse_log_stream,
    parse_s3_uri,
)
from airflow_task_runs.core.errors import ApiError
from airflow_task_runs.core.states import RunState
from airflow_task_runs.testing.aws import throttling_fault

TASK_TABLE = {
    "PENDING": RunState.PENDING,
    "STARTING": RunState.PENDING,
    "RUNNING": RunState.RUNNING,
    "STOPPING": RunState.RUNNING,
    "COMPLETED": RunState.SUCCEEDED,
    "FAILED": RunState.FAILED,
    "CANCELLED": RunState.CANCELLED,
}
RUN_TABLE = {**TASK_TABLE, "DELETED": RunState.CANCELLED}


@pytest.fixture
def emu(task_runs_connections):
    emu = task_runs_connections.aws
    emu.reset_log()
    return emu


@pytest.fixture
def hook(emu):
    return HealthOmicsHook()


def _set_connection(monkeypatch, conn: dict) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))


def test_tables_cover_every_status_of_botocores_model():
    from botocore.loaders import Loader

    shapes = Loader().load_service_model("omics", "service-2")["shapes"]
    assert set(TASK_TABLE) == set(shapes["TaskStatus"]["enum"]) == set(TASK_STATES.words())
    assert set(RUN_TABLE) == set(shapes["RunStatus"]["enum"]) == set(RUN_STATES.words())


@pytest.mark.parametrize(("status", "state"), sorted(TASK_TABLE.items()))
def test_every_task_status_through_the_emulator(emu, hook, status, state):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    task_id = emu.add_task(run_id, lifecycle=[(status, 0)])
    result = hook.get_task_status(run_id, task_id)
    assert (result.state, result.raw_status) == (state, status)
    assert result.details["taskId"] == task_id
    assert result.request_id
    if state.is_terminal:  # ids are reused after deletion: the run's uuid comes along
        assert result.details["runUuid"] == emu.runs[run_id].run_uuid


@pytest.mark.parametrize(("status", "state"), sorted(RUN_TABLE.items()))
def test_every_run_status_through_the_emulator(emu, hook, status, state):
    run_id = emu.add_run(lifecycle=[(status, 0)])
    result = hook.get_run_status(run_id)
    assert (result.state, result.raw_status) == (state, status)
    assert result.details["uuid"] == emu.runs[run_id].run_uuid


def test_failure_reason_is_failure_reason_and_status_message(emu, hook):
    run_id = emu.add_run(lifecycle=[("FAILED", 0)], failure_reason="OUT_OF_DISK", status_message="scratch is full")
    task_id = emu.add_task(run_id, lifecycle=[("FAILED", 0)], failure_reason="OOM", status_message="exit code 137")
    assert hook.get_task_status(run_id, task_id).message == "OOM: exit code 137"
    assert hook.get_run_status(run_id).message == "OUT_OF_DISK: scratch is full"
    assert failure_reason(None, "only words") == "only words"
    assert failure_reason("", None) is None


def test_get_run_task_has_every_field_with_aware_timestamps(emu, hook):
    run_id = emu.add_run()
    task_id = emu.add_task(run_id, lifecycle=[("COMPLETED", 0)])
    task = hook.get_run_task(run_id, task_id)
    assert task.taskId == task_id and task.status == "COMPLETED" and task.name == "align"
    assert (task.cpus, task.memory, task.gpus, task.instanceType) == (2, 4, 0, "omics.c.large")
    assert task.logStream.endswith(f"log-stream:run/{run_id}/task/{task_id}")
    assert task.imageDetails["image"].startswith("public.ecr.aws/")
    for when in (task.creationTime, task.startTime, task.stopTime):
        assert when is not None and when.utcoffset() == dt.timedelta(0)
    assert task.request_id


def test_list_run_tasks_reads_every_page_and_filters(emu, hook):
    run_id = emu.add_run()
    ids = [emu.add_task(run_id, lifecycle=[("COMPLETED" if i % 3 else "FAILED", 0)]) for i in range(130)]
    items = hook.list_run_tasks(run_id)
    assert [t.taskId for t in items] == ids
    assert len(emu.requests_to(f"/run/{run_id}/task")) == 2  # 100 + 30
    failed = hook.list_run_tasks(run_id, status="FAILED")
    assert {t.status for t in failed} == {"FAILED"} and len(failed) == 44


def test_not_found_fails_at_once_with_the_api_error_name(emu, hook):
    with pytest.raises(ApiError) as caught:
        hook.get_run_task("424242", "1")
    err = caught.value
    assert (err.cloud, err.status_code, err.code) == ("AWS HealthOmics", 404, "ResourceNotFoundException")
    assert err.request_id and err.request_id in str(err)
    assert "424242" in str(err) and "region" in str(err)
    assert len(emu.requests_to("/run/424242")) == 1  # not retried


def test_throttling_is_retried_by_botocore(emu, hook):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    emu.inject("status", times=1, match=f"/run/{run_id}", **throttling_fault())
    assert hook.get_run_status(run_id).raw_status == "RUNNING"
    assert len(emu.requests_to(f"/run/{run_id}")) == 2


def test_throttling_gives_up_after_the_configured_attempts(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    emu.inject("status", times=10, match=f"/run/{run_id}", **throttling_fault())
    hook = HealthOmicsHook(botocore_config={"retries": {"mode": "standard", "max_attempts": 2}})
    with pytest.raises(ApiError) as caught:
        hook.get_run(run_id)
    assert (caught.value.status_code, caught.value.code, caught.value.retryable) == (429, "ThrottlingException", True)
    # botocore's retries.max_attempts counts retries: 1 call + 2 retries
    assert len(emu.requests_to(f"/run/{run_id}")) == 3
    emu.clear_faults()


def test_default_retry_mode_when_the_connection_sets_none(emu, monkeypatch):
    conn = emu.airflow_connection()
    del conn["extra"]["config_kwargs"]
    _set_connection(monkeypatch, conn)
    config = HealthOmicsHook().conn.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 5}


def test_custom_endpoint_url_is_not_mangled_by_the_host_prefix(emu, monkeypatch):
    conn = emu.airflow_connection()
    conn["extra"]["endpoint_url"] = f"http://localhost:{emu.port}"
    _set_connection(monkeypatch, conn)
    run_id = emu.add_run(lifecycle=[("COMPLETED", 0)])
    emu.hosts.clear()
    hook = HealthOmicsHook()
    assert hook.get_run_status(run_id).state is RunState.SUCCEEDED
    assert emu.hosts == [f"localhost:{emu.port}"]  # not workflows-localhost
    assert hook.conn.meta.config.inject_host_prefix is False


def test_without_a_custom_endpoint_the_real_host_keeps_its_prefix(emu, monkeypatch):
    conn = emu.airflow_connection()
    del conn["extra"]["endpoint_url"]
    _set_connection(monkeypatch, conn)
    hook = HealthOmicsHook()
    assert hook.conn.meta.config.inject_host_prefix is True
    assert hook.conn.meta.endpoint_url == "https://omics.us-east-1.amazonaws.com"


def test_per_service_endpoint_in_service_config(emu, monkeypatch):
    conn = emu.airflow_connection()
    conn["extra"]["endpoint_url"] = "http://127.0.0.1:9"  # nothing listens there
    conn["extra"]["service_config"]["omics"] = {"endpoint_url": emu.url}
    _set_connection(monkeypatch, conn)
    run_id = emu.add_run(lifecycle=[("COMPLETED", 0)])
    assert HealthOmicsHook().get_run(run_id).uuid == emu.runs[run_id].run_uuid


def test_wrong_secret_key_is_rejected_by_sigv4_check(emu, monkeypatch):
    conn = emu.airflow_connection()
    conn["password"] = "not-the-right-secret"
    _set_connection(monkeypatch, conn)
    with pytest.raises(ApiError) as caught:
        HealthOmicsHook().get_run(emu.add_run())
    assert (caught.value.status_code, caught.value.code) == (403, "InvalidSignatureException")
    assert "credentials" in str(caught.value)


def _signed_request(emu, path: str, when: dt.datetime, secret: str) -> urllib.request.Request:
    """Sign with botocore's SigV4Auth at a chosen time (add_auth always uses now)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    request = AWSRequest(method="GET", url=f"{emu.url}{path}", headers={"X-Amz-Date": amz_date})
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(emu.access_key, secret), "omics", "us-east-1")
    signer._modify_request_before_signing(request)
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    scope = f"{emu.access_key}/{amz_date[:8]}/us-east-1/omics/aws4_request"
    headers = dict(request.headers.items())
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={signer.signed_headers(signer.headers_to_sign(request))}, "
        f"Signature={signature}"
    )
    return urllib.request.Request(f"{emu.url}{path}", headers=headers)


def _status_and_error(request: urllib.request.Request) -> tuple[int, str | None]:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("x-amzn-ErrorType")


def test_emulator_sigv4_accepts_a_fresh_signature_and_rejects_a_stale_one(emu):
    run_id = emu.add_run()
    now = dt.datetime.now(dt.timezone.utc)
    assert _status_and_error(_signed_request(emu, f"/run/{run_id}", now, emu.secret_key)) == (200, None)
    stale = now - dt.timedelta(minutes=20)
    assert _status_and_error(_signed_request(emu, f"/run/{run_id}", stale, emu.secret_key)) == (
        403,
        "InvalidSignatureException",
    )
    assert _status_and_error(_signed_request(emu, f"/run/{run_id}", now, "wrong")) == (403, "InvalidSignatureException")
    assert _status_and_error(urllib.request.Request(f"{emu.url}/run/{run_id}")) == (
        403,
        "MissingAuthenticationTokenException",
    )


def test_async_client_reads_status_and_closes(emu):
    run_id = emu.add_run(lifecycle=[("RUNNING", 1), ("COMPLETED", 0)])
    task_id = emu.add_task(run_id, lifecycle=[("FAILED", 0)], failure_reason="OOM", status_message="exit 137")

    async def scenario():
        hook = HealthOmicsHook()
        try:
            first = await hook.aget_run_status(run_id)
            second = await hook.aget_run_status(run_id)
            task = await hook.aget_task_status(run_id, task_id)
            listed = await hook.alist_run_tasks(run_id)
            client = await hook.aclient()
            assert client is await hook.aclient()  # one client, reused across polls
        finally:
            await hook.aclose()
            await hook.aclose()  # idempotent
        return first, second, task, listed

    first, second, task, listed = asyncio.run(scenario())
    assert (first.raw_status, second.raw_status) == ("RUNNING", "COMPLETED")
    assert (task.state, task.message) == (RunState.FAILED, "OOM: exit 137")
    assert task.details["runUuid"] == emu.runs[run_id].run_uuid
    assert [t.taskId for t in listed] == [task_id]


def test_async_not_found_keeps_the_error_name(emu):
    async def scenario():
        hook = HealthOmicsHook()
        try:
            await hook.aget_run("999999")
        finally:
            await hook.aclose()

    with pytest.raises(ApiError) as caught:
        asyncio.run(scenario())
    assert (caught.value.status_code, caught.value.code) == (404, "ResourceNotFoundException")


def test_no_secret_in_logs_or_errors(emu, monkeypatch, captured_logs, caplog):
    run_id = emu.add_run(lifecycle=[("FAILED", 0)])
    hook = HealthOmicsHook()
    hook.get_run_status(run_id)
    errors = []
    for call in (lambda: hook.get_run("31337"), lambda: hook.get_run_task(run_id, "0")):
        with pytest.raises(ApiError) as caught:
            call()
        errors.append(f"{caught.value}{caught.value!r}")
    conn = emu.airflow_connection()
    conn["password"] = "wrong-secret-value-123"
    _set_connection(monkeypatch, conn)
    with pytest.raises(ApiError) as caught:
        HealthOmicsHook().get_run(run_id)
    errors.append(str(caught.value))
    text = captured_logs() + "".join(errors)
    assert emu.secret_key not in text
    assert "wrong-secret-value-123" not in text
    # botocore's own DEBUG wire log prints the Authorization header (a signature, never the key);
    # at Airflow's default INFO level nothing of it shows.
    info = "".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "Signature=" not in info and "Authorization" not in info


def test_test_connection(emu, hook):
    ok, message = hook.test_connection()
    assert ok, message
    assert "ResourceNotFoundException" in message


def test_empty_ids_are_refused_before_any_call(emu, hook):
    with pytest.raises(ValueError, match="run_task_id is empty"):
        hook.get_run_task("1", "")
    with pytest.raises(ValueError, match="run_id is empty"):
        hook.get_run(" ")
    assert emu.requests == []


@pytest.mark.parametrize(
    ("log_stream", "expected"),
    [
        (
            "arn:aws:logs:us-east-1:123456789012:log-group:/aws/omics/WorkflowLog:log-stream:run/123/task/456",
            ("/aws/omics/WorkflowLog", "run/123/task/456"),
        ),
        (
            "arn:aws-cn:logs:cn-north-1:1:log-group:/custom/group:log-stream:run/1/task/2",
            ("/custom/group", "run/1/task/2"),
        ),
        ("run/123/task/456", ("/aws/omics/WorkflowLog", "run/123/task/456")),
    ],
)
def test_parse_log_stream(log_stream, expected):
    assert parse_log_stream(log_stream) == expected


def test_parse_log_stream_refuses_other_arns_and_empty():
    with pytest.raises(ValueError, match="not a CloudWatch Logs log-stream ARN"):
        parse_log_stream("arn:aws:s3:::bucket/key")
    with pytest.raises(ValueError, match="no logStream"):
        parse_log_stream("")


def test_parse_s3_uri():
    assert parse_s3_uri("s3://bucket/a/b/") == ("bucket", "a/b/")
    with pytest.raises(ValueError):
        parse_s3_uri("file:///tmp/x")
