"""RosFetchAITaskOutputOperator: TaskOutput to JSON / YAML files (atomically) or XCom, against the emulator."""

from __future__ import annotations

import json

import pytest
import yaml

from airflow_task_runs.alibaba.links import RosAITaskLink
from airflow_task_runs.alibaba.operators import RosFetchAITaskOutputOperator
from airflow_task_runs.alibaba.sensors import RosAITaskSensor
from airflow_task_runs.core.errors import (
    ApiError,
    OutputTooLargeError,
    RunFailedError,
    RunNotFinishedError,
    TaskRunsError,
)

TEMPLATE = {
    "ROSTemplateFormatVersion": "2015-09-01",
    "Description": "Grüße ✓ 東京",
    "Resources": {"Vpc": {"Type": "ALIYUN::ECS::VPC", "Properties": {"CidrBlock": "10.0.0.0/8"}}},
}


@pytest.fixture
def emu(task_runs_connections):
    return task_runs_connections.alibaba


def _context(mocker):
    return {"ti": mocker.MagicMock()}


def _fetch(ai_task_id, mocker, **kwargs):
    return RosFetchAITaskOutputOperator(task_id="fetch", ai_task_id=ai_task_id, **kwargs).execute(_context(mocker))


def _done(emu, **kwargs):
    if "output_size" not in kwargs:
        kwargs.setdefault("output", {"Result": TEMPLATE, "Notes": ["fixed VpcName"]})
    return emu.add_task(lifecycle=[("SUCCESS", 0)], **kwargs)


def _no_partials(folder):
    assert not [p for p in folder.rglob("*") if p.name.endswith(".partial")]


# -- destinations ------------------------------------------------------------------------------
def test_json_file(emu, mocker, output_dir):
    task_id = _done(emu)
    result = _fetch(task_id, mocker, destination=f"file://{output_dir}/out.json")
    written = output_dir / "out.json"
    assert json.loads(written.read_text("utf-8")) == {"Result": TEMPLATE, "Notes": ["fixed VpcName"]}
    assert result["uri"].endswith("out.json") and result["format"] == "json"
    assert result["size"] == written.stat().st_size
    assert result["ai_task_id"] == task_id and result["task_type"] == "GenerateTemplate" and result["request_id"]
    _no_partials(output_dir)


@pytest.mark.parametrize("name", ["template.yaml", "template.yml", "TEMPLATE.YAML"])
def test_yaml_file_of_the_template(emu, mocker, output_dir, name):
    task_id = _done(emu, task_type="FixTemplate")
    result = _fetch(task_id, mocker, destination=f"file://{output_dir}/{name}", output_field="Result")
    text = (output_dir / name).read_text("utf-8")
    assert yaml.safe_load(text) == TEMPLATE
    assert text.startswith("ROSTemplateFormatVersion: '2015-09-01'")  # key order kept, not JSON
    assert "Grüße ✓ 東京" in text
    assert result["format"] == "yaml"
    _no_partials(output_dir)


@pytest.mark.parametrize(
    ("output_format", "ext", "load"), [(None, "json", json.loads), ("yaml", "yaml", yaml.safe_load)]
)
def test_folder_destination_gets_a_sensible_name(emu, mocker, output_dir, output_format, ext, load):
    task_id = _done(emu, task_type="FixTemplate")
    result = _fetch(task_id, mocker, destination=f"file://{output_dir}/templates/", output_format=output_format)
    written = output_dir / "templates" / f"ros-ai-task-{task_id}-FixTemplate.{ext}"
    assert result["uri"].endswith(written.name)
    assert load(written.read_text("utf-8"))["Result"] == TEMPLATE


def test_existing_folder_without_slash_is_a_folder(emu, mocker, output_dir):
    task_id = _done(emu)
    _fetch(task_id, mocker, destination=f"file://{output_dir}")
    assert (output_dir / f"ros-ai-task-{task_id}-GenerateTemplate.json").is_file()


