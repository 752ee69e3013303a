"""Drive the provider's sensors in tests the way Airflow does, without a scheduler.

``run_sensor(sensor, params=...)`` runs a sensor to its end in its own mode (poke, reschedule
or deferrable) and returns its XCom value; ``run_deferred`` does the deferrable path (and
accepts a run that is already finished at the first check). Both render templated fields
with ``params`` first, as Airflow does, and call ``execute`` the way the task runner does.
``defer(sensor, context)`` stops at the deferral and returns the trigger rebuilt from what
``serialize()`` says (exactly what the triggerer would get); ``run_trigger`` runs it to its event.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from unittest import mock


def task_context(**extra: Any) -> dict[str, Any]:
    """A minimal execution context: a task instance stub that records XCom pushes."""
    ti = mock.MagicMock(name="ti")
    ti.get_first_reschedule_date.return_value = None
    return {"ti": ti, **extra}


def run_trigger(trigger: Any, timeout: float = 120.0) -> dict[str, Any]:
    """Run a trigger to its first event; return the event's payload."""

    async def first_event() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(first_event(), timeout))


def prepare(sensor: Any, context: dict[str, Any] | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Render the sensor's templated fields the way the task runner does before ``execute``.

    The context gets ``params`` (the DAG's and the task's defaults, overridden by ``params``,
    like a run's conf), ``ds``, ``ts``, ``logical_date``, ``run_id`` and ``task``, unless given.
    Literal values render to themselves, so calling this twice is harmless.
    """
    from datetime import datetime, timezone

    context = context if context is not None else task_context()
    defaults = {key: sensor.params[key] for key in sensor.params}  # ParamsDict resolves Param defaults
    context.setdefault("params", {**defaults, **(params or {})})
    now = datetime.now(timezone.utc)
    context.setdefault("logical_date", now)
    context.setdefault("ds", now.strftime("%Y-%m-%d"))
    context.setdefault("ds_nodash", now.strftime("%Y%m%d"))
    context.setdefault("ts", now.isoformat())
    context.setdefault("run_id", f"manual__{now.isoformat()}")
    context.setdefault("task", sensor)
    sensor.render_template_fields(context)
    return context


def execute(operator: Any, context: dict[str, Any]) -> Any:
    """``operator.execute(context)`` as the task runner calls it (no "outside of the Task Runner" warning)."""
    from airflow.sdk.bases.operator import ExecutorSafeguard

    return operator.execute(context, **{f"{type(operator).__name__}__sentinel": ExecutorSafeguard.sentinel_value})


def _rebuilt(deferred: Any) -> Any:
    """The trigger rebuilt from its serialized, JSON-round-tripped kwargs (what the triggerer gets)."""
    from airflow.sdk._shared.module_loading import import_string

    classpath, kwargs = deferred.trigger.serialize()
    return import_string(classpath)(**json.loads(json.dumps(kwargs)))


def defer(sensor: Any, context: dict[str, Any], params: dict[str, Any] | None = None) -> tuple[str, Any]:
    """(method to resume, trigger rebuilt from its serialized, JSON-round-tripped kwargs).

    Fails when the sensor does not defer (its run was already finished at the first check):
    use :func:`run_deferred` to accept both.
    """
    from airflow.sdk.exceptions import TaskDeferred

    context = prepare(sensor, context, params)
    try:
        execute(sensor, context)
    except TaskDeferred as deferred:
        return deferred.method_name, _rebuilt(deferred)
    raise AssertionError(f"{sensor.task_id} did not defer: its first check found the run finished")


def run_deferred(sensor: Any, context: dict[str, Any] | None = None, params: dict[str, Any] | None = None) -> Any:
    """The deferrable path end to end: render, execute, run the trigger, resume; return the XCom value.

    A run already finished at the first check does not defer: ``execute``'s value is returned.
    """
    from airflow.sdk.exceptions import TaskDeferred

    context = prepare(sensor, context, params)
    try:
        return execute(sensor, context)
    except TaskDeferred as deferred:
        return getattr(sensor, deferred.method_name)(context, run_trigger(_rebuilt(deferred)))


def run_sensor(
    sensor: Any,
    context: dict[str, Any] | None = None,
    max_reschedules: int = 50,
    params: dict[str, Any] | None = None,
) -> Any:
    """Run a sensor to its end in its own mode; return its XCom value or raise what it raises.

    poke: ``execute`` as is; reschedule: ``execute`` again after each reschedule (no waiting);
    deferrable: ``execute``, and if it defers, the trigger and ``execute_complete``.
    Templates are rendered first, with ``params`` over the DAG's defaults.
    """
    from airflow.sdk.exceptions import AirflowRescheduleException, TaskDeferred

    context = prepare(sensor, context, params)
    for _ in range(max_reschedules):
        try:
            return execute(sensor, context)
        except TaskDeferred as deferred:
            return getattr(sensor, deferred.method_name)(context, run_trigger(_rebuilt(deferred)))
        except AirflowRescheduleException:
            continue
    raise AssertionError(f"{sensor.task_id} was still rescheduling after {max_reschedules} tries")
