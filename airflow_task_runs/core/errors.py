"""The provider's exceptions. Messages carry what happened and how to fix it, never a secret."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk.exceptions import AirflowException, AirflowFailException

if TYPE_CHECKING:
    from airflow_task_runs.core.states import RunStatus


class TaskRunsError(AirflowException):
    """Base of every error this provider raises."""


class ConnectionConfigError(TaskRunsError):
    """A connection field is missing or malformed. The message names the field and the fix."""

    def __init__(self, conn_id: str, field: str, problem: str) -> None:
        self.conn_id = conn_id
        self.field = field
        super().__init__(f"Connection {conn_id!r}: {field} {problem}")


class ApiError(TaskRunsError):
    """A cloud API call failed. Carries the cloud's own code, message and request id."""

    def __init__(
        self,
        *,
        cloud: str,
        status_code: int | None,
        code: str | None,
        message: str,
        request_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
        retry_after: float | None = None,
        retryable: bool = False,
        host: str | None = None,
        operation: str | None = None,
    ) -> None:
        self.cloud = cloud
        self.host = host
        self.operation = operation
        self.status_code = status_code  # type: ignore[assignment]  # shadows AirflowException's API status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.method = method
        self.path = path
        self.retry_after = retry_after
        self.retryable = retryable
        super().__init__(self._describe())

    def _describe(self) -> str:
        call = f"{self.method} {self.host or ''}{self.path}" if self.method and self.path else self.host or ""
        where = ", ".join(part for part in (self.operation, call) if part)
        where = f" ({where})" if where else ""
        status = f"HTTP {self.status_code}" if self.status_code is not None else "no complete HTTP answer"
        code = f" {self.code}" if self.code else ""
        rid = f" [request id {self.request_id}]" if self.request_id else ""
        return f"{self.cloud} API error{where}: {status}{code}: {self.message}{rid}"

    def refresh(self) -> None:
        """Rebuild the message after a field changed (e.g. a note appended to ``message``)."""
        self.args = (self._describe(),)


def model_problem(exc: BaseException) -> str:
    """A pydantic ValidationError (or a RecursionError) in a few words: how many problems, the first."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return "nested too deep"
    first = errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{exc.error_count()} problem(s), first: {where}: {first['msg']}"  # type: ignore[attr-defined]


class MalformedResponseError(ApiError):
    """The cloud answered, but not with what its API page promises."""


class InvalidIdError(TaskRunsError, ValueError):
    """An id that cannot be sent: empty, or not one URL path segment. The message names the parameter."""


class RunFailedError(AirflowFailException, TaskRunsError):
    """The remote run ended FAILED or CANCELLED. Not retried: re-polling cannot fix it."""

    def __init__(self, what: str, status: RunStatus) -> None:
        self.status = status
        reason = f": {status.message}" if status.message else ""
        rid = f" [request id {status.request_id}]" if status.request_id else ""
        super().__init__(f"{what} ended {status.raw_status} ({status.state.value.lower()}){reason}{rid}")


class RunNotFinishedError(TaskRunsError):
    """Outputs were asked for a run that has not succeeded."""


class OutputTooLargeError(TaskRunsError):
    """A result is over the XCom size guard."""

    def __init__(self, what: str, size: int, limit: int, *, read_whole: bool = True) -> None:
        self.size = size
        self.limit = limit
        #: False when reading stopped at the limit: ``size`` is where it stopped, not the output's size
        self.read_whole = read_whole
        size_text = f"is {size} bytes" if read_whole else f"is more than {limit} bytes (reading stopped at {size})"
        super().__init__(
            f"{what} {size_text}, over the XCom limit of {limit} bytes. "
            "Pass destination=ObjectStoragePath('s3://bucket/prefix/') (or file://, gs://, ...) to write it "
            "to object storage instead, or raise [task_runs] xcom_max_bytes if your XCom backend can hold it."
        )


class OutputOverCapError(TaskRunsError):
    """An output is larger than the connection's ``max_output_bytes``: refused, nothing written."""

    def __init__(self, what: str, size: int, limit: int, conn_id: str) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"{what} is over max_output_bytes={limit} bytes (reading stopped at {size} bytes); nothing was "
            f"written. If the output is legitimately that large, raise max_output_bytes in the extra of "
            f"connection {conn_id!r}"
        )


class OutputIntegrityError(TaskRunsError):
    """Received content does not match what the cloud declared (length, encoding, compression)."""


class DestinationConfigError(AirflowFailException, TaskRunsError, ValueError):
    """A destination that cannot work as given (empty, not a URI, no filesystem, unknown connection).

    Not retried: the DAG or the installation has to change. Raised at DAG parse time for a literal
    destination, and before any cloud call for a templated one.
    """


class DestinationWriteError(TaskRunsError):
    """The destination store refused or failed a write; nothing was left at the destination."""


class RunNotCancellableError(TaskRunsError):
    """The cloud cannot cancel the run in its current state; the message says which and why."""


class CreateOutcomeUnknownError(TaskRunsError):
    """A create request without an idempotency token failed in a way that may have created the run.

    Repeating it blindly could start a second run; the caller looks the run up before trying again.
    """