def test_template_given_as_text_is_written_unchanged(emu, mocker, output_dir):
    body = "ROSTemplateFormatVersion: '2015-09-01'\n# a comment ROS wrote\nResources: {}\n"
    task_id = _done(emu, output={"Result": body})
    _fetch(task_id, mocker, destination=f"file://{output_dir}/t.yaml", output_field="Result")
    assert (output_dir / "t.yaml").read_text("utf-8") == body


def test_large_output_to_file(emu, mocker, output_dir):
    task_id = _done(emu, output_size=6 * 1024 * 1024)
    result = _fetch(task_id, mocker, destination=f"file://{output_dir}/big.json")
    assert result["size"] >= 6 * 1024 * 1024
    assert json.loads((output_dir / "big.json").read_bytes())["Result"]["ROSTemplateFormatVersion"] == "2015-09-01"


def test_unknown_output_field_names_the_fields_there_are(emu, mocker):
    with pytest.raises(TaskRunsError, match=r"no field 'Template' \(it has: Notes, Result\)"):
        _fetch(_done(emu), mocker, output_field="Template")


def test_bad_output_format_is_refused_at_parse_time():
    with pytest.raises(ValueError, match="output_format 'xml'"):
        RosFetchAITaskOutputOperator(task_id="x", ai_task_id="t-1", output_format="xml")


# -- XCom --------------------------------------------------------------------------------------
def test_xcom_gets_the_output(emu, mocker):
    assert _fetch(_done(emu), mocker) == {"Result": TEMPLATE, "Notes": ["fixed VpcName"]}
    assert _fetch(_done(emu), mocker, output_field="Result") == TEMPLATE


def test_xcom_size_guard_names_destination(emu, mocker):
    task_id = _done(emu, output_size=2 * 1024 * 1024)
    with pytest.raises(OutputTooLargeError, match="destination="):
        _fetch(task_id, mocker)


# -- not succeeded -----------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["PENDING", "WAITING", "RUNNING"])
def test_unfinished_task_is_a_clear_error(emu, mocker, status):
    task_id = emu.add_task(lifecycle=[(status, 0)], status_reason="generating")
    with pytest.raises(RunNotFinishedError, match=rf"{task_id} is {status} \(generating\), not SUCCESS"):
        _fetch(task_id, mocker)


def test_failed_task_carries_its_reason(emu, mocker, output_dir):
    task_id = emu.add_task(lifecycle=[("FAILURE", 0)], status_reason="Handler execution unexpected failure")
    with pytest.raises(RunFailedError, match=r"FAILURE.*Handler execution unexpected failure"):
        _fetch(task_id, mocker, destination=f"file://{output_dir}/x.json")
    assert list(output_dir.iterdir()) == []


def test_200_with_error_body_fails_the_fetch(emu, mocker):
    task_id = emu.add_task(body_error=("Forbidden", "You are not authorized to complete this action."))
    with pytest.raises(ApiError, match="Forbidden"):
        _fetch(task_id, mocker)


# -- the whole flow ----------------------------------------------------------------------------
def test_output_is_asked_for_only_by_the_fetch(emu, mocker):
    task_id = emu.add_task(lifecycle=[("PENDING", 1), ("RUNNING", 1), ("SUCCESS", 0)])
    ti = mocker.MagicMock()
    ti.get_first_reschedule_date.return_value = None
    RosAITaskSensor(task_id="wait", ai_task_id=task_id, poke_interval=0.05).execute({"ti": ti})
    _fetch(task_id, mocker)
    options = [r.query["OutputOption"] for r in emu.requests_for(task_id)]
    assert options == ["Disabled", "Disabled", "Disabled", "Enabled"]


def test_console_link_is_pushed(emu, mocker):
    context = _context(mocker)
    task_id = _done(emu)
    RosFetchAITaskOutputOperator(task_id="fetch", ai_task_id=task_id).execute(context)
    context["ti"].xcom_push.assert_any_call(
        key=RosAITaskLink().xcom_key, value=f"https://ros.console.aliyun.com/cn-hangzhou/ai-task/{task_id}"
    )


def test_templated_fields():
    assert set(RosFetchAITaskOutputOperator.template_fields) >= {"ai_task_id", "destination", "region_id"}
