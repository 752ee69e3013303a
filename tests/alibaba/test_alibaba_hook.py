"""RosHook against the emulator over real HTTP: statuses, OutputOption, errors, retries, connections, secrets."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from airflow_task_runs.alibaba.hooks import DEFAULT_ENDPOINT, RosHook
from airflow_task_runs.alibaba.models import AITask
from airflow_task_runs.core.errors import ApiError, ConnectionConfigError, MalformedResponseError
from airflow_task_runs.core.states import RunState


@pytest.fixture
def emu(task_runs_connections):
    emu = task_runs_connections.alibaba
    emu.clear_faults()
    return emu


def _conn_env(monkeypatch, conn_id: str, conn: dict) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def _nonces(emu, task_id: str) -> list[str]:
    return [r.headers["x-acs-signature-nonce"] for r in emu.requests_for(task_id)]


# -- statuses ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("PENDING", RunState.PENDING),
        ("WAITING", RunState.PENDING),
        ("RUNNING", RunState.RUNNING),
        ("SUCCESS", RunState.SUCCEEDED),
        ("FAILURE", RunState.FAILED),
    ],
)
@pytest.mark.parametrize("task_type", ["GenerateTemplate", "FixTemplate"])
def test_every_status_maps(emu, raw, state, task_type):
    task_id = emu.add_task(task_type=task_type, lifecycle=[(raw, 0)], status_reason="Handler failed: bad VPC")
    status = RosHook().get_status(task_id)
    assert status.state is state
    assert status.raw_status == raw
    assert status.request_id  # ROS's RequestId, for support tickets
    assert status.details["TaskId"] == task_id
    assert status.details["TaskType"] == task_type
    assert "TaskOutput" not in status.details
    if raw == "FAILURE":
        assert status.message == "Handler failed: bad VPC"


def test_unknown_status_is_not_terminal(emu):
    status = RosHook().get_status(emu.add_task(lifecycle=[("QUEUED_SOMEWHERE", 0)]))
    assert status.state is RunState.PENDING
    assert not status.state.is_terminal


async def test_async_twin_reads_the_same_status(emu):
    task_id = emu.add_task(lifecycle=[("RUNNING", 0)])
    hook = RosHook()
    try:
        status = await hook.aget_status(task_id)
        task = await hook.aget_ai_task(task_id, output=True)
    finally:
        await hook.aclose()
    assert status.state is RunState.RUNNING
    assert task.Status == "RUNNING" and task.TaskOutput is None


# -- OutputOption ------------------------------------------------------------------------------
def test_status_polls_never_ask_for_the_output(emu):
    task_id = emu.add_task(lifecycle=[("RUNNING", 2), ("SUCCESS", 0)])
    hook = RosHook()
    for _ in range(4):
        hook.get_status(task_id)
    task = hook.get_ai_task(task_id, output=True)
    options = [r.query["OutputOption"] for r in emu.requests_for(task_id)]
    assert options == ["Disabled", "Disabled", "Disabled", "Disabled", "Enabled"]
    assert all(r.method == "POST" and r.body == b"" for r in emu.requests_for(task_id))
    assert task.TaskOutput["Result"]["ROSTemplateFormatVersion"] == "2015-09-01"


def test_large_output_arrives_whole(emu):
    task_id = emu.add_task(lifecycle=[("SUCCESS", 0)], output_size=8 * 1024 * 1024)
    task = RosHook().get_ai_task(task_id, output=True)
    assert len(json.dumps(task.TaskOutput)) >= 8 * 1024 * 1024


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("success", ["false", False, "False"])
def test_200_with_an_error_body_fails(emu, success):
    task_id = emu.add_task(body_error=("Forbidden", "You are not authorized to complete this action.", success))
    with pytest.raises(ApiError) as caught:
        RosHook().get_status(task_id)
    err = caught.value
    assert err.status_code == 200
    assert err.code == "Forbidden"
    assert "You are not authorized" in str(err)
    assert err.request_id
    assert len(emu.requests_for(task_id)) == 1  # not a retryable error


def test_the_api_pages_own_sample_is_a_success(emu):
    """The page's sample carries Code/Message next to Success: true; that is not a failure."""
    sample = {
        "TaskId": "t-asasas*****",
        "RequestId": "14A07460-EBE7-47CA-9757-12CC4761D47A",
        "TaskType": "GenerateTemplate",
        "Status": "FAILURE",
        "StatusReason": "Handler execution unexpected failure",
        "TaskOutput": {"test": "test", "test2": 1},
        "Code": "Forbidden",
        "HttpStatusCode": 200,
        "Message": "You are not authorized to complete this action.",
        "Success": True,
    }
    emu.inject("status", status=200, body=json.dumps(sample).encode())
    status = RosHook().get_status("t-asasas*****")
    assert status.state is RunState.FAILED
    assert status.message == "Handler execution unexpected failure"
    assert status.request_id == "14A07460-EBE7-47CA-9757-12CC4761D47A"


