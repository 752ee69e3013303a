"""Start a remote run, wait for it like the sensor, collect what it made: one mechanism for every cloud.

An operator built on :class:`StartRunOperator` owns the run it starts:

- **crash-safe** (``airflow.sdk.ResumableJobMixin``): the run id goes to the task's
  ``task_state_store`` before the wait begins, so a retry (after a worker crash, a lost
  triggerer, an API error) reconnects to that run instead of starting a second one. The small
  window the mixin leaves open (the start call returned but its id was not stored yet) is
  closed here too: a *start token* is stored before the call and reused by the next try, which
  either repeats an idempotent start (HealthOmics ``requestId``) or looks the run up (NCLUE,
  by name) before starting again.
- **waits** in ``poke``, ``reschedule`` or deferrable mode through :class:`TaskRunSensor` and
  :class:`TaskRunTrigger`, with the same ``poke_interval`` / ``timeout`` / ``soft_fail``.
- **cancels on kill**: ``on_kill`` (worker) and the trigger's ``on_kill`` (deferred) cancel
  the run this task started, unless ``cancel_on_kill=False``. Sensors never cancel anything.

This module is imported by DAG files: nothing heavy at module level.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.sdk import PokeReturnValue, ResumableJobMixin

from airflow_task_runs.core.sensors import HookT, TaskRunSensor

if TYPE_CHECKING:
    from datetime import timedelta

    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger
    from pydantic import JsonValue

#: the state ``get_job_status`` reports for a stored run the cloud no longer knows (start afresh)
NOT_FOUND = "NOT_FOUND"


@dataclass(frozen=True)
class StartAttempt:
    """What a start needs to be safe to repeat."""

    #: the same for every call within one try, and for the try after one that may have started the run
    token: str
    #: a previous try may have started the run with this token (crashed before its id was stored)
    maybe_started: bool
    #: this task's earlier run that ended without success; never the run of this attempt
    replaces: str | None


class StartRunOperator(ResumableJobMixin, TaskRunSensor[HookT]):
    """Start a run, wait for it (optionally), return what :meth:`collect` makes of it.

    :param wait_for_completion: wait for the run to end (in the sensor's ``mode`` or
        deferrable); ``False`` returns as soon as the run has started.
    :param cancel_on_kill: cancel the run this task started when the task is killed (marked
        failed or success, cleared), in the worker and in the triggerer.
    :param durable: keep the run id in the task's state store so a retry reconnects
        (``ResumableJobMixin``); ``False`` starts a new run on every try.

    Subclasses implement :meth:`start_run` and :meth:`collect` and name the hook's
    ``cancel_method`` (its async twin is the same name prefixed with ``a``).
    """

    #: name of the hook's sync method that cancels a run by id
    cancel_method: ClassVar[str]
    #: the field of the run's details (the status method's ``details``) holding its id
    run_id_field: ClassVar[str] = "run_id"
    #: task_state_store key of the run id (renaming it breaks in-flight retries)
    external_id_key = "task_runs_run_id"
    #: task_state_store key of the token of a start that may not have returned
    start_token_key = "task_runs_start_token"

    def __init__(self, *, wait_for_completion: bool = True, cancel_on_kill: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wait_for_completion = wait_for_completion
        self.cancel_on_kill = cancel_on_kill
        if self.mode == "reschedule" and not self.durable:
            raise ValueError(
                f"{type(self).__name__}: mode='reschedule' needs durable=True: each reschedule runs the task "
                "again, and only the stored run id keeps it from starting another run"
            )
        #: the run this task started (or, on a retry, reconnected to); the only one on_kill cancels
        self.started_run_id: str | None = None
        self._collected: tuple[str, Any] | None = None  # (run id, what collect() made of it)

    # -- what subclasses say -----------------------------------------------------------------
    def check_input(self, context: Context) -> None:
        """Raise ``ValueError`` naming a missing or malformed parameter; runs before any call."""

    def start_run(self, context: Context, attempt: StartAttempt) -> str:
        """Start the run and return its id.

        An idempotent start passes ``attempt.token`` to the cloud; a start without idempotency
        looks for the run a previous try may have made (``attempt.maybe_started``) first.
        """
        raise NotImplementedError

    def run_attached(self, context: Context) -> None:
        """Called once this task knows the id of its run (started or reconnected): links, logs."""

    def collect(self, context: Context, run_id: str, status: dict[str, Any] | None) -> Any:
        """The XCom value once the run succeeded (``status`` is the sensor's final status),
        or once it started when not waiting (``status`` is ``None``)."""
        raise NotImplementedError

    # -- the run the sensor machinery polls --------------------------------------------------
    def run_ref(self) -> dict[str, Any]:
        return {"run_id": self.started_run_id}

    def _attach(self, run_id: str, context: Context) -> None:
        if run_id != self.started_run_id:
            self.started_run_id = run_id
            self.log.info("%s: this task owns it", self.describe_run())
            self.run_attached(context)

    # -- execute -----------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        self.check_input(context)
        return self.execute_resumable(context)

    def submit_job(self, context: Context) -> JsonValue:
        store = context.get("task_state_store") if self.durable else None
        prior = store.get(self.external_id_key) if store is not None else None
        pending = store.get(self.start_token_key) if store is not None else None
        maybe_started = isinstance(pending, dict) and bool(pending.get("token")) and pending.get("replaces") == prior
        if maybe_started and isinstance(pending, dict):
            token = str(pending["token"])
            self.log.info("A previous try may have started the run already (start token %s); checking", token)
        else:
            token = self.new_start_token(context)
            if store is not None:
                store.set(self.start_token_key, {"token": token, "replaces": prior})
        run_id = self.start_run(context, StartAttempt(token, maybe_started, str(prior) if prior else None))
        self._attach(run_id, context)
        return run_id

    @staticmethod
    def new_start_token(context: Context) -> str:
        """The same for every call within one try of one task instance; new for the next try."""
        ti = context["ti"]
        key = f"airflow-task-runs/{ti.dag_id}/{ti.run_id}/{ti.task_id}/{ti.map_index}/{ti.try_number}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, key))

    def get_job_status(self, external_id: JsonValue, context: Context) -> str:
        """The stored run's state (our :class:`RunState` word); ``NOT_FOUND`` when the cloud lost it."""
        from airflow_task_runs.core.errors import ApiError

        try:
            status = self.hook.run_status(self.status_kind, {"run_id": str(external_id)})
        except ApiError as exc:
            if exc.status_code == 404:
                return NOT_FOUND
            raise
        self.log.info("The run this task started before, %s, is %s", external_id, status.raw_status)
        return str(status.state.value)

    def is_job_active(self, status: str) -> bool:
        return status in ("PENDING", "RUNNING")

    def is_job_succeeded(self, status: str) -> bool:
        return status == "SUCCEEDED"

    def poll_until_complete(self, external_id: JsonValue, context: Context) -> Any:
        """Wait through the sensor machinery (may defer); return the collected result.

        The mixin returns this method's value directly when it reconnects, so the result is
        made here and :meth:`get_job_result` hands it back.
        """
        run_id = str(external_id)
        self._attach(run_id, context)
        status = TaskRunSensor.execute(self, context) if self.wait_for_completion else None
        self._collected = (run_id, self.collect(context, run_id, status))
        return self._collected[1]

    def get_job_result(self, external_id: JsonValue, context: Context) -> Any:
        if self._collected is not None and self._collected[0] == external_id:
            return self._collected[1]
        # A retry found the run already succeeded: read its final status once, then collect.
        run_id = str(external_id)
        self._attach(run_id, context)
        done = self.poke(context)
        status = done.xcom_value if isinstance(done, PokeReturnValue) else None
        return self.collect(context, run_id, status)

    # -- deferrable --------------------------------------------------------------------------
    def defer(
        self,
        *,
        trigger: BaseTrigger,
        method_name: str,
        kwargs: dict[str, Any] | None = None,
        timeout: timedelta | int | float | None = None,
    ) -> NoReturn:
        """The shared sensor builds the trigger; an owner adds the cancel and its run id."""
        from airflow_task_runs.core.triggers import TaskRunTrigger

        if isinstance(trigger, TaskRunTrigger) and self.cancel_on_kill:
            trigger.cancel_method = f"a{self.cancel_method}"
        super().defer(
            trigger=trigger,
            method_name=method_name,
            kwargs={**(kwargs or {}), "run_id": self.started_run_id},
            timeout=timeout,
        )

    def execute_complete(self, context: Context, event: dict[str, Any], run_id: str | None = None) -> Any:
        run_id = run_id or self._run_id_after_deferral(context, event)
        self._attach(run_id, context)
        status = TaskRunSensor.execute_complete(self, context, event)
        return self.collect(context, run_id, status)

    def _run_id_after_deferral(self, context: Context, event: dict[str, Any]) -> str:
        """The trigger's run: from the event's details, else from the task's state store."""
        from airflow_task_runs.core.errors import TaskRunsError

        details = (event.get("status") or {}).get("details") or {}
        found = details.get(self.run_id_field)
        if not found and (store := context.get("task_state_store")) is not None:
            found = store.get(self.external_id_key)
        if not found:
            raise TaskRunsError(f"{type(self).__name__}: resumed without the id of the run it started")
        return str(found)

    # -- on kill -----------------------------------------------------------------------------
    def on_kill(self) -> None:
        """Cancel the run this task started (never a run it did not start); errors are logged."""
        run_id = self.started_run_id
        if not run_id or not self.cancel_on_kill:
            return
        from airflow_task_runs.core.errors import RunNotCancellableError

        try:
            if getattr(self.hook, self.cancel_method)(run_id):
                self.log.info("Cancelled %s: the task was killed", self.describe_run())
            else:
                self.log.info("%s had already ended: nothing to cancel", self.describe_run())
        except RunNotCancellableError as exc:  # the cloud cannot stop it any more: say so, it goes on
            self.log.warning("The task was killed, but %s", exc)
        except Exception as exc:
            self.log.error("Could not cancel %s after the task was killed: %s", self.describe_run(), exc)
