"""The start operators live in their own modules: fetch-only DAGs do not import the sensor machinery."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_operator_modules_do_not_import_the_start_machinery():
    code = (
        "import sys, airflow.sdk; before = set(sys.modules); "
        "import airflow_task_runs.aws.operators, airflow_task_runs.ncp.operators; "
        "print(sorted(m for m in set(sys.modules) - before if m.startswith(('airflow_task_runs.core.starting', "
        "'airflow_task_runs.core.sensors', 'airflow.sdk.bases.resumablejobmixin', 'airflow.sdk.bases.sensor'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("module", "name", "home"),
    [
        ("airflow_task_runs.aws.operators", "HealthOmicsStartRunOperator", "airflow_task_runs.aws.start_run"),
        ("airflow_task_runs.ncp.operators", "NclueCreateTaskRunOperator", "airflow_task_runs.ncp.create_run"),
    ],
)
def test_the_start_operators_are_still_importable_from_operators(module, name, home):
    import importlib

    cls = getattr(importlib.import_module(module), name)
    assert cls is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchOperator'"):
        importlib.import_module(module).NoSuchOperator  # noqa: B018