def test_unknown_task_fails_with_alibabas_code_and_request_id(emu):
    with pytest.raises(ApiError) as caught:
        RosHook().get_status("t-does-not-exist")
    err = caught.value
    assert (err.status_code, err.code) == (404, "TaskNotFound")
    assert "t-does-not-exist" in err.message and err.request_id
    assert len(emu.requests_for("t-does-not-exist")) == 1


def test_a_body_without_status_is_malformed(emu):
    emu.inject("status", status=200, body=b'{"RequestId": "R-1", "TaskId": "t-x"}')
    with pytest.raises(MalformedResponseError, match="Status"):
        RosHook().get_status("t-x")


def test_empty_task_id_is_refused_before_any_request(emu):
    emu.reset_log()
    with pytest.raises(ValueError, match="ai_task_id is empty"):
        RosHook().get_status("  ")
    assert emu.requests == []


# -- retries -----------------------------------------------------------------------------------
def test_retry_is_re_signed_with_a_new_nonce(emu):
    task_id = emu.add_task(lifecycle=[("RUNNING", 0)])
    emu.inject("status", status=503)
    assert RosHook().get_status(task_id).raw_status == "RUNNING"
    nonces = _nonces(emu, task_id)
    assert len(nonces) == 2 and nonces[0] != nonces[1]
    dates_and_sigs = [r.headers["authorization"] for r in emu.requests_for(task_id)]
    assert dates_and_sigs[0] != dates_and_sigs[1]


def test_retry_after_a_reset_connection_is_re_signed(emu):
    task_id = emu.add_task(lifecycle=[("SUCCESS", 0)])
    emu.inject("reset")
    assert RosHook().get_status(task_id).state is RunState.SUCCEEDED
    nonces = _nonces(emu, task_id)
    assert len(nonces) == 2 and len(set(nonces)) == 2


def test_throttling_user_is_retried_like_a_429(emu):
    task_id = emu.add_task(lifecycle=[("RUNNING", 0)])
    emu.throttle(times=2)
    assert RosHook().get_status(task_id).raw_status == "RUNNING"
    assert len(set(_nonces(emu, task_id))) == 3


def test_throttling_gives_up_after_the_attempt_budget(emu, monkeypatch):
    conn = emu.airflow_connection()
    conn["extra"]["retry_max_attempts"] = 2
    _conn_env(monkeypatch, "ros_two_tries", conn)
    task_id = emu.add_task()
    emu.throttle(times=5)
    with pytest.raises(ApiError) as caught:
        RosHook("ros_two_tries").get_status(task_id)
    assert (caught.value.status_code, caught.value.code) == (400, "Throttling.User")
    assert len(emu.requests_for(task_id)) == 2


def test_other_400s_are_not_retried(emu, monkeypatch):
    conn = emu.airflow_connection()
    conn["password"] = "wrong-secret"
    _conn_env(monkeypatch, "ros_wrong_secret", conn)
    task_id = emu.add_task()
    with pytest.raises(ApiError) as caught:
        RosHook("ros_wrong_secret").get_status(task_id)
    assert caught.value.code == "SignatureDoesNotMatch"
    assert len(emu.requests_for(task_id)) == 1


# -- connections -------------------------------------------------------------------------------
def test_alibaba_cloud_connection_shape_works(emu, monkeypatch):
    """The alibaba provider's alibaba_cloud connections: keys in extra, region as "region"."""
    _conn_env(
        monkeypatch,
        "my_alibaba_cloud",
        {
            "conn_type": "alibaba_cloud",
            "extra": {
                "access_key_id": emu.access_key_id,
                "access_key_secret": emu.access_key_secret,
                "region": "cn-shanghai",
                "endpoint": emu.url,
            },
        },
    )
    hook = RosHook("my_alibaba_cloud")
    task_id = emu.add_task(lifecycle=[("SUCCESS", 0)])
    assert hook.get_status(task_id).state is RunState.SUCCEEDED
    assert hook.region_id == "cn-shanghai"
    assert f"Credential={emu.access_key_id}," in emu.requests_for(task_id)[-1].headers["authorization"]


def test_sts_credentials_send_the_security_token(emu, monkeypatch):
    _conn_env(
        monkeypatch,
        "ros_sts",
        {
            "conn_type": "alibaba_ros",
            "login": emu.sts_access_key_id,
            "password": emu.sts_access_key_secret,
            "extra": {"security_token": emu.sts_token, "endpoint": emu.url},
        },
    )
    task_id = emu.add_task(lifecycle=[("RUNNING", 0)])
    assert RosHook("ros_sts").get_status(task_id).raw_status == "RUNNING"
    assert emu.requests_for(task_id)[-1].headers["x-acs-security-token"] == emu.sts_token


