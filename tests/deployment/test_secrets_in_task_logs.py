"""No secret of any cloud in a real task or trigger log (issue 9 item 11), with the libraries at DEBUG.

Reuses the session's deployment (tests/deployment/test_real_airflow.py runs every example DAG
first; run alone, this test runs those still missing). The deployment's triggerer logs at DEBUG
(testing/deployment.py; the other components at INFO), and the test checks that library DEBUG
records (botocore's signing, canonical requests and headers) reached the trigger logs: a grep
of logs without them would prove nothing. The task processes log at INFO, where the libraries
write little; the same redaction at DEBUG in-process is tests/core/test_secrets_in_logs.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_real_airflow import EXAMPLE_DAGS, wait_for_run

from airflow_task_runs.core.secrets import LIBRARY_LOGGERS

pytestmark = pytest.mark.deployment
_MIN = 8  # shorter values (a region, "x") would match by chance


def _secrets(emu, env: dict[str, str]) -> dict[str, str]:
    """{what: value} of every credential the deployment's tasks and triggers hold."""
    found = {
        "NCP secret key": emu.ncp.secret_key,
        "AWS secret key": emu.aws.secret_key,
        "S3 (moto) secret key": emu.s3.secret_key,
        "ROS AccessKey secret": emu.alibaba.access_key_secret,
        "ROS STS secret": emu.alibaba.sts_access_key_secret,
        "ROS STS token": emu.alibaba.sts_token,
    }
    body = [line.strip() for line in emu.oci.private_key_pem.splitlines() if line.strip() and "-----" not in line]
    found.update({f"OCI private key, line {n}": line for n, line in enumerate(body, 1)})
    for name, value in env.items():  # whatever else the connections carry
        if name.startswith("AIRFLOW_CONN_"):
            password = json.loads(value).get("password") or ""
            for n, line in enumerate(password.splitlines(), 1):
                if "-----" not in line:
                    found[f"{name} password, line {n}"] = line.strip()
        elif name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            found[name] = value
    return {what: value for what, value in found.items() if len(value) >= _MIN}


def _library_debug_records(path: Path) -> set[str]:
    """Loggers of the libraries with a DEBUG record in this (JSON lines) log file."""
    loggers = set()
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        logger = str(record.get("logger", ""))
        if str(record.get("level", "")).lower() == "debug" and logger.split(".")[0] in LIBRARY_LOGGERS:
            loggers.add(logger.split(".")[0])
    return loggers


def test_no_secret_in_any_task_or_trigger_log(airflow_deployment, task_runs_emulator):
    deployment = airflow_deployment
    logs = deployment.home / "logs"
    ran = {p.name.removeprefix("dag_id=") for p in logs.glob("dag_id=*")} if logs.is_dir() else set()
    missing = [dag_id for dag_id in EXAMPLE_DAGS if dag_id not in ran]
    if missing:
        deployment.wait_for_dags(missing)
        for dag_id, run_id in [(dag_id, deployment.trigger(dag_id)) for dag_id in missing]:
            wait_for_run(deployment, dag_id, run_id)

    files = [p for p in logs.rglob("*") if p.is_file()]
    files += [deployment.log_path(name) for name in deployment.processes]  # the components' own output
    task_logs = [p for p in files if "dag_id=" in str(p)]
    assert len(task_logs) >= len(EXAMPLE_DAGS), sorted(map(str, files))
    secrets = _secrets(task_runs_emulator, deployment.env)
    leaks = [
        f"{path.relative_to(deployment.home)}: {what}"
        for path in files
        for text in [path.read_text(errors="replace")]
        for what, value in secrets.items()
        if value in text
    ]
    assert not leaks, "secrets in logs:\n" + "\n".join(leaks)

    # not hollow: the libraries did log at DEBUG into the trigger logs (botocore: HealthOmics)
    trigger_logs = [p for p in task_logs if ".log.trigger." in p.name]
    debug = set().union(*(_library_debug_records(p) for p in trigger_logs))
    assert "botocore" in debug, f"library DEBUG records in trigger logs only from {sorted(debug)}"
