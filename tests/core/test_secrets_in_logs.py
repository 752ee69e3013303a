"""No secret of any cloud reaches any log, at any level: every library logging at DEBUG, every cloud called.

botocore logs its canonical request (with ``x-amz-security-token``) and each request's headers
at DEBUG; a handler that is not Airflow's (this test's own, on the root logger) must still see
none of the connection's secrets.
"""

from __future__ import annotations

import io
import json
import logging

import pytest

from airflow_task_runs.testing.sensors import task_context

SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE-session-token-0123456789abcdefSECRET"
PASSPHRASE = "oci-pass-phrase-SECRET-0123456789"


@pytest.fixture
def debug_logs(capsys):
    """Every library logger at DEBUG into a plain handler of its own; returns all output so far.

    The handler sits on the libraries' loggers, not on the root (Airflow's logging set-up
    replaces the root's handlers when it first runs).
    """
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    names = ("botocore", "boto3", "urllib3", "httpx", "httpcore", "aiobotocore", "airflow_task_runs", "airflow")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger(name).addHandler(handler)
    try:
        yield lambda: stream.getvalue() + "".join(capsys.readouterr())
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
            logging.getLogger(name).removeHandler(handler)


def _secret_connections(emu, monkeypatch) -> dict[str, list[str]]:
    """Connections carrying every kind of secret each cloud takes; {cloud: [its secret values]}."""
    from cryptography.hazmat.primitives import serialization

    oci = emu.oci.airflow_connection()
    key = serialization.load_pem_private_key(emu.oci.private_key_pem.encode(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    ).decode()
    oci.update(password=encrypted)
    oci["extra"]["passphrase"] = PASSPHRASE
    ros = emu.alibaba.airflow_connection()
    ros.update(login=emu.alibaba.sts_access_key_id, password=emu.alibaba.sts_access_key_secret)
    ros["extra"]["security_token"] = emu.alibaba.sts_token
    aws = emu.aws.airflow_connection()
    aws["extra"]["aws_session_token"] = SESSION_TOKEN
    connections = {
        "secret_ncp": emu.ncp.airflow_connection(),
        "secret_oci": oci,
        "secret_ros": ros,
        "secret_aws": aws,
    }
    for conn_id, conn in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    pem_lines = [line for line in encrypted.splitlines() if len(line) > 20 and "-----" not in line]
    return {
        "ncp": [emu.ncp.secret_key],
        "oci": [PASSPHRASE, *pem_lines],
        "ros": [emu.alibaba.sts_access_key_secret, emu.alibaba.sts_token],
        "aws": [emu.aws.secret_key, SESSION_TOKEN],
    }


def test_no_secret_in_any_log_at_debug(task_runs_connections, monkeypatch, debug_logs, tmp_path):
    from airflow_task_runs.alibaba.hooks import RosHook
    from airflow_task_runs.alibaba.operators import RosFetchAITaskOutputOperator
    from airflow_task_runs.aws.hooks import HealthOmicsHook
    from airflow_task_runs.aws.operators import HealthOmicsFetchTaskLogOperator
    from airflow_task_runs.ncp.hooks import NclueHook
    from airflow_task_runs.ncp.operators import NclueFetchTaskRunResultOperator
    from airflow_task_runs.oci.hooks import OciAiDataPlatformHook
    from airflow_task_runs.testing.oci import PLATFORM_ID, WORKSPACE_KEY

    emu = task_runs_connections
    secrets = _secret_connections(emu, monkeypatch)
    ncp_run = emu.ncp.add_run(lifecycle=[("completed", 0)], result=b"a,b\n1,2\n")
    oci_run = emu.oci.add_task_run(lifecycle=["SUCCESS"])
    ros_task = emu.alibaba.add_task(lifecycle=[("SUCCESS", 0)])
    aws_run = emu.aws.add_run(lifecycle=[("COMPLETED", 0)])
    aws_task = emu.aws.add_task(aws_run, lifecycle=[("COMPLETED", 0)], log_lines=["hello", "world"])

    # every cloud: a status call, a fetch, an error (a retried 503 logs its warning too)
    emu.ncp.inject("status", status=503, match=f"/api/v1/task-runs/{ncp_run}")
    assert NclueHook(ncp_conn_id="secret_ncp").get_status(ncp_run).raw_status == "completed"
    NclueFetchTaskRunResultOperator(
        task_id="f", run_id=ncp_run, destination=f"file://{tmp_path}/ncp/", ncp_conn_id="secret_ncp"
    ).execute(task_context())
    status = OciAiDataPlatformHook(oci_conn_id="secret_oci").get_task_run_status(PLATFORM_ID, WORKSPACE_KEY, oci_run)
    assert status.raw_status == "SUCCESS"
    assert RosHook(alibaba_ros_conn_id="secret_ros").get_status(ros_task).raw_status == "SUCCESS"
    RosFetchAITaskOutputOperator(
        task_id="f", ai_task_id=ros_task, destination=f"file://{tmp_path}/ros.json", alibaba_ros_conn_id="secret_ros"
    ).execute(task_context())
    assert HealthOmicsHook(aws_conn_id="secret_aws").get_task_status(aws_run, aws_task).raw_status == "COMPLETED"
    HealthOmicsFetchTaskLogOperator(
        task_id="f",
        run_id=aws_run,
        run_task_id=aws_task,
        destination=f"file://{tmp_path}/aws/",
        aws_conn_id="secret_aws",
    ).execute(task_context())

    text = debug_logs()
    assert "CanonicalRequest" in text  # botocore did log at DEBUG: the filter, not silence, keeps it clean
    assert "x-amz-security-token:***" in text
    for cloud, values in secrets.items():
        for value in values:
            assert value not in text, f"a {cloud} secret reached the log"
