"""One async poller for every cloud's run status, in the triggerer."""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_task_runs.core.shared import import_off_loop, poll_pacer, shared_hooks

if TYPE_CHECKING:
    from airflow_task_runs.core.states import RunStatus

_T = TypeVar("_T")


class DeadlineReached(Exception):
    """The watch's deadline passed while a status call was in flight (the call was cancelled)."""


async def within(call: Awaitable[_T], seconds: float) -> _T:
    """``await call``, cancelled after ``seconds``: then :class:`DeadlineReached`.

    In the trigger's own task: ``asyncio.wait_for`` (before Python 3.12) wraps every call in a
    new task, a tenth of a status poll's CPU at 1,000 watches. A ``TimeoutError`` the call
    raises itself (a request's own timeout) stays what it is: an error, not the deadline.
    """
    if sys.version_info < (3, 11):  # no asyncio.timeout: the clock tells whose timeout it was
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        try:
            return await asyncio.wait_for(call, max(0.0, seconds))
        except asyncio.TimeoutError:
            if loop.time() >= until:
                raise DeadlineReached from None
            raise
    scope = asyncio.timeout(max(0.0, seconds))
    try:
        async with scope:
            return await call
    except TimeoutError:
        if scope.expired():
            raise DeadlineReached from None
        raise


class TaskRunTrigger(BaseTrigger):
    """Poll the hook's ``status_kind`` status of ``run_ref`` until the run is terminal or the deadline passes.

    Serializes only primitives: the hook's import path and keyword arguments, the status kind,
    the run reference and timing. Yields exactly one event:
    ``{"event": "terminal", "status": {...}}``, ``{"event": "timeout", ...}`` or
    ``{"event": "error", "message": ...}``.

    Triggers on the same hook path and kwargs share one hook in the process
    (:data:`~airflow_task_runs.core.shared.shared_hooks`): one client, pool, key and rate limit,
    and one list call per interval where the hook can answer several runs with one. The
    deadline fires on time even while a request is in flight.

    ``status_method`` is the pre-0.x form (an async method's name), still accepted so triggers
    serialized by an older version keep running after an upgrade.

    ``cancel_method`` names the hook's async method that cancels the run (called with the run
    reference) when a user kills the deferred task. Only an operator that started the run sets
    it; a sensor watches runs it does not own and leaves it ``None``.
    """

    def __init__(
        self,
        *,
        hook_path: str,
        hook_kwargs: dict[str, Any],
        run_ref: dict[str, Any],
        poll_interval: float,
        deadline: float,
        status_kind: str | None = None,
        status_method: str | None = None,
        description: str = "run",
        cancel_method: str | None = None,
    ) -> None:
        super().__init__()
        if (status_kind is None) == (status_method is None):
            raise ValueError("TaskRunTrigger needs exactly one of status_kind or status_method")
        self.hook_path = hook_path
        self.hook_kwargs = hook_kwargs
        self.status_kind = status_kind
        self.status_method = status_method
        self.run_ref = run_ref
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.description = description
        self.cancel_method = cancel_method

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "hook_path": self.hook_path,
            "hook_kwargs": self.hook_kwargs,
            "run_ref": self.run_ref,
            "poll_interval": self.poll_interval,
            "deadline": self.deadline,
            "description": self.description,
            "cancel_method": self.cancel_method,
        }
        if self.status_kind is not None:
            kwargs["status_kind"] = self.status_kind
        else:
            kwargs["status_method"] = self.status_method
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    def _hook(self) -> Any:
        from airflow.sdk._shared.module_loading import import_string

        return import_string(self.hook_path)(**self.hook_kwargs)

    def _timeout_event(self, last: RunStatus | None) -> TriggerEvent:
        raw = last.raw_status if last is not None else None
        what = "had not answered its first status call" if last is None else f"was still {raw}"
        return TriggerEvent(
            {
                "event": "timeout",
                "message": f"Sensor has timed out: {self.description} {what} at the deadline",
                "raw_status": raw,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # the first trigger of a cloud imports its hook module (botocore, for AWS) off the loop,
        # then what the hook's async calls import on first use (its models, the cloud's client)
        await import_off_loop(self.hook_path.rpartition(".")[0])
        entry = shared_hooks.acquire(self.hook_path, self.hook_kwargs)
        await import_off_loop(*getattr(entry.hook, "triggerer_modules", ()))
        kind, ref = self.status_kind, self.run_ref
        if kind is not None:
            poll = functools.partial(entry.coalescer.status, kind, ref)
        else:  # a trigger serialized before status kinds existed
            poll = functools.partial(getattr(entry.hook, str(self.status_method)), **ref)
        last: RunStatus | None = None
        try:
            # Watches answered by a shared list call poll on one grid, the multiples of their
            # interval on this process's clock. Deferred at different times, each would otherwise
            # start a round of its own: a list read per round, more calls than their single GETs
            # at a 60 s interval. (Inside the try: the hook is released whatever batch_key does.)
            on_grid = kind is not None and self.poll_interval > 0 and entry.hook.batch_key(kind, ref) is not None
            while True:
                await poll_pacer.turn()
                asked_at = time.monotonic()
                try:
                    # The deadline bounds the call itself: a slow or trickling server cannot
                    # hold the trigger past it (the request is cancelled, its socket closed).
                    status = await within(poll(), self.deadline - time.time())
                except DeadlineReached:
                    yield self._timeout_event(last)
                    return
                except Exception as exc:  # the sensor turns this into a task failure
                    yield TriggerEvent({"event": "error", "message": f"{self.description}: {exc}"})
                    return
                if last is None or status.raw_status != last.raw_status:
                    self.log.info("%s is %s (%s)", self.description, status.raw_status, status.state.value)
                last = status
                if status.state.is_terminal:
                    from airflow_task_runs.core.outputs import bounded_status

                    yield TriggerEvent({"event": "terminal", "status": bounded_status(status, self.log)})
                    return
                remaining = self.deadline - time.time()
                if remaining <= 0:
                    yield self._timeout_event(last)
                    return
                # Polls keep their cadence (one every poll_interval, not interval + answer time),
                # so a busy triggerer or a slow API does not stretch every watch's schedule.
                if on_grid:
                    wait = self.poll_interval - time.monotonic() % self.poll_interval
                else:
                    wait = max(0.0, self.poll_interval - (time.monotonic() - asked_at))
                await asyncio.sleep(min(wait, remaining))
        finally:
            await shared_hooks.release(self.hook_path, self.hook_kwargs)

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
