"""One way for every hook's ``test_connection()``: one attempt, one message that says what to do.

``airflow connections test`` and the UI's **Test** button wait for the answer, so the probe is
made once (no retries for minutes: a dead host answers within the connect timeout), and a
failure names the cloud, the host that was tried and the connection field to check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_task_runs.core.errors import ApiError, ConnectionConfigError

if TYPE_CHECKING:
    from airflow_task_runs.core.http import ApiSession


@dataclass(frozen=True)
class ConnectionProbe:
    """What a connection test says about one cloud."""

    cloud: str
    #: the URL the probe goes to
    host: str
    #: the connection fields to check when the cloud refuses the credentials
    credential_fields: str
    #: the connection field to check when the host cannot be reached
    host_field: str
    #: error codes (prefixes) that mean "wrong credentials" although the HTTP status is not 401/403
    auth_codes: tuple[str, ...] = ()


def check_choice(conn_id: str, field: str, value: str, allowed: Iterable[str], escape: str) -> str:
    """``value`` if it is one of ``allowed``; else an error listing the valid values."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConnectionConfigError(
            conn_id, field, f"is {value!r}, which is not one of: {', '.join(allowed)} (for a new one, set {escape})"
        )
    return value


def single_attempt(session: ApiSession) -> ApiSession:
    """The session with retries off: a connection test answers within the connect timeout."""
    session.retry = dataclasses.replace(session.retry, max_attempts=1)
    return session


def _is_transport(exc: BaseException) -> bool:
    import httpx

    if isinstance(exc, (httpx.TransportError, OSError)):
        return True
    return isinstance(exc, ApiError) and exc.status_code is None


def _transport_reason(exc: BaseException) -> str:
    import httpx

    text = str(exc.message if isinstance(exc, ApiError) else exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException) or "timed out" in text.lower():
        return f"no answer in time ({text})"
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return f"the host name does not resolve ({text})"
    if "refused" in text.lower():
        return f"nothing listens there ({text})"
    return text


def explain(probe: ConnectionProbe, exc: BaseException) -> str:
    """The message a connection test shows for ``exc``: cloud, host, what happened, what to check."""
    if isinstance(exc, ConnectionConfigError):
        return str(exc)
    if isinstance(exc, ApiError) and exc.status_code is None:  # the session's own words on the wire
        return f"{probe.cloud}: cannot reach {probe.host}: {exc.message} (in this connection: {probe.host_field})"
    if _is_transport(exc):
        return (
            f"{probe.cloud}: cannot reach {probe.host}: {_transport_reason(exc)}. "
            f"Check {probe.host_field}, DNS, proxies (HTTPS_PROXY / NO_PROXY) and firewalls between Airflow and it."
        )
    if isinstance(exc, ApiError):
        code = exc.code or ""
        rid = f" [request id {exc.request_id}]" if exc.request_id else ""
        if exc.status_code in (401, 403) or (code and code.startswith(probe.auth_codes)):
            # NCP's gateway puts a bare number in its code ("200" = authentication failed): not worth showing
            named = f", {code}" if code and not code.isdigit() else ""
            return (
                f"{probe.cloud} at {probe.host} refused the credentials: {exc.message} "
                f"(HTTP {exc.status_code}{named}){rid}. Check {probe.credential_fields}."
            )
        named = f" {code}" if code else ""
        return f"{probe.cloud} at {probe.host} answered HTTP {exc.status_code}{named}: {exc.message}{rid}"
    return f"{probe.cloud} at {probe.host}: {type(exc).__name__}: {exc}"


def run_probe(probe: Callable[[], ConnectionProbe], call: Callable[[ConnectionProbe], str]) -> tuple[bool, str]:
    """``(True, message)`` when ``call`` succeeds, else ``(False, explanation)``; never raises.

    ``probe`` builds the description (reading the connection, which may itself fail with a
    field-naming error); ``call`` makes the request and returns the success message.
    """
    try:
        described = probe()
    except Exception as exc:
        return False, str(exc)
    try:
        return True, call(described)
    except Exception as exc:
        return False, explain(described, exc)