@pytest.mark.parametrize(
    ("conn", "field"),
    [
        ({"password": "secret"}, "AccessKey ID"),
        ({"login": "LTAIKEY"}, "AccessKey Secret"),
        ({"extra": {"access_key_id": "LTAIKEY"}}, "AccessKey Secret"),
        ({"extra": {"access_key_secret": "s"}}, "AccessKey ID"),
    ],
)
def test_missing_fields_are_named(emu, monkeypatch, conn, field):
    _conn_env(monkeypatch, "ros_incomplete", {"conn_type": "alibaba_ros", **conn})
    emu.reset_log()
    with pytest.raises(ConnectionConfigError, match=field) as caught:
        RosHook("ros_incomplete").get_status("t-1")
    assert "ros_incomplete" in str(caught.value) and "is missing" in str(caught.value)
    assert emu.requests == []


def test_malformed_extra_is_named(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_ROS_BAD_EXTRA", json.dumps({"conn_type": "alibaba_ros", "login": "a", "password": "b"})
    )
    hook = RosHook("ros_bad_extra")
    hook.connection.extra = "{not json"
    with pytest.raises(ConnectionConfigError, match="extra is not valid JSON"):
        hook.endpoint(hook.connection)


def test_defaults_region_endpoint_and_region_override(monkeypatch):
    _conn_env(monkeypatch, "ros_plain", {"conn_type": "alibaba_ros", "login": "LTAIKEY", "password": "s"})
    hook = RosHook("ros_plain")
    assert hook.endpoint(hook.connection) == DEFAULT_ENDPOINT == "https://ros.aliyuncs.com"
    assert hook.region_id == "cn-hangzhou"
    assert RosHook("ros_plain", region_id="ap-southeast-1").region_id == "ap-southeast-1"
    _conn_env(
        monkeypatch,
        "ros_intl",
        {"conn_type": "alibaba_ros", "login": "k", "password": "s", "extra": {"endpoint": "ros-intl.aliyuncs.com"}},
    )
    intl = RosHook("ros_intl")
    assert intl.endpoint(intl.connection) == "https://ros-intl.aliyuncs.com"


def test_test_connection(emu, monkeypatch):
    ok, message = RosHook().test_connection()
    assert ok, message
    conn = emu.airflow_connection()
    conn["password"] = "wrong-secret"
    _conn_env(monkeypatch, "ros_wrong", conn)
    ok, message = RosHook("ros_wrong").test_connection()
    assert not ok and "SignatureDoesNotMatch" in message
    assert "wrong-secret" not in message


# -- secrets -----------------------------------------------------------------------------------
def test_no_secret_in_logs_or_errors(emu, monkeypatch, captured_logs):
    secret, token = emu.sts_access_key_secret, emu.sts_token
    conn = {
        "conn_type": "alibaba_ros",
        "login": emu.sts_access_key_id,
        "password": secret,
        "extra": {"security_token": token, "endpoint": emu.url, "retry_backoff_initial": 0.01},
    }
    _conn_env(monkeypatch, "ros_secret_check", conn)
    hook = RosHook("ros_secret_check")
    task_id = emu.add_task(lifecycle=[("FAILURE", 0)])
    emu.throttle(times=1)  # a retry: logged with the error
    status = hook.get_status(task_id)
    texts = [repr(hook.session.auth), repr(status)]
    _conn_env(monkeypatch, "ros_secret_check", {**conn, "extra": {**conn["extra"], "security_token": "bad"}})
    with pytest.raises(ApiError) as caught:
        RosHook("ros_secret_check").get_status(task_id)
    texts += [str(caught.value), repr(caught.value)]
    logs = captured_logs()
    assert "Throttling.User" in logs  # the retry was logged
    for text in [logs, *texts]:
        assert secret not in text
        assert token not in text


def test_secrets_are_registered_with_the_masker(emu, monkeypatch):
    from airflow.sdk.log import _secrets_masker

    _conn_env(
        monkeypatch,
        "ros_masked",
        {
            "conn_type": "alibaba_cloud",
            "extra": {
                "access_key_id": "LTAIMASKTEST",
                "access_key_secret": "masked-extra-secret-123",
                "security_token": "masked-sts-token-456",
            },
        },
    )
    RosHook("ros_masked").connection  # noqa: B018  (reading it registers the secrets)
    masker = _secrets_masker()
    assert "masked-extra-secret-123" not in str(masker.redact("key masked-extra-secret-123"))
    assert "masked-sts-token-456" not in str(masker.redact("token masked-sts-token-456"))


# -- model -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "parsed"), [("true", True), ("false", False), (True, True), (False, False), ("TRUE", True), (None, None)]
)
def test_success_is_parsed_from_strings_and_booleans(raw, parsed):
    assert AITask.model_validate({"Status": "RUNNING", "Success": raw}).Success is parsed


def test_success_must_be_a_boolean_word():
    with pytest.raises(ValidationError):
        AITask.model_validate({"Status": "RUNNING", "Success": "maybe"})


def test_unknown_fields_are_kept():
    task = AITask.model_validate({"Status": "RUNNING", "NewField": 1})
    assert task.model_extra == {"NewField": 1}
