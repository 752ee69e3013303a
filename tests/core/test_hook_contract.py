"""Every sensor's hook honours the core contract, and the core sensor on its own.

The contract is checked here, at test time, not on import: DAG files import sensor modules on
every parse and must not pay for the hooks (see benchmarks/import_cost.py).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import time
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

from airflow_task_runs.core.errors import RunFailedError, TaskRunsError
from airflow_task_runs.core.hooks import RunStatusHook
from airflow_task_runs.core.sensors import TaskRunSensor
from airflow_task_runs.core.states import RunState, RunStatus
from airflow_task_runs.core.triggers import TaskRunTrigger
from airflow_task_runs.testing.sensors import defer, task_context

CLOUDS = ("ncp", "oci", "aws", "alibaba")


def _concrete_sensors() -> list[type[TaskRunSensor]]:
    for cloud in CLOUDS:  # every module of every cloud: operators that wait live in several
        package = importlib.import_module(f"airflow_task_runs.{cloud}")
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"airflow_task_runs.{cloud}.{module.name}")
    found: list[type[TaskRunSensor]] = []
    todo: list[type] = [TaskRunSensor]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("airflow_task_runs.") and "status_kind" in dir(cls) and cls not in found:
            found.append(cls)
    return found


SENSORS = _concrete_sensors()


def _placeholder_kwargs(cls: type) -> dict[str, Any]:
    """Required constructor arguments along the class's MRO, filled with plain strings."""
    kwargs: dict[str, Any] = {"task_id": "probe"}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for name, param in inspect.signature(init).parameters.items():
            if name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            if param.default is inspect.Parameter.empty and name not in kwargs:
                kwargs[name] = f"probe-{name}".replace("_", "-")
    return kwargs


def test_every_cloud_has_sensors_in_the_walk():
    modules = {cls.__module__.split(".")[1] for cls in SENSORS}
    assert modules == set(CLOUDS), modules
    names = {cls.__name__ for cls in SENSORS}
    assert {"HealthOmicsStartRunOperator", "NclueCreateTaskRunOperator"} <= names, names
    assert len(SENSORS) >= 8


@pytest.mark.parametrize("sensor_cls", SENSORS, ids=lambda cls: cls.__name__)
def test_the_sensor_hook_honours_the_contract(sensor_cls):
    from airflow.sdk._shared.module_loading import import_string

    sensor = sensor_cls(**_placeholder_kwargs(sensor_cls))
    hook_cls = import_string(sensor.hook_class_path)
    hook = hook_cls(**sensor.hook_kwargs())
    assert isinstance(hook, RunStatusHook), f"{hook_cls.__name__} lacks part of RunStatusHook"
    assert sensor.status_kind in hook_cls.status_kinds, (sensor.status_kind, hook_cls.status_kinds)
    pair = hook.status_pair(sensor.status_kind)
    assert not inspect.iscoroutinefunction(pair.get), f"{pair.get.__name__} must be the sync method"
    assert inspect.iscoroutinefunction(pair.aget), f"{pair.aget.__name__} must be the async twin"
    ref = sensor.run_ref()
    for method in pair:  # both take exactly the sensor's run reference
        inspect.signature(method).bind(**ref)
    assert inspect.signature(pair.get).parameters.keys() == inspect.signature(pair.aget).parameters.keys()
    assert hook.batch_key(sensor.status_kind, ref) is None or hash(hook.batch_key(sensor.status_kind, ref))


def test_an_unknown_kind_names_the_kinds_the_hook_knows():
    from airflow_task_runs.oci.hooks import OciAiDataPlatformHook

    with pytest.raises(ValueError, match="has no status kind 'job'; it knows experiment_run, task_run"):
        OciAiDataPlatformHook().run_status("job", {})


