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


@pytest.mark.parametrize("library", ["botocore", "httpx", "urllib3"])
def test_child_loggers_created_later_are_redacted_too(library):
    """A record logged on a child logger that did not exist when the secrets were registered
    (``botocore.<new module>``) is redacted before its parent's handlers see it."""
    import uuid

    from airflow_task_runs.core.secrets import mask_secrets

    secret = f"late-logger-secret-{uuid.uuid4().hex}"
    mask_secrets(secret)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    parent = logging.getLogger(library)
    child = logging.getLogger(f"{library}.late_{uuid.uuid4().hex[:8]}.module")  # created after mask_secrets
    old_level = child.level
    parent.addHandler(handler)
    child.setLevel(logging.DEBUG)
    try:
        child.debug("signing with %s", secret)
        try:
            raise ValueError(f"bad key {secret}")
        except ValueError:
            child.exception("failed")
    finally:
        parent.removeHandler(handler)
        child.setLevel(old_level)
    output = stream.getvalue()
    assert "signing with ***" in output and "bad key ***" in output, output
    assert secret not in output


def test_records_rebuilt_from_a_dict_still_work():
    """structlog's ProcessorFormatter rebuilds every record with ``logging.makeLogRecord``, whose
    factory call has no logger name: the redacting factory must let it through (it once broke
    every task log of a real deployment)."""
    from airflow_task_runs.core.secrets import mask_secrets

    mask_secrets("rebuilt-record-secret-0123456789")
    record = logging.makeLogRecord({"name": "botocore.endpoint", "msg": "plain %s", "args": ("text",)})
    assert record.getMessage() == "plain text"


def test_exception_objects_are_redacted_for_handlers_that_render_exc_info():
    """structlog (Airflow's task logs) renders a record's exception from the live ``exc_info``,
    not from ``exc_text``: a secret in the exception's message (or its cause's) must not reach
    such a handler either, and the traceback itself must still be there, redacted."""
    import uuid

    import structlog

    from airflow_task_runs.core.secrets import mask_secrets

    secret = f"exc-info-secret-{uuid.uuid4().hex}"
    mask_secrets(secret)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    logger = logging.getLogger(f"botocore.exc_{uuid.uuid4().hex[:8]}")
    logger.addHandler(handler)
    try:
        try:
            try:
                raise KeyError(f"cause carries {secret}")
            except KeyError as cause:
                raise ValueError(f"signature mismatch for {secret}") from cause
        except ValueError:
            logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert secret not in output, output
    assert "request failed" in output and "signature mismatch for ***" in output and "cause carries ***" in output
    assert "Traceback" in output, "the traceback must survive, redacted"
