"""The provider as Airflow sees it: schema-valid metadata, connection forms, CLI listing, hook contract."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_task_runs.get_provider_info import get_provider_info

INFO = get_provider_info()
CONNECTION_TYPES = {c["connection-type"]: c for c in INFO["connection-types"]}


def test_provider_info_validates_against_airflows_own_schema():
    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(INFO, schema)
    assert INFO["package-name"] == "airflow-task-runs"


def test_entry_point_is_registered():
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_task_runs")]
    assert [ep.value for ep in eps] == ["airflow_task_runs.get_provider_info:get_provider_info"]


def test_every_listed_module_imports():
    for section in ("hooks", "sensors", "operators", "triggers"):
        for entry in INFO[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for link in INFO["extra-links"]:
        module, _, name = link.rpartition(".")
        assert hasattr(importlib.import_module(module), name), link


@pytest.fixture(scope="module")
def providers_manager():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    manager.initialize_providers_hooks()
    return manager


def test_providers_manager_knows_the_provider(providers_manager):
    assert "airflow-task-runs" in providers_manager.providers


@pytest.mark.parametrize("conn_type", sorted(CONNECTION_TYPES))
def test_connection_form_has_every_field_with_its_label(providers_manager, conn_type):
    declared = CONNECTION_TYPES[conn_type]
    widgets = providers_manager.connection_form_widgets
    for name, field in declared.get("conn-fields", {}).items():
        widget = widgets[f"extra__{conn_type}__{name}"]
        assert widget.field["schema"]["title"] == field["label"]
        assert widget.is_sensitive == (field["schema"].get("format") == "password")
    behaviour = providers_manager.field_behaviours[conn_type]
    assert behaviour["relabeling"] == declared["ui-field-behaviour"]["relabeling"]
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hook = ProvidersManagerTaskRuntime().hooks[conn_type]
    assert hook is not None
    assert hook.hook_class_name == declared["hook-class-name"]


@pytest.mark.parametrize("conn_type", sorted(CONNECTION_TYPES))
def test_hook_contract(conn_type):
    module, _, name = CONNECTION_TYPES[conn_type]["hook-class-name"].rpartition(".")
    hook_class = getattr(importlib.import_module(module), name)
    assert hook_class.conn_type == conn_type
    assert hook_class.hook_name
    assert hook_class.default_conn_name
    params = inspect.signature(hook_class.__init__).parameters
    assert hook_class.conn_name_attr in params
    assert params[hook_class.conn_name_attr].default == hook_class.default_conn_name
    assert "tuple[bool, str]" in str(inspect.signature(hook_class.test_connection).return_annotation)


def _airflow_cli(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
        timeout=180,
    ).stdout


def test_airflow_providers_cli_lists_the_provider_and_its_connection_types():
    assert "airflow-task-runs" in _airflow_cli("providers", "list", "--output", "json")
    hooks = json.loads(_airflow_cli("providers", "hooks", "--output", "json"))
    listed = {row["connection_type"] for row in hooks}
    assert set(CONNECTION_TYPES) <= listed
