"""One sensor for every cloud: poke, reschedule and deferrable, meaning the same in all three.

This module is imported by DAG files on every parse: it imports nothing heavy at module
level (the hook, httpx and pydantic load when the sensor first pokes).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, AirflowSkipException

from airflow_task_runs.core.errors import RunFailedError, TaskRunsError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_task_runs.core.hooks import RunStatusHook
    from airflow_task_runs.core.states import RunStatus

CONFIG_SECTION = "task_runs"

#: the hook class a sensor talks to (``TaskRunSensor["NclueHook"]``): typed without importing it
HookT = TypeVar("HookT", bound="RunStatusHook")


def default_poll_interval() -> float:
    return conf.getfloat(CONFIG_SECTION, "poll_interval", fallback=60.0)


class TaskRunSensor(BaseSensorOperator, Generic[HookT]):
    """Wait for a remote run to end: succeed on success, fail with the cloud's reason otherwise.

    The final status (state, the cloud's status word, reason, request id and details) is
    the sensor's XCom ``return_value``. A run that ends SKIPPED skips the Airflow task.
    Subclasses name the hook and the kind of run (one of the hook's ``status_kinds``) and say
    how to find the run.
    """

    #: import path of the hook class (kept a string so importing the sensor stays cheap)
    hook_class_path: ClassVar[str]
    #: which of the hook's ``status_kinds`` this sensor waits for
    status_kind: ClassVar[str]

    def __init__(
        self,
        *,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: timedelta | float | None = None,
        **kwargs: Any,
    ) -> None:
        if poke_interval is None:
            poke_interval = default_poll_interval()
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.deferrable = deferrable
        self._hook: HookT | None = None
        self._last_raw_status: str | None = None

    # -- what subclasses say -----------------------------------------------------------------
    def hook_kwargs(self) -> dict[str, Any]:
        """Primitive keyword arguments that rebuild the hook (also in the triggerer)."""
        raise NotImplementedError

    def run_ref(self) -> dict[str, Any]:
        """Primitive keyword arguments of the status method that identify the run."""
        raise NotImplementedError

    def describe_run(self) -> str:
        """Human words for the run, used in logs and errors."""
        ref = ", ".join(f"{k}={v}" for k, v in self.run_ref().items())
        return f"{type(self).__name__.removesuffix('Sensor')} ({ref})"

    # -- the hook ----------------------------------------------------------------------------
    @property
    def hook(self) -> HookT:
        if self._hook is None:
            from airflow.sdk._shared.module_loading import import_string

            # the one place the string path meets the type: tests check every sensor's class
            self._hook = cast("HookT", import_string(self.hook_class_path)(**self.hook_kwargs()))
        return self._hook

    # -- poke / reschedule -------------------------------------------------------------------
    def poke(self, context: Context) -> bool | PokeReturnValue:
        status = self.hook.run_status(self.status_kind, self.run_ref())
        return self._evaluate(status)

    def _evaluate(self, status: RunStatus) -> bool | PokeReturnValue:
        from airflow_task_runs.core.states import RunState

        if status.raw_status != self._last_raw_status:
            self.log.info(
                "%s is %s (%s)%s",
                self.describe_run(),
                status.raw_status,
                status.state.value,
                f": {status.message}" if status.message else "",
            )
            self._last_raw_status = status.raw_status
        if status.state is RunState.SUCCEEDED:
            from airflow_task_runs.core.outputs import bounded_status

            return PokeReturnValue(is_done=True, xcom_value=bounded_status(status, self.log))
        if status.state.is_failure:
            raise RunFailedError(self.describe_run(), status)
        if status.state is RunState.SKIPPED:
            raise AirflowSkipException(f"{self.describe_run()} ended {status.raw_status}: skipping this task")
        return False

    # -- deferrable --------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # One check in the worker first: a run that is already over needs no triggerer.
        first = self._first_poke(context)
        if isinstance(first, PokeReturnValue) and first.is_done:
            return first.xcom_value
        from airflow_task_runs.core.triggers import TaskRunTrigger

        self.defer(
            trigger=TaskRunTrigger(
                hook_path=self.hook_class_path,
                hook_kwargs=self.hook_kwargs(),
                status_kind=self.status_kind,
                run_ref=self.run_ref(),
                poll_interval=self.poke_interval,
                deadline=time.time() + self.timeout,
                description=self.describe_run(),
            ),
            method_name="execute_complete",
            # A safety net only: the trigger keeps the real deadline, so a timeout reaches
            # execute_complete and fails the same way as in poke mode.
            timeout=timedelta(seconds=self.timeout + self.poke_interval + 300),
        )

    def _first_poke(self, context: Context) -> bool | PokeReturnValue:
        """``poke`` with the same soft_fail / never_fail handling as BaseSensorOperator.execute."""
        try:
            return self.poke(context)
        except AirflowSkipException:
            raise
        except AirflowFailException as exc:
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(f"Skipping: {exc}") from exc
            raise
        except Exception as exc:
            if self.never_fail:
                raise AirflowSkipException(f"Skipping due to never_fail: {exc}") from exc
            raise

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from airflow_task_runs.core.states import RunStatus

        kind = event.get("event")
        if kind == "terminal":
            result = self._evaluate(RunStatus.from_dict(event["status"]))
            if isinstance(result, PokeReturnValue):
                return result.xcom_value
            raise TaskRunsError(f"{self.describe_run()}: trigger ended on a non-terminal status {event['status']}")
        if kind == "timeout":
            raise AirflowSensorTimeout(event.get("message") or f"{self.describe_run()}: sensor timed out")
        raise TaskRunsError(event.get("message") or f"{self.describe_run()}: trigger failed without a message")
