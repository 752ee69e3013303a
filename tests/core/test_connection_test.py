"""``test_connection()`` of every HTTP cloud: one attempt, and a failure that names the cloud, the
host and what to check (what ``airflow connections test`` and the UI's Test button show)."""

from __future__ import annotations

import json
import socket

import pytest

from airflow_task_runs.alibaba.hooks import ALIBABA_REGIONS, RosHook
from airflow_task_runs.ncp.hooks import NCP_REGIONS, NclueHook
from airflow_task_runs.oci.hooks import OciAiDataPlatformHook


def closed_port_url() -> str:
    """A 127.0.0.1 URL where nothing listens (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def set_conn(monkeypatch, conn_id: str, conn: dict) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def ncp_conn(emulator, **changes) -> dict:
    conn = emulator.ncp.airflow_connection()
    extra = {**conn["extra"], **changes.pop("extra", {})}
    return {**conn, **changes, "extra": extra}


def ros_conn(emulator, **changes) -> dict:
    conn = emulator.alibaba.airflow_connection()
    extra = {**conn["extra"], **changes.pop("extra", {})}
    return {**conn, **changes, "extra": extra}


def test_ncp_unreachable_host_names_cloud_host_and_field(task_runs_connections, monkeypatch):
    url = closed_port_url()
    set_conn(monkeypatch, "ncp_down", ncp_conn(task_runs_connections, host=url))
    ok, message = NclueHook("ncp_down").test_connection()
    assert not ok
    assert message.startswith(f"NCP NCLUE: cannot reach {url}: connection refused"), message
    assert "API Gateway URL (host)" in message


def test_alibaba_unreachable_endpoint_names_cloud_host_and_field(task_runs_connections, monkeypatch):
    url = closed_port_url()
    set_conn(monkeypatch, "ros_down", ros_conn(task_runs_connections, extra={"endpoint": url}))
    ok, message = RosHook("ros_down").test_connection()
    assert not ok
    assert message.startswith(f"Alibaba Cloud ROS: cannot reach {url}"), message
    assert "Endpoint override (extra endpoint)" in message


def test_unresolvable_host_says_so(task_runs_connections, monkeypatch):
    set_conn(monkeypatch, "ncp_dns", ncp_conn(task_runs_connections, host="https://nclue.invalid"))
    ok, message = NclueHook("ncp_dns").test_connection()
    assert not ok
    assert message.startswith("NCP NCLUE: cannot reach https://nclue.invalid: cannot resolve the host name"), message


def test_a_connection_test_makes_one_attempt_not_minutes_of_retries(task_runs_connections, monkeypatch):
    """A 503 is retried for up to retry_max_elapsed (120 s) in a task; a connection test answers at once."""
    ncp = task_runs_connections.ncp
    set_conn(monkeypatch, "ncp_busy", ncp_conn(task_runs_connections, extra={"retry_backoff_initial": 5}))
    ncp.reset_log()
    ncp.inject("status", times=5, status=503, match="/api/v1/task-runs")
    ok, message = NclueHook("ncp_busy").test_connection()
    assert not ok
    assert len(ncp.requests_to("/api/v1/task-runs")) == 1
    assert message.startswith(f"NCP NCLUE at {ncp.url} answered HTTP 503"), message
    ncp.clear_faults()


def test_ncp_wrong_secret_names_the_fields_not_a_bare_gateway_code(task_runs_connections, monkeypatch):
    set_conn(monkeypatch, "ncp_wrong", ncp_conn(task_runs_connections, password="not-the-secret"))
    ok, message = NclueHook("ncp_wrong").test_connection()
    assert not ok
    assert "HTTP 401 200" not in message and "200" not in message.replace(task_runs_connections.ncp.url, "")
    assert "refused the credentials: Authentication Failed" in message, message
    assert "Check Access Key ID (login) and Secret Key (password)" in message
    assert "not-the-secret" not in message


def test_ncp_object_storage_region_is_checked_with_the_valid_ones_listed(task_runs_connections, monkeypatch):
    set_conn(monkeypatch, "ncp_region", ncp_conn(task_runs_connections, extra={"object_storage_region": "kr-standrad"}))
    ok, message = NclueHook("ncp_region").test_connection()
    assert not ok
    assert "Object Storage region (extra object_storage_region) is 'kr-standrad'" in message
    assert all(region in message for region in NCP_REGIONS), message


def test_alibaba_region_id_is_checked_with_the_valid_ones_listed(task_runs_connections, monkeypatch):
    set_conn(monkeypatch, "ros_region", ros_conn(task_runs_connections, extra={"region_id": "cn-hangzou"}))
    ok, message = RosHook("ros_region").test_connection()
    assert not ok
    assert "Region ID (extra region_id) is 'cn-hangzou'" in message
    assert all(region in message for region in ALIBABA_REGIONS), message
    set_conn(
        monkeypatch,
        "ros_new_region",
        ros_conn(task_runs_connections, extra={"region_id": "xx-new-1", "allow_any_region": True}),
    )
    assert RosHook("ros_new_region").test_connection()[0]


def test_alibaba_wrong_secret_names_the_fields(task_runs_connections, monkeypatch):
    set_conn(monkeypatch, "ros_wrong", ros_conn(task_runs_connections, password="not-the-secret"))
    ok, message = RosHook("ros_wrong").test_connection()
    assert not ok
    assert message.startswith(f"Alibaba Cloud ROS at {task_runs_connections.alibaba.url} refused the credentials")
    assert "AccessKey Secret (password)" in message and "not-the-secret" not in message


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [(None, "set its passphrase (extra passphrase)"), ("wrong horse", "check extra passphrase")],
)
def test_oci_pass_phrase_messages_use_the_documented_field_name(task_runs_connections, monkeypatch, phrase, expected):
    from cryptography.hazmat.primitives import serialization

    from airflow_task_runs.oci.auth import load_private_key

    conn = task_runs_connections.oci.airflow_connection()
    conn["password"] = (
        load_private_key(conn["password"])
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"correct horse"),
        )
        .decode()
    )
    if phrase:
        conn["extra"] = {**conn["extra"], "passphrase": phrase}
    set_conn(monkeypatch, "oci_phrase", conn)
    ok, message = OciAiDataPlatformHook("oci_phrase").test_connection()
    assert not ok
    assert "passphrase (extra passphrase)" in message and expected in message, message
    assert "pass_phrase" not in message


def aws_conn(emulator, **extra) -> dict:
    conn = emulator.aws.airflow_connection()
    return {**conn, "extra": {**conn["extra"], **extra}}


def test_aws_unreachable_endpoint_names_cloud_host_and_field_after_one_attempt(task_runs_connections, monkeypatch):
    from airflow_task_runs.aws.hooks import HealthOmicsHook

    url = closed_port_url()
    set_conn(monkeypatch, "aws_down", aws_conn(task_runs_connections, endpoint_url=url))
    ok, message = HealthOmicsHook(aws_conn_id="aws_down").test_connection()
    assert not ok
    assert message.startswith(f"AWS HealthOmics: cannot reach {url}"), message
    assert "region_name / endpoint_url (extra)" in message


def test_aws_wrong_secret_names_what_to_check(task_runs_connections, monkeypatch):
    from airflow_task_runs.aws.hooks import HealthOmicsHook

    aws = task_runs_connections.aws
    set_conn(monkeypatch, "aws_wrong", {**aws_conn(task_runs_connections), "password": "wrong-secret-value"})
    aws.reset_log()
    ok, message = HealthOmicsHook(aws_conn_id="aws_wrong").test_connection()
    assert not ok
    assert message.startswith(f"AWS HealthOmics at {aws.url} refused the credentials"), message
    assert "aws connection's credentials" in message and "wrong-secret-value" not in message
    assert len(aws.requests) == 1
