"""One async poller for every cloud's run status, in the triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class TaskRunTrigger(BaseTrigger):
    """Poll ``hook.<status_method>(**run_ref)`` until the run is terminal or the deadline passes.

    Serializes only primitives: the hook's import path and keyword arguments, the status
    method's name, the run reference and timing. Yields exactly one event:
    ``{"event": "terminal", "status": {...}}``, ``{"event": "timeout", ...}`` or
    ``{"event": "error", "message": ...}``.

    ``cancel_method`` names the hook's async method that cancels the run (called with the run
    reference) when a user kills the deferred task. Only an operator that started the run sets
    it; a sensor watches runs it does not own and leaves it ``None``.
    """

    def __init__(
        self,
        *,
        hook_path: str,
        hook_kwargs: dict[str, Any],
        status_method: str,
        run_ref: dict[str, Any],
        poll_interval: float,
        deadline: float,
        description: str = "run",
        cancel_method: str | None = None,
    ) -> None:
        super().__init__()
        self.hook_path = hook_path
        self.hook_kwargs = hook_kwargs
        self.status_method = status_method
        self.run_ref = run_ref
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.description = description
        self.cancel_method = cancel_method

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "hook_path": self.hook_path,
                "hook_kwargs": self.hook_kwargs,
                "status_method": self.status_method,
                "run_ref": self.run_ref,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "description": self.description,
                "cancel_method": self.cancel_method,
            },
        )

    def _hook(self) -> Any:
        from airflow.sdk._shared.module_loading import import_string

        return import_string(self.hook_path)(**self.hook_kwargs)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        poll = getattr(hook, self.status_method)
        last_raw: str | None = None
        try:
            while True:
                try:
                    status = await poll(**self.run_ref)
                except Exception as exc:  # the sensor turns this into a task failure
                    yield TriggerEvent({"event": "error", "message": f"{self.description}: {exc}"})
                    return
                if status.raw_status != last_raw:
                    self.log.info("%s is %s (%s)", self.description, status.raw_status, status.state.value)
                    last_raw = status.raw_status
                if status.state.is_terminal:
                    from airflow_task_runs.core.outputs import bounded_status

                    yield TriggerEvent({"event": "terminal", "status": bounded_status(status, self.log)})
                    return
                remaining = self.deadline - time.time()
                if remaining <= 0:
                    yield TriggerEvent(
                        {
                            "event": "timeout",
                            "message": f"Sensor has timed out: {self.description} was still "
                            f"{status.raw_status} at the deadline",
                            "raw_status": status.raw_status,
                        }
                    )
                    return
                await asyncio.sleep(min(self.poll_interval, remaining))
        finally:
            await hook.aclose()

    async def on_kill(self) -> None:
        """A user killed the deferred task: cancel the run if this task started it.

        Not called on triggerer restarts, redistribution or timeouts (Airflow's contract), so
        a run is never cancelled because a triggerer went away. The triggerer bounds the call
        (``[triggerer] on_kill_timeout``) and logs what it raises.
        """
        if not self.cancel_method:
            return
        from airflow_task_runs.core.errors import RunNotCancellableError

        hook = self._hook()  # run()'s hook is closed by now: the kill cancelled run() first
        try:
            if await getattr(hook, self.cancel_method)(**self.run_ref):
                self.log.info("Cancelled %s: its task was killed", self.description)
            else:
                self.log.info("%s had already ended: nothing to cancel", self.description)
        except RunNotCancellableError as exc:  # the cloud cannot stop it any more: say so, it goes on
            self.log.warning("The task was killed, but %s", exc)
        finally:
            await hook.aclose()
