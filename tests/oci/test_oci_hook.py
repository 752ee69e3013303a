"""OciAiDataPlatformHook over real HTTP against the emulator: connection fields, signing, retries, errors."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_task_runs.core.errors import ApiError, ConnectionConfigError
from airflow_task_runs.oci.hooks import OciAiDataPlatformHook
from airflow_task_runs.testing.oci import PLATFORM_ID, WORKSPACE_KEY, encode_item

FETCH = "/actions/fetchOutput"


@pytest.fixture
def emu(task_runs_connections):
    oci = task_runs_connections.oci
    oci.reset_log()
    oci.reset_actions()
    return oci


def _set_conn(monkeypatch, emu, conn_id="oci_custom", drop=(), **changes):
    conn = json.loads(json.dumps(emu.airflow_connection()))
    extra = conn["extra"]
    for key, value in changes.items():
        if key in ("login", "password", "host"):
            conn[key] = value
        else:
            extra[key] = value
    for key in drop:
        conn.pop(key, None)
        extra.pop(key, None)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return OciAiDataPlatformHook(oci_conn_id=conn_id)


# -- connection fields -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "drop", "field"),
    [
        ({}, ("login",), "user OCID (login)"),
        ({"login": "ocid1.tenancy.oc1..aaaa"}, (), "user OCID (login)"),
        ({"login": "alice@example.com"}, (), "user OCID (login)"),
        ({}, ("tenancy",), "tenancy (extra.tenancy)"),
        ({"tenancy": "ocid1.user.oc1..aaaa"}, (), "tenancy (extra.tenancy)"),
        ({}, ("fingerprint",), "fingerprint (extra.fingerprint)"),
        ({"fingerprint": "82f17f35df280e19"}, (), "fingerprint (extra.fingerprint)"),
        ({}, ("password",), "private key (password or extra.key_file)"),
        ({"password": "hunter2-not-a-pem"}, (), "private key (password)"),
        ({}, ("region", "endpoint"), "region (extra.region)"),
        ({"region": "Frankfurt"}, (), "region (extra.region)"),
        ({"endpoint": "ftp://x"}, (), "endpoint (extra.endpoint)"),
        ({"auth_type": "magic"}, (), "extra.auth_type"),
        ({"password": "", "key_file": "/nonexistent/key.pem"}, (), "key_file (extra.key_file)"),
        ({"config_file": "/nonexistent/config"}, (), "extra.config_file"),
    ],
)
def test_missing_or_malformed_field_is_named(monkeypatch, emu, changes, drop, field):
    hook = _set_conn(monkeypatch, emu, drop=drop, **changes)
    with pytest.raises(ConnectionConfigError) as caught:
        hook.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "whatever")
    assert caught.value.field == field
    assert "hunter2" not in str(caught.value)
    assert not emu.requests, "nothing may be sent with a bad connection"


def test_extra_that_is_not_json_is_named(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_OCI_BADEXTRA", json.dumps({"conn_type": "oci", "login": "ocid1.user.oc1..a", "extra": "{nope"})
    )
    with pytest.raises(ConnectionConfigError, match="extra is not valid JSON"):
        OciAiDataPlatformHook(oci_conn_id="oci_badextra").credentials()


def test_config_file_profile_and_key_file(monkeypatch, emu, tmp_path):
    key = tmp_path / "oci_api_key.pem"
    key.write_text(emu.private_key_pem)
    config = tmp_path / "config"
    config.write_text(
        "[DEFAULT]\nregion=eu-frankfurt-1\n\n"
        f"[AIRFLOW]\nuser={emu.user}\nfingerprint={emu.fingerprint}\ntenancy={emu.tenancy}\nkey_file=oci_api_key.pem\n"
    )
    hook = _set_conn(
        monkeypatch,
        emu,
        drop=("login", "password", "tenancy", "fingerprint", "region"),
        config_file=str(config),
        profile="AIRFLOW",
    )
    creds = hook.credentials()
    assert creds.region == "eu-frankfurt-1"  # inherited from [DEFAULT]
    assert creds.user == emu.user
    emu.add_task_run("cfg-run", lifecycle=["RUNNING"])
    assert hook.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "cfg-run").state.status == "RUNNING"


def test_unknown_profile_lists_the_known_ones(monkeypatch, emu, tmp_path):
    config = tmp_path / "config"
    config.write_text("[DEFAULT]\nregion=us-ashburn-1\n[PROD]\nuser=x\n")
    hook = _set_conn(monkeypatch, emu, config_file=str(config), profile="STAGING")
    with pytest.raises(ConnectionConfigError, match=r"profile 'STAGING'.*DEFAULT, PROD"):
        hook.credentials()


def test_default_endpoint_is_the_clis_host(monkeypatch, emu):
    hook = _set_conn(monkeypatch, emu, drop=("endpoint",), region="ap-tokyo-1")
    assert hook.credentials().endpoint == "https://aidp.ap-tokyo-1.oci.oraclecloud.com"


def test_wrong_key_is_refused_by_the_emulator_with_ocis_error_shape(monkeypatch, emu):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    hook = _set_conn(monkeypatch, emu, password=other.decode())
    with pytest.raises(ApiError) as caught:
        hook.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "x")
    err = caught.value
    assert (err.status_code, err.code) == (401, "NotAuthenticated")
    assert "signature mismatch" in err.message
    assert err.request_id and err.request_id in str(err)
    assert len(emu.requests) == 1, "a 401 is not retried"


def test_clock_skew_over_five_minutes_is_refused(monkeypatch, emu):
    import email.utils
    import time

    from airflow_task_runs.oci import auth

    monkeypatch.setattr(auth, "http_date", lambda now=None: email.utils.formatdate(time.time() - 301, usegmt=True))
    hook = _set_conn(monkeypatch, emu)
    with pytest.raises(ApiError, match="clock skew"):
        hook.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "x")


# -- requests ---------------------------------------------------------------------------------
def test_get_task_run_sends_a_request_id_and_reads_it_back(emu):
    emu.add_task_run("rid-run", lifecycle=["QUEUED"])
    run = OciAiDataPlatformHook().get_task_run(PLATFORM_ID, WORKSPACE_KEY, "rid-run")
    sent = emu.requests[-1].headers["opc-request-id"]
    assert run.request_id.startswith(sent + "/")
    assert sent.isalnum()


def test_not_found_carries_code_message_and_request_id(emu):
    with pytest.raises(ApiError) as caught:
        OciAiDataPlatformHook().get_task_run(PLATFORM_ID, WORKSPACE_KEY, "no-such-run")
    err = caught.value
    assert (err.status_code, err.code) == (404, "NotAuthorizedOrNotFound")
    assert "no-such-run not found" in str(err)
    assert err.request_id.startswith(emu.requests[-1].headers["opc-request-id"])


def test_unknown_fields_and_enum_values_do_not_break_parsing(emu):
    emu.add_task_run("new-enum", lifecycle=["HIBERNATING"], newField={"a": 1})
    hook = OciAiDataPlatformHook()
    run = hook.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "new-enum")
    assert run.model_extra["newField"] == {"a": 1}
    status = hook.task_run_status(run)
    assert status.raw_status == "HIBERNATING" and not status.state.is_terminal


def _seed_output(emu, key="retry-run"):
    emu.add_task_run(key, lifecycle=["SUCCESS"], output_key="out-1")
    emu.set_output(key, "out-1", [encode_item(b"hello", "TEXT_PLAIN", charset="UTF_8")])
    return key


def test_fetch_output_defaults_to_the_runs_output_key(emu):
    key = _seed_output(emu)
    output = OciAiDataPlatformHook().fetch_task_run_output(PLATFORM_ID, WORKSPACE_KEY, key)
    assert output.key == "out-1"
    post = emu.requests_to(f"/20260430/aiDataPlatforms/{PLATFORM_ID}", "POST")[-1]
    assert json.loads(post.body) == {"outputKey": "out-1"}
    assert post.headers["x-content-sha256"] and post.headers["content-length"] == str(len(post.body))


@pytest.mark.parametrize("fault", ["status-503", "reset", "status-429", "status-409-IncorrectState"])
def test_retried_post_keeps_its_retry_token(emu, fault):
    key = _seed_output(emu, f"retry-{fault}")
    if fault == "reset":
        emu.inject("reset", match="/20260430/", times=1)
    else:
        _, status, *code = fault.split("-")
        body = json.dumps({"code": code[0] if code else "TooManyRequests", "message": "try again"}).encode()
        emu.inject("status", status=int(status), body=body, times=1, match=f"/20260430/aiDataPlatforms/{PLATFORM_ID}")
    hook = OciAiDataPlatformHook()
    output = hook.fetch_task_run_output(PLATFORM_ID, WORKSPACE_KEY, key, output_key="out-1")
    assert output.data[0].value
    posts = [r for r in emu.requests if r.method == "POST"]
    assert len(posts) == 2
    assert posts[0].headers["opc-retry-token"] == posts[1].headers["opc-retry-token"]
    assert posts[0].headers["opc-request-id"] == posts[1].headers["opc-request-id"]
    assert emu.fetch_actions[posts[0].headers["opc-retry-token"]] == 1


def test_action_that_ran_but_lost_its_reply_is_not_run_twice(emu):
    key = _seed_output(emu, "lost-reply")
    emu.fail_next_fetch_after_action()
    hook = OciAiDataPlatformHook()
    output = hook.fetch_task_run_output(PLATFORM_ID, WORKSPACE_KEY, key, output_key="out-1")
    assert output.key == "out-1"
    posts = [r for r in emu.requests if r.method == "POST"]
    token = posts[0].headers["opc-retry-token"]
    assert len(posts) == 2 and posts[1].headers["opc-retry-token"] == token
    assert emu.fetch_actions[token] == 1
    # A second call is a new action with a new token.
    hook.fetch_task_run_output(PLATFORM_ID, WORKSPACE_KEY, key, output_key="out-1")
    assert len(emu.fetch_actions) == 2


@pytest.mark.parametrize(("status", "code"), [(501, "NotImplemented"), (409, "Conflict"), (400, "InvalidParameter")])
def test_not_retried(emu, status, code):
    key = _seed_output(emu, f"no-retry-{status}")
    body = json.dumps({"code": code, "message": "nope"}).encode()
    emu.inject("status", status=status, body=body, times=1, match=f"/20260430/aiDataPlatforms/{PLATFORM_ID}")
    with pytest.raises(ApiError) as caught:
        OciAiDataPlatformHook().get_task_run(PLATFORM_ID, WORKSPACE_KEY, key)
    assert (caught.value.status_code, caught.value.code, caught.value.message) == (status, code, "nope")
    assert len(emu.requests) == 1


def test_transport_errors_end_with_the_request_id(monkeypatch, emu):
    hook = _set_conn(monkeypatch, emu, retry_max_attempts=2)
    emu.inject("reset", times=2, match="/20260430/")
    with pytest.raises(ApiError) as caught:
        hook.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "x")
    assert caught.value.status_code is None
    assert caught.value.request_id == emu.requests[-1].headers["opc-request-id"]
    assert len(emu.requests) == 2


def test_experiment_run_with_user_principal(emu):
    run_id = emu.add_experiment_run(lifecycle=["FINISHED"], metrics={"rmse": 0.5}, params={"alpha": "0.1"})
    hook = OciAiDataPlatformHook()
    run = hook.get_experiment_run(PLATFORM_ID, WORKSPACE_KEY, run_id, user_principal="alice")
    request = emu.requests[-1]
    assert request.headers["dh-user-principal"] == "alice"
    assert request.query == {"run_id": run_id}
    assert run.info.status == "FINISHED"
    assert run.to_xcom()["metrics"] == {"rmse": 0.5}
    assert run.inputs.dataset_inputs[0].dataset.schema_ == '{"mlflow_colspec": []}'


async def test_async_twins(emu):
    emu.add_task_run("async-run", lifecycle=["CANCELING"])
    run_id = emu.add_experiment_run(lifecycle=["KILLED"])
    hook = OciAiDataPlatformHook()
    try:
        task = await hook.aget_task_run_status(PLATFORM_ID, WORKSPACE_KEY, "async-run")
        mlflow = await hook.aget_experiment_run_status(PLATFORM_ID, WORKSPACE_KEY, run_id)
    finally:
        await hook.aclose()
    assert (task.raw_status, task.state.value) == ("CANCELING", "RUNNING")
    assert (mlflow.raw_status, mlflow.state.value) == ("KILLED", "CANCELLED")


async def test_the_triggerers_polls_log_their_request_id_at_debug_and_the_workers_at_info(emu, caplog):
    """At 1,000 watches an INFO line per poll would be 1,000 triggerer log lines a second."""
    emu.add_task_run("quiet-run", lifecycle=["RUNNING"])
    hook = OciAiDataPlatformHook()
    caplog.set_level(logging.DEBUG, logger="airflow_task_runs.oci.hooks")
    try:
        polled = await hook.aget_task_run_status(PLATFORM_ID, WORKSPACE_KEY, "quiet-run")
    finally:
        await hook.aclose()
    poked = hook.get_task_run_status(PLATFORM_ID, WORKSPACE_KEY, "quiet-run")
    levels = [(r.levelno, r.getMessage()) for r in caplog.records if "opc-request-id" in r.getMessage()]
    assert levels == [
        (logging.DEBUG, f"OCI AI Data Platform GET {_path('quiet-run')}: opc-request-id {polled.request_id}"),
        (logging.INFO, f"OCI AI Data Platform GET {_path('quiet-run')}: opc-request-id {poked.request_id}"),
    ]


def _path(task_run_key: str) -> str:
    return f"/aiDataPlatforms/{PLATFORM_ID}/workspaces/{WORKSPACE_KEY}/taskRuns/{task_run_key}"


def test_test_connection(monkeypatch, emu):
    ok, message = OciAiDataPlatformHook().test_connection()
    assert ok, message
    ok, message = _set_conn(monkeypatch, emu, fingerprint="00:" * 15 + "00").test_connection()
    assert not ok and "unknown keyId" in message


def test_no_key_material_in_logs_or_errors(monkeypatch, emu, captured_logs, caplog):
    caplog.set_level(logging.DEBUG)
    emu.add_task_run("log-run", lifecycle=["FAILED"], state_message="boom", error_trace="Traceback: x")
    hook = OciAiDataPlatformHook()
    status = hook.get_task_run_status(PLATFORM_ID, WORKSPACE_KEY, "log-run")
    key = _seed_output(emu, "log-run-2")
    hook.fetch_task_run_output(PLATFORM_ID, WORKSPACE_KEY, key)
    signature = emu.requests[-1].headers["authorization"].split('signature="')[1].split('"')[0]
    bad = _set_conn(monkeypatch, emu, password=emu.private_key_pem.replace("A", "B", 5))
    with pytest.raises(Exception) as caught:
        bad.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "log-run")
    text = captured_logs() + str(caught.value) + repr(hook.credentials()) + json.dumps(status.to_dict())
    body_lines = [line for line in emu.private_key_pem.splitlines() if "-----" not in line]
    assert "opc-request-id" in text  # the logs were captured at all
    assert "BEGIN PRIVATE KEY" not in text
    assert not [line for line in body_lines if line in text]
    assert signature not in text


@pytest.mark.parametrize("key", ["passphrase", "pass_phrase"])
def test_encrypted_key_with_passphrase_in_extra(task_runs_connections, monkeypatch, key):
    """The documented extra key is one Airflow's masker hides; the config-file spelling works too."""
    from airflow.sdk._shared.secrets_masker.secrets_masker import should_hide_value_for_key
    from cryptography.hazmat.primitives import serialization

    from airflow_task_runs.oci.auth import load_private_key

    emu = task_runs_connections.oci
    conn = emu.airflow_connection()
    key_obj = load_private_key(conn["password"])
    conn["password"] = key_obj.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"correct horse"),
    ).decode()
    conn["extra"] = {**conn["extra"], key: "correct horse"}
    monkeypatch.setenv("AIRFLOW_CONN_OCI_ENCRYPTED", json.dumps(conn))
    from airflow_task_runs.oci.hooks import OciAiDataPlatformHook

    ok, message = OciAiDataPlatformHook(oci_conn_id="oci_encrypted").test_connection()
    assert ok, message
    assert should_hide_value_for_key("passphrase")
    from airflow_task_runs.oci.provider_info import PROVIDER_INFO

    fields = PROVIDER_INFO["connection-types"][0]["conn-fields"]
    assert "passphrase" in fields
    assert fields["passphrase"]["schema"]["format"] == "password"
