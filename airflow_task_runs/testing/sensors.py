"""Drive the provider's sensors in tests the way Airflow does, without a scheduler.

``defer(sensor, context)`` runs ``execute`` until it defers and rebuilds the trigger from
what ``serialize()`` says (exactly what the triggerer would get); ``run_trigger`` runs it
to its event; ``run_deferred`` does both and resumes the sensor with the event.
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


def defer(sensor: Any, context: dict[str, Any]) -> tuple[str, Any]:
    """(method to resume, trigger rebuilt from its serialized, JSON-round-tripped kwargs)."""
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.exceptions import TaskDeferred

    try:
        sensor.execute(context)
    except TaskDeferred as deferred:
        classpath, kwargs = deferred.trigger.serialize()
        rebuilt = import_string(classpath)(**json.loads(json.dumps(kwargs)))
        return deferred.method_name, rebuilt
    raise AssertionError(f"{sensor.task_id} did not defer")


def run_deferred(sensor: Any, context: dict[str, Any] | None = None) -> Any:
    """Defer, run the trigger, resume the sensor with its event: the deferrable path end to end."""
    context = context or task_context()
    method, trigger = defer(sensor, context)
    return getattr(sensor, method)(context, run_trigger(trigger))


def run_sensor(sensor: Any, context: dict[str, Any] | None = None, max_reschedules: int = 50) -> Any:
    """Run a sensor to its end in its own mode; return its XCom value or raise what it raises.

    poke: ``execute`` as is; reschedule: ``execute`` again after each reschedule (no waiting);
    deferrable: ``execute``, and if it defers, the trigger and ``execute_complete``.
    """
    from airflow.sdk.exceptions import AirflowRescheduleException, TaskDeferred

    context = context or task_context()
    for _ in range(max_reschedules):
        try:
            return sensor.execute(context)
        except TaskDeferred as deferred:
            from airflow.sdk._shared.module_loading import import_string

            classpath, kwargs = deferred.trigger.serialize()
            trigger = import_string(classpath)(**json.loads(json.dumps(kwargs)))
            return getattr(sensor, deferred.method_name)(context, run_trigger(trigger))
        except AirflowRescheduleException:
            continue
    raise AssertionError(f"{sensor.task_id} was still rescheduling after {max_reschedules} tries")