# -- the core sensor on its own ----------------------------------------------------------------
class _RosProbe(TaskRunSensor["RosHook"]):
    """The smallest sensor: only what a cloud's sensor must say."""

    hook_class_path = "airflow_task_runs.alibaba.hooks.RosHook"
    status_kind = "ai_task"

    def __init__(self, *, ai_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ai_task_id = ai_task_id

    def hook_kwargs(self) -> dict[str, Any]:
        return {}

    def run_ref(self) -> dict[str, Any]:
        return {"ai_task_id": self.ai_task_id}


def _status(state: RunState, raw: str, **kwargs: Any) -> dict[str, Any]:
    return RunStatus(state=state, raw_status=raw, **kwargs).to_dict()


def _probe(**kwargs: Any) -> _RosProbe:
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return _RosProbe(task_id="probe", ai_task_id=kwargs.pop("ai_task_id", "t-1"), **kwargs)


def test_core_sensor_resumes_a_terminal_success_as_its_xcom():
    value = _probe().execute_complete(
        task_context(), {"event": "terminal", "status": _status(RunState.SUCCEEDED, "SUCCESS", details={"a": 1})}
    )
    assert value["state"] == "SUCCEEDED" and value["details"] == {"a": 1}


def test_core_sensor_fails_with_the_cloud_reason():
    event = {"event": "terminal", "status": _status(RunState.FAILED, "FAILURE", message="template invalid")}
    with pytest.raises(RunFailedError, match="template invalid"):
        _probe().execute_complete(task_context(), event)


def test_core_sensor_skips_a_skipped_run():
    with pytest.raises(AirflowSkipException, match="ended EXCLUDED"):
        event = {"event": "terminal", "status": _status(RunState.SKIPPED, "EXCLUDED")}
        _probe().execute_complete(task_context(), event)


def test_core_sensor_turns_the_trigger_timeout_into_a_sensor_timeout():
    with pytest.raises(AirflowSensorTimeout, match="was still RUNNING"):
        _probe().execute_complete(task_context(), {"event": "timeout", "message": "t-1 was still RUNNING"})


def test_core_sensor_refuses_a_terminal_event_that_is_not_terminal():
    with pytest.raises(TaskRunsError, match="non-terminal status"):
        event = {"event": "terminal", "status": _status(RunState.RUNNING, "RUNNING")}
        _probe().execute_complete(task_context(), event)


def test_core_sensor_reports_a_trigger_error_with_its_message():
    with pytest.raises(TaskRunsError, match="HTTP 403"):
        _probe().execute_complete(task_context(), {"event": "error", "message": "t-1: HTTP 403 Forbidden"})


def test_core_sensor_defers_with_its_kind_reference_and_deadline(task_runs_connections):
    task_id = task_runs_connections.alibaba.add_task(lifecycle=[("RUNNING", 0)])
    before = time.time()
    method, trigger = defer(_probe(ai_task_id=task_id, deferrable=True, timeout=40), task_context())
    assert method == "execute_complete"
    assert isinstance(trigger, TaskRunTrigger)
    assert (trigger.status_kind, trigger.run_ref) == ("ai_task", {"ai_task_id": task_id})
    assert trigger.hook_path == "airflow_task_runs.alibaba.hooks.RosHook"
    assert before + 40 <= trigger.deadline <= time.time() + 40


def test_core_sensor_does_not_defer_when_the_first_check_finds_the_run_over(task_runs_connections):
    task_id = task_runs_connections.alibaba.add_task(lifecycle=[("SUCCESS", 0)])
    value = _probe(ai_task_id=task_id, deferrable=True).execute(task_context())
    assert value["raw_status"] == "SUCCESS"


# -- the connection's rate limiter: one function for every hook ---------------------------------
def test_a_hooks_limiter_is_the_connections_at_its_rate_or_the_hooks_default():
    import uuid

    from airflow.sdk import Connection

    from airflow_task_runs.core.hooks import TaskRunHook, connection_rate_limiter

    class _Probe(TaskRunHook):
        conn_type = "probe"
        default_max_requests_per_second = 3.0

    unset, limited, unlimited = (f"probe_{name}_{uuid.uuid4().hex}" for name in ("unset", "limited", "unlimited"))
    hook = _Probe()
    for conn_id, extra, rate in ((unset, "{}", 3.0), (limited, '{"max_requests_per_second": "2.5"}', 2.5),
                                 (unlimited, '{"max_requests_per_second": 0}', None)):  # fmt: skip
        limiter = hook.rate_limiter(Connection(conn_id=conn_id, conn_type="probe", extra=extra))
        assert limiter.rate == rate and limiter.name == f"probe connection {conn_id!r}"
        assert connection_rate_limiter({}, conn_id, "probe") is limiter  # one per connection: the first rate holds
    assert connection_rate_limiter({}, limited, "other") is not hook.rate_limiter(Connection(conn_id=limited))


@pytest.mark.parametrize("value", ["fast", -1, [5]])
def test_a_bad_max_requests_per_second_names_the_field_and_the_fix(value):
    from airflow_task_runs.core.errors import ConnectionConfigError
    from airflow_task_runs.core.hooks import connection_rate_limiter

    with pytest.raises(ConnectionConfigError) as caught:
        connection_rate_limiter({"max_requests_per_second": value}, "probe_bad", "probe", 3.0)
    assert str(caught.value) == (
        f"Connection 'probe_bad': extra.max_requests_per_second is {value!r}; set a number > 0, or 0 for no limit"
    )
