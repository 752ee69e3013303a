"""Ids stay one URL path segment, for every cloud: refused by name at DAG parse (literals) and before any call."""

from __future__ import annotations

import pytest

from airflow_task_runs.core.errors import InvalidIdError
from airflow_task_runs.core.ids import check_literal_ids, path_segment

HOSTILE = ["", " ", ".", "..", "../x", "a/b", "a\\b", "run\n1", "tab\there", "nul\x00", " padded"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_ids_are_refused_naming_the_parameter(value):
    with pytest.raises(InvalidIdError, match=r"^task_run_key "):
        path_segment(value, "task_run_key")


@pytest.mark.parametrize("value", ["1234567", "tr-abc_DEF.1", "t-asasas****", "ocid1.aidataplatform.oc1..x", "..."])
def test_ordinary_ids_pass_unchanged(value):
    assert path_segment(value, "run_id") == value


def test_invalid_id_is_also_a_value_error():
    # callers that caught ValueError for an empty id keep working
    with pytest.raises(ValueError, match="run_id is empty: pass the id"):
        path_segment("", "run_id", "pass the id")


def test_templated_ids_wait_for_run_time_and_literals_are_checked_now():
    check_literal_ids(run_id="{{ params.run_id }}", other="{% if x %}..{% endif %}", absent=None)
    with pytest.raises(InvalidIdError, match=r"run_task_id '\.\.'"):
        check_literal_ids(run_id="1", run_task_id="..")


def _constructors():
    from airflow_task_runs.alibaba.operators import RosFetchAITaskOutputOperator
    from airflow_task_runs.alibaba.sensors import RosAITaskSensor
    from airflow_task_runs.aws.operators import (
        HealthOmicsCancelRunOperator,
        HealthOmicsFetchTaskLogOperator,
        HealthOmicsGetRunTaskOperator,
        HealthOmicsListRunOutputsOperator,
    )
    from airflow_task_runs.aws.sensors import HealthOmicsRunSensor, HealthOmicsRunTaskSensor
    from airflow_task_runs.ncp.operators import NclueCancelTaskRunOperator, NclueFetchTaskRunResultOperator
    from airflow_task_runs.ncp.sensors import NclueTaskRunSensor
    from airflow_task_runs.oci.operators import OciFetchTaskRunOutputOperator, OciGetExperimentRunOperator
    from airflow_task_runs.oci.sensors import OciMlflowRunSensor, OciTaskRunSensor

    oci = {"ai_data_platform_id": "ocid1.aidataplatform.oc1..p", "workspace_key": "ws"}
    return [
        (NclueTaskRunSensor, {"run_id": "r"}, "run_id"),
        (NclueFetchTaskRunResultOperator, {"run_id": "r"}, "run_id"),
        (NclueCancelTaskRunOperator, {"run_id": "r"}, "run_id"),
        (OciTaskRunSensor, {**oci, "task_run_key": "k"}, "task_run_key"),
        (OciTaskRunSensor, {**oci, "task_run_key": "k"}, "workspace_key"),
        (OciFetchTaskRunOutputOperator, {**oci, "task_run_key": "k"}, "task_run_key"),
        (OciMlflowRunSensor, {**oci, "run_id": "r"}, "run_id"),
        (OciGetExperimentRunOperator, {**oci, "run_id": "r"}, "ai_data_platform_id"),
        (HealthOmicsRunSensor, {"run_id": "1"}, "run_id"),
        (HealthOmicsRunTaskSensor, {"run_id": "1", "run_task_id": "2"}, "run_task_id"),
        (HealthOmicsGetRunTaskOperator, {"run_id": "1", "run_task_id": "2"}, "run_id"),
        (HealthOmicsFetchTaskLogOperator, {"run_id": "1", "run_task_id": "2"}, "run_task_id"),
        (HealthOmicsListRunOutputsOperator, {"run_id": "1"}, "run_id"),
        (HealthOmicsCancelRunOperator, {"run_id": "1"}, "run_id"),
        (RosAITaskSensor, {"ai_task_id": "t-1"}, "ai_task_id"),
        (RosFetchAITaskOutputOperator, {"ai_task_id": "t-1"}, "ai_task_id"),
    ]


@pytest.mark.parametrize(("cls", "kwargs", "param"), _constructors(), ids=lambda v: getattr(v, "__name__", str(v)))
def test_literal_hostile_id_fails_when_the_dag_is_parsed(cls, kwargs, param):
    cls(task_id="t", **kwargs)  # the good ones construct
    cls(task_id="t", **{**kwargs, param: "{{ dag_run.conf['id'] }}"})  # templated: checked at run time
    with pytest.raises(InvalidIdError, match=rf"^{param} '\.\.'"):
        cls(task_id="t", **{**kwargs, param: ".."})


def test_rendered_hostile_ids_never_reach_any_cloud(task_runs_connections):
    """The review's cases: run_id='..' sent GET /api/v1; an OCI '..' sent the signed POST elsewhere."""
    from airflow_task_runs.alibaba.hooks import RosHook
    from airflow_task_runs.aws.hooks import HealthOmicsHook
    from airflow_task_runs.ncp.hooks import NclueHook
    from airflow_task_runs.oci.hooks import OciAiDataPlatformHook
    from airflow_task_runs.testing.oci import PLATFORM_ID, WORKSPACE_KEY

    emu = task_runs_connections
    for server in emu.clouds.values():
        server.reset_log()
    calls = [
        (lambda: NclueHook().get_status(".."), "run_id"),
        (lambda: OciAiDataPlatformHook().fetch_task_run_output(PLATFORM_ID, WORKSPACE_KEY, "..", "o"), "task_run_key"),
        (lambda: OciAiDataPlatformHook().get_task_run_status(PLATFORM_ID, "a/b", "k"), "workspace_key"),
        (lambda: HealthOmicsHook().get_task_status("1", "../../../x"), "run_task_id"),
        (lambda: HealthOmicsHook().get_run_status("."), "run_id"),
        (lambda: RosHook().get_status("t-1\r\nx"), "ai_task_id"),
    ]
    for call, param in calls:
        with pytest.raises(InvalidIdError, match=rf"^{param} "):
            call()
    assert [r for server in emu.clouds.values() for r in server.requests] == []
