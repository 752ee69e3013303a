"""One authenticated HTTP session per hook: httpx clients, timeouts, retries, error mapping.

Clouds differ in how they sign, where they put error codes and which answers are worth a
retry; they plug those in through :class:`ApiDialect`. Everything else is here, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import functools
import logging
import os
import random
import select
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpcore
import httpx
import tenacity

from airflow_task_runs.core import bounded_json
from airflow_task_runs.core.conn_fields import DEFAULT_MAX_OUTPUT_BYTES
from airflow_task_runs.core.content_encoding import ACCEPT_ENCODING, UndecodableBody, aiter_decoded, iter_decoded
from airflow_task_runs.core.errors import ApiError, MalformedResponseError, TaskRunsError, model_problem

log = logging.getLogger(__name__)

DEFAULT_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: largest JSON answer read (a status document is a few KiB; a 100-run NCLUE page ~100 KiB)
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_T = TypeVar("_T")
#: connections per client; as many requests are let into its pool at once (see ApiSession.admitted)
POOL_CONNECTIONS = 100


def async_transport_name() -> str:
    """The async clients' transport: ``aiohttp`` (default, see core.aio_transport) or ``httpx``
    (httpx's own), chosen by the environment variable ``AIRFLOW_TASK_RUNS_ASYNC_TRANSPORT``."""
    name = os.environ.get("AIRFLOW_TASK_RUNS_ASYNC_TRANSPORT", "aiohttp").strip().lower() or "aiohttp"
    if name not in ("aiohttp", "httpx"):
        raise ValueError(f"AIRFLOW_TASK_RUNS_ASYNC_TRANSPORT is {name!r}; set aiohttp (the default) or httpx")
    return name


#: parsed URLs kept per session (one per watched run; emptied when full)
_URL_CACHE = 4096
#: ``request_id_of``'s "no body given": the answer is parsed to look for one
_UNPARSED: Any = object()


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: at most ``max_attempts`` tries and ``max_elapsed`` seconds in all."""

    max_attempts: int = 5
    max_elapsed: float = 120.0
    backoff_initial: float = 0.5
    backoff_max: float = 20.0
    #: longest ``Retry-After`` honoured; ``None``: whatever fits in ``max_elapsed``. A longer
    #: one ends the retries at once (retrying sooner than the server asked is pointless).
    max_retry_after: float | None = None
    statuses: frozenset[int] = DEFAULT_RETRY_STATUSES

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], conn_id: str = "") -> RetryPolicy:
        """Read ``retry_max_attempts`` / ``retry_max_elapsed`` / ``retry_backoff_*`` / ``retry_after_max``."""
        base = cls()
        cap = extra.get("retry_after_max")
        return cls(
            max_attempts=int(extra_number(extra, "retry_max_attempts", base.max_attempts, conn_id, integer=True)),
            max_elapsed=extra_number(extra, "retry_max_elapsed", base.max_elapsed, conn_id, minimum=0.0),
            backoff_initial=extra_number(extra, "retry_backoff_initial", base.backoff_initial, conn_id, minimum=0.0),
            backoff_max=extra_number(extra, "retry_backoff_max", base.backoff_max, conn_id, minimum=0.0),
            max_retry_after=None if cap in (None, "") else extra_number(extra, "retry_after_max", 0.0, conn_id, 0.0),
        )

    @property
    def retry_after_cap(self) -> float:
        return self.max_elapsed if self.max_retry_after is None else min(self.max_retry_after, self.max_elapsed)

    def botocore_config(self, timeouts: Timeouts | None = None) -> dict[str, Any]:
        """The same policy as botocore ``Config`` keyword arguments (AWS clients, NCP Object Storage).

        botocore's standard mode retries throttling, 5xx and transport errors with jittered
        backoff, like the session; it has no total-time bound of its own: on AWS clients the
        guard (aws/botocore_guard.py) turns down a retry whose backoff would end past max_elapsed.
        """
        options: dict[str, Any] = {"retries": {"mode": "standard", "total_max_attempts": self.max_attempts}}
        if timeouts is not None:
            options.update(connect_timeout=timeouts.connect, read_timeout=timeouts.read)
        return options

    def budget(self, timeouts: Timeouts) -> float:
        """Seconds one request may take, retries included: ``max_elapsed`` + one ``read`` timeout."""
        return self.max_elapsed + timeouts.read


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float = 60.0
    #: an output's body must bring at least this many bytes a second over each window (see DownloadPace)
    download_min_rate: float = 16 * 1024
    download_rate_window: float = 30.0

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], conn_id: str = "") -> Timeouts:
        """Read ``connect_timeout`` / ``read_timeout`` / ``download_min_rate`` / ``download_rate_window``."""
        base = cls()
        return cls(
            connect=extra_number(extra, "connect_timeout", base.connect, conn_id),
            read=extra_number(extra, "read_timeout", base.read, conn_id),
            download_min_rate=extra_number(extra, "download_min_rate", base.download_min_rate, conn_id),
            download_rate_window=extra_number(extra, "download_rate_window", base.download_rate_window, conn_id),
        )

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.read, pool=self.connect)


def extra_number(
    extra: Mapping[str, Any],
    key: str,
    default: float,
    conn_id: str = "",
    minimum: float | None = None,
    *,
    integer: bool = False,
) -> float:
    """A numeric connection extra, or ``default`` when absent: a finite number above 0 (at least
    ``minimum`` when given), else a :class:`ConnectionConfigError` naming the key and the fix.

    A zero or negative timeout, rate or window would not disable a bound but break it silently
    (a rate of 0 lets any trickle through): it is refused, like a value that is not a number.
    """
    import math

    from airflow_task_runs.core.errors import ConnectionConfigError

    value = extra.get(key)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    whole = not integer or (number.is_integer() if math.isfinite(number) else False)
    low_ok = number >= minimum if minimum is not None else number > 0
    if isinstance(value, bool) or not math.isfinite(number) or not whole or not low_ok:
        kind = "a whole number" if integer else "a number"
        bound = f">= {minimum:g}" if minimum is not None else "> 0"
        raise ConnectionConfigError(
            conn_id or "?",
            f"extra.{key}",
            f"is {value!r}; set {kind} {bound} (or leave it out for the default, {default:g})",
        )
    return number


def max_output_bytes(extra: Mapping[str, Any], conn_id: str = "", default: int = DEFAULT_MAX_OUTPUT_BYTES) -> int:
    """Connection extra ``max_output_bytes``: the largest output one fetch reads, else ``default``."""
    return int(extra_number(extra, "max_output_bytes", default, conn_id, integer=True))


def max_response_bytes(extra: Mapping[str, Any] | None = None, conn_id: str = "") -> int:
    """Connection extra ``max_response_bytes``, else ``[task_runs] max_response_bytes``, else 4 MiB."""
    value = (extra or {}).get("max_response_bytes")
    if value in (None, ""):
        from airflow.sdk import conf

        return conf.getint("task_runs", "max_response_bytes", fallback=DEFAULT_MAX_RESPONSE_BYTES)
    return int(extra_number(extra or {}, "max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES, conn_id, integer=True))


@dataclass
class ApiDialect:
    """How one cloud reports errors and request ids."""

    cloud: str
    request_id_headers: tuple[str, ...] = ()
    #: (response, parsed JSON body or None) -> (code, message, request id from the body)
    parse_error: Callable[[httpx.Response, Any], tuple[str | None, str | None, str | None]] | None = None
    #: extra rule: is this error worth a retry although its status is not in the policy?
    is_retryable: Callable[[ApiError], bool] | None = None
    #: a 200 whose body says the call failed (Alibaba): return an error, or None when fine
    check_success_body: Callable[[httpx.Response, Any], tuple[str | None, str | None] | None] | None = None
    #: statuses never retried although listed in the policy (OCI: 501)
    never_retry: frozenset[int] = field(default_factory=frozenset)


def encode_query(params: Mapping[str, Any] | None) -> str:
    """RFC 3986 query string in the caller's order (space -> %20, ``~`` kept, ``*`` -> %2A).

    httpx's ``params=`` uses form encoding; signers must sign exactly what goes on the wire,
    so the query is built here and handed to httpx as part of the URL.
    """
    if not params:
        return ""
    parts = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        parts.append(f"{_quote(str(key))}={_quote(str(value))}")
    return "&".join(parts)


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="-_.~")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


@functools.lru_cache(maxsize=8)
def _ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    """One SSL context per setting per process: building one costs ~30 ms (loading the CA
    bundle), which a triggerer with hundreds of hooks should pay once, not per hook."""
    if verify is False:
        return False
    if verify is True:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())

    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


def _verify_setting(value: Any) -> bool | str:
    """A connection's ``verify`` extra: true/false (also as strings) or a CA bundle path."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", ""):
            return True
        if lowered in ("false", "0", "no"):
            return False
        return value
    return bool(value)


# -- one deadline per request, enforced at every socket operation ----------------------------
#: monotonic time by which the request running in this context must be over (None: no bound)
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("task_runs_deadline", default=None)


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """A socket operation's timeout, cut to what is left of the request's deadline."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the request's time budget is spent")
    return left if timeout is None else min(timeout, left)


@contextmanager
def request_deadline(budget: float) -> Iterator[float]:
    """Bound everything inside (sends, reads, retries, waits) by ``budget`` seconds from now.

    Nested uses share the outermost deadline, so a caller that retries a whole exchange
    (e.g. OCI's fetchOutput re-reading the body) stays within one budget too.
    """
    current = _DEADLINE.get()
    if current is not None:
        yield current
        return
    token = _DEADLINE.set(time.monotonic() + budget)
    try:
        yield _DEADLINE.get() or 0.0
    finally:
        _DEADLINE.reset(token)


def deadline_left() -> float | None:
    """Seconds left of the current request's budget (None: no budget set)."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def deadline_expired() -> bool:
    deadline = _DEADLINE.get()
    return deadline is not None and time.monotonic() >= deadline


class DownloadTooSlow(httpcore.ReadTimeout):
    """An output's body fell under its minimum rate (:class:`DownloadPace`)."""


#: request extension marking an output download: its body is bounded by the pace, not the deadline
DOWNLOAD_EXTENSION = "task_runs_download"
#: request extension an auth sets when it sent a signature made for an earlier identical request
#: (oci.auth): a 401 to it is retried, and the auth signs the retry afresh
REUSED_AUTH_EXTENSION = "task_runs_reused_auth"
#: the progress rule of the output body streaming in this context (None: the deadline rules)
_PACE: contextvars.ContextVar[DownloadPace | None] = contextvars.ContextVar("task_runs_pace", default=None)


class DownloadPace:
    """An output's body is bounded by progress, not wall time: at least ``min_rate`` bytes a
    second over each ``window`` seconds.

    A large output on a slow but healthy link finishes however long it takes; a stall still
    ends at ``read_timeout``, and a trickle under the rate within one window.
    """

    def __init__(self, timeouts: Timeouts) -> None:
        self.min_rate = timeouts.download_min_rate
        self.window = timeouts.download_rate_window
        self.received = 0
        self._start = time.monotonic()
        self._in_window = 0
        self._cut = False

    @property
    def _quota(self) -> float:
        return self.min_rate * self.window

    def _roll(self, now: float) -> None:
        if now < self._start + self.window:
            return
        if self._in_window < self._quota:
            raise DownloadTooSlow(
                f"only {self._in_window} bytes arrived in {self.window:g} s, under download_min_rate="
                f"{self.min_rate:g} bytes/s over download_rate_window={self.window:g} s ({self.received} bytes "
                "received in all): the link is too slow or stalling. Check the network; lower download_min_rate "
                "in the connection's extra if the link is legitimately that slow"
            )
        self._start, self._in_window = now, 0

    def timeout(self, timeout: float | None) -> float | None:
        """A socket read's timeout: cut to the window's end while the window's quota is unmet."""
        now = time.monotonic()
        self._roll(now)
        self._cut = False
        if self._in_window >= self._quota:
            return timeout
        left = self._start + self.window - now
        if timeout is None or left < timeout:
            self._cut = True
            return left
        return timeout

    def timed_out(self) -> None:
        """A read timed out: at the window's end (the rate was not met), or a plain stall."""
        if self._cut:
            self._roll(max(time.monotonic(), self._start + self.window))

    def got(self, size: int) -> None:
        self.received += size
        self._in_window += size


@contextmanager
def download_pace(timeouts: Timeouts) -> Iterator[DownloadPace]:
    """While an output's body streams: bounded by :class:`DownloadPace` instead of the deadline.

    The time spent inside does not count against the request's budget (what is left of it
    still bounds retries, the next attempt's connect and its status line and headers).
    """
    pace = DownloadPace(timeouts)
    deadline = _DEADLINE.get()
    started = time.monotonic()
    deadline_token = _DEADLINE.set(None)
    pace_token = _PACE.set(pace)
    try:
        yield pace
    finally:
        _PACE.reset(pace_token)
        _DEADLINE.reset(deadline_token)
        if deadline is not None:
            _DEADLINE.set(deadline + time.monotonic() - started)


def current_pace() -> DownloadPace | None:
    """The progress rule of the output body streaming in this context, if one is."""
    return _PACE.get()


def too_slow(exc: BaseException) -> DownloadTooSlow | None:
    """The :class:`DownloadTooSlow` behind a (mapped) read timeout, if that is what it was."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:  # a chain can loop back on itself
        if isinstance(exc, DownloadTooSlow):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every read and write ends by the request's deadline (a server trickling
    one byte per read timeout cannot stretch a request past its budget)."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream
        self._info: dict[str, Any] = {}

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        pace = _PACE.get()
        if pace is None:
            return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))
        try:
            data = self._stream.read(max_bytes, pace.timeout(timeout))
        except httpcore.ReadTimeout:
            pace.timed_out()
            raise
        pace.got(len(data))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return _cached_info(self._info, self._stream, info)


def _cached_info(cache: dict[str, Any], stream: Any, info: str) -> Any:
    """What a connection knows of itself (its socket, TLS object, addresses) is fixed: ask once.

    httpcore's pool asks every idle connection for its socket whenever it hands out one, and
    anyio rebuilds its whole attribute table per question: at 1,000 watches on one pool that
    was a third of the triggerer's CPU.
    """
    if info == "is_readable":  # the pool's "has the server closed this idle connection?"
        sock = _cached_info(cache, stream, "socket")
        if sock is not None:
            return _socket_readable(sock)
    if info not in _FIXED_INFO:
        return stream.get_extra_info(info)
    try:
        return cache[info]
    except KeyError:
        value = cache[info] = stream.get_extra_info(info)
        return value


_FIXED_INFO = frozenset({"socket", "ssl_object", "client_addr", "server_addr"})


def _socket_readable(sock: Any) -> bool:
    """httpcore's own test: an idle socket that is readable was closed by the server (or broken)."""
    if sock.fileno() == -1:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        timeout = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        timeout = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _AsyncDeadlineStream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._info: dict[str, Any] = {}

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        pace = _PACE.get()
        if pace is None:
            return await self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))
        try:
            data = await self._stream.read(max_bytes, pace.timeout(timeout))
        except httpcore.ReadTimeout:
            pace.timed_out()
            raise
        pace.got(len(data))
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        timeout = _bounded(timeout, httpcore.ConnectTimeout)
        return _AsyncDeadlineStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return _cached_info(self._info, self._stream, info)


class _AsyncDeadlineBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        timeout = _bounded(timeout, httpcore.ConnectTimeout)
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _AsyncDeadlineStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        timeout = _bounded(timeout, httpcore.ConnectTimeout)
        return _AsyncDeadlineStream(await self._backend.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


#: what httpx's client signs with when it has no auth: nothing
_NO_AUTH = httpx.Auth()


class _NoCookies(httpx.Cookies):
    """No cookie jar: every request here carries its own signature or token and no cloud API
    sets cookies, yet httpx would parse each answer for them (a tenth of a poll's CPU)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


def bound_by_deadline(client: httpx.Client | httpx.AsyncClient) -> None:
    """Make every connection ``client`` opens honour the request deadline (:meth:`ApiSession.deadline`).

    httpx takes no network backend, so the pools of its own transports (the default one and the
    proxy mounts built from the environment) get theirs wrapped; a custom transport is left alone.
    Call it for any client the session uses, including a shared one built elsewhere.
    """
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is None or isinstance(backend, (_DeadlineBackend, _AsyncDeadlineBackend)):
            continue
        if isinstance(client, httpx.AsyncClient):
            pool._network_backend = _AsyncDeadlineBackend(backend)  # type: ignore[union-attr]
        else:
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]


class RetryRules:
    """How a :class:`RetryPolicy` is applied (tenacity): which errors, how long to wait, when to stop.

    The one retry mechanism: the httpx session uses it for every call, the AWS hook for what
    botocore cannot retry itself (a page whose body turned out cut or garbled).
    """

    def __init__(self, retry: RetryPolicy, cloud: str, only: Callable[[BaseException], bool] | None = None) -> None:
        self.retry = retry
        self.cloud = cloud
        self._only = only

    def _should_retry(self, exc: BaseException) -> bool:
        if self._only is not None and not self._only(exc):
            return False
        if isinstance(exc, httpx.TransportError):
            return not deadline_expired()
        return isinstance(exc, ApiError) and exc.retryable

    def _wait_bound(self, state: tenacity.RetryCallState) -> tuple[float, bool]:
        """(longest wait before the next attempt, whether the server fixed it by Retry-After)."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ApiError) and exc.retry_after is not None:
            return exc.retry_after, True
        return min(self.retry.backoff_max, self.retry.backoff_initial * (2 ** (state.attempt_number - 1))), False

    def _wait(self, state: tenacity.RetryCallState) -> float:
        bound, fixed = self._wait_bound(state)
        return bound if fixed else random.uniform(0, bound)  # full jitter

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        sleep = state.next_action.sleep if state.next_action else 0
        log.warning(
            "%s request failed (%s); retry %d of %d in %.1fs",
            self.cloud,
            exc,
            state.attempt_number,
            self.retry.max_attempts - 1,
            sleep,
        )

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= self.retry.max_attempts or deadline_expired():
            return True
        # Do not start a wait that would end past the total budget.
        upcoming, fixed = self._wait_bound(state) if state.outcome else (0.0, False)
        exc = state.outcome.exception() if state.outcome else None
        if fixed and isinstance(exc, ApiError) and upcoming > self.retry.retry_after_cap:
            exc.message += (
                f" (the server asked to retry after {upcoming:g} s, more than the {self.retry.retry_after_cap:g} s "
                "allowed: not retried; raise retry_max_elapsed or retry_after_max to wait that long)"
            )
            exc.refresh()
            return True
        return ((state.seconds_since_start or 0.0) + upcoming) > self.retry.max_elapsed

    def _retry_options(self, started: float) -> dict[str, Any]:
        def count_from(state: tenacity.RetryCallState) -> None:
            if state.attempt_number == 1:  # the budget counts from the first try, made bare
                state.start_time = started

        return {
            "retry": tenacity.retry_if_exception(self._should_retry),
            "stop": self._stop,
            "wait": self._wait,
            "before": count_from,
            "before_sleep": self._before_sleep,
            "reraise": True,
        }

    # The first try runs bare: nearly every call succeeds, and tenacity's per-call set-up was a
    # quarter of a status poll's CPU in a busy triggerer. Only a failure worth retrying enters
    # tenacity, which replays it as its first attempt (same waits, logs and stop rules).
    def retrying(self, retry_ok: bool = True) -> Callable[[Callable[[], _T]], _T]:
        def run(fn: Callable[[], _T]) -> _T:
            started = time.monotonic()
            try:
                return fn()
            except Exception as exc:
                if not (retry_ok and self._should_retry(exc)):
                    raise
                first = exc
            replay: list[BaseException] = [first]

            def again() -> _T:
                if replay:
                    raise replay.pop()
                return fn()

            return tenacity.Retrying(**self._retry_options(started))(again)

        return run

    def aretrying(self, retry_ok: bool = True) -> Callable[[Callable[[], Awaitable[_T]]], Awaitable[_T]]:
        async def run(fn: Callable[[], Awaitable[_T]]) -> _T:
            started = time.monotonic()
            try:
                return await fn()
            except Exception as exc:
                if not (retry_ok and self._should_retry(exc)):
                    raise
                first = exc
            replay: list[BaseException] = [first]

            async def again() -> _T:
                if replay:
                    raise replay.pop()
                return await fn()

            result: _T = await tenacity.AsyncRetrying(**self._retry_options(started))(again)
            return result

        return run


# -- transport and parse errors, mapped once -------------------------------------------------
@dataclass(frozen=True)
class EnvironmentProxy:
    """The proxy the environment names for a URL: its variable and URL (``url`` may hold
    credentials: show :attr:`shown`)."""

    variable: str
    url: str

    @property
    def shown(self) -> str:
        """scheme://host:port, without user or password."""
        parsed = httpx.URL(self.url)
        port = f":{parsed.port}" if parsed.port else ""
        host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host  # IPv6
        return f"{parsed.scheme}://{host}{port}"


def environment_proxy(url: httpx.URL) -> EnvironmentProxy | None:
    """The proxy ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` name for ``url``, less ``NO_PROXY``,
    matched as httpx's client matches its environment's proxies: the worker's client and the
    triggerer's aiohttp transport go the same way."""
    from httpx._utils import URLPattern, get_environment_proxies

    mounts = sorted(((URLPattern(key), proxy) for key, proxy in get_environment_proxies().items()), key=lambda m: m[0])
    for pattern, proxy in mounts:
        if pattern.matches(url):
            if proxy is None:  # NO_PROXY
                return None
            variable = f"{pattern.scheme.upper() or 'ALL'}_PROXY"
            if os.environ.get(variable.lower()):
                variable = variable.lower()  # set and not empty, it is the one used (as urllib reads them)
            return EnvironmentProxy(variable, proxy)
    return None


_DNS_FAILURES = ("name or service not known", "nodename nor servname", "getaddrinfo", "no address", "name resolution")
#: a connection that could not be opened at all (refused, no route, no such host)
_UNREACHABLE = ("refused", "unreachable", "no route", *_DNS_FAILURES)
#: texts of TLS failures, httpx's (ssl module) and aiohttp's (worded as httpx's by core.aio_transport)
_TLS_FAILURES = ("certificate", "[ssl", "_ssl.c", "handshake", "tls/ssl")
_CONNECTING = (httpx.ConnectError, httpx.ConnectTimeout)
#: TLS failures that say what was wrong with the host's TLS, not only that it stopped
_TLS_SETUP = ("certificate", "wrong_version", "wrong version", "unsupported protocol")


def _transport_hint(
    exc: Exception, host: str, timeouts: Timeouts, budget: float, proxy: EnvironmentProxy | None = None
) -> str:
    """What went wrong on the wire, and what to check, in words. ``proxy``: the environment's
    proxy the request went through (a connection that failed was the proxy's)."""
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    tls = any(s in lowered for s in _TLS_FAILURES)  # through a proxy too, TLS is the host's
    slow = too_slow(exc)
    if proxy is not None and slow is None and not deadline_expired() and isinstance(exc, _CONNECTING):
        if isinstance(exc, httpx.ConnectError) and not tls and any(s in lowered for s in _UNREACHABLE):
            # a proxied request opens no connection of its own to the host: this one was the proxy's
            return (
                f"cannot reach the proxy {proxy.shown} that {proxy.variable} names for {host} ({text}): check that "
                f"the proxy is up and its address in {proxy.variable}, or add the host to NO_PROXY to go direct"
            )
        # a certificate or a protocol mismatch is the host's TLS; an EOF, a reset or a handshake that timed
        # out is the tunnel cut off or never answered, by the proxy or by the host
        if not (isinstance(exc, httpx.ConnectError) and any(s in lowered for s in _TLS_SETUP)):
            return (
                f"could not connect to {host} through the proxy {proxy.shown} that {proxy.variable} names ({text}): "
                f"check that the proxy is up and lets this machine through to {host}, or add the host to NO_PROXY "
                "to go direct"
            )
    if slow is not None:
        return f"{host}: {slow}"
    if deadline_expired():
        return (
            f"no complete answer within the request's time budget of {budget:g} s (retry_max_elapsed + "
            f"read_timeout), retries included: {host} is too slow or trickling its answer. Check the service's "
            "health; raise retry_max_elapsed / read_timeout in the connection if it is legitimately slow"
        )
    if isinstance(exc, httpx.ConnectTimeout):
        return (
            f"could not connect to {host} within connect_timeout={timeouts.connect:g} s: check the host and port in "
            "the connection, and that this machine can reach it (firewall, proxy, VPN)"
        )
    if isinstance(exc, httpx.ReadTimeout):
        return (
            f"{host} sent nothing for read_timeout={timeouts.read:g} s: check the service's health, "
            "or raise read_timeout in the connection"
        )
    if isinstance(exc, (httpx.WriteTimeout, httpx.PoolTimeout)):
        return f"{type(exc).__name__} talking to {host}: check the network to it"
    if isinstance(exc, httpx.ProxyError):
        return f"the proxy refused the request to {host} ({text}): check HTTPS_PROXY / NO_PROXY"
    if isinstance(exc, httpx.ConnectError):
        if any(s in lowered for s in _DNS_FAILURES):
            return f"cannot resolve the host name of {host} ({text}): check the host in the connection and DNS"
        if "refused" in lowered:
            return (
                f"connection refused by {host} ({text}): check the host and port in the connection "
                "and that the service is up"
            )
        if tls:
            via = f" through the proxy {proxy.shown}" if proxy is not None else ""
            return (
                f"TLS with {host}{via} failed ({text}): check the URL's scheme, or set the connection's "
                "verify to a CA bundle path"
            )
        return f"cannot connect to {host} ({text}): check the host and port in the connection and the network"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return (
            f"the connection to {host} broke mid-answer ({text}): check the service's health and any proxy or "
            "load balancer in between"
        )
    if isinstance(exc, httpx.DecodingError):
        return f"the answer from {host} could not be decoded: {text}"
    if isinstance(exc, httpx.UnsupportedProtocol):  # a URL or proxy no transport here can use; says which
        return f"{host}: {text}"
    return f"{type(exc).__name__} talking to {host} ({text}): check the connection's host and the network"


class ApiSession:
    """A sync and an async httpx client for one hook, created lazily and reused across polls.

    Every exchange is bounded: a JSON answer is read streamed and refused past
    ``max_response_bytes`` or ``MAX_JSON_DEPTH`` before parsing; a request, retries included,
    ends within ``retry.max_elapsed + timeouts.read`` even against a trickling server; and
    transport, HTTP and parse failures all come out as :class:`ApiError` /
    :class:`MalformedResponseError` naming cloud, host, operation and request id.
    """

    def __init__(
        self,
        base_url: str,
        *,
        dialect: ApiDialect,
        auth: httpx.Auth | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str = True,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.dialect = dialect
        self.auth = auth
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.verify = _verify_setting(verify)
        self.headers = dict(headers or {})
        self.max_response_bytes = max_response_bytes
        #: the largest output one fetch reads (a body that never ends is cut here, not by the disk)
        self.max_output_bytes = max_output_bytes
        self._transport = transport
        self._async_transport = async_transport
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._admission: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        parts = urllib.parse.urlsplit(self.base_url)
        self.host = f"{parts.scheme}://{parts.netloc}" if parts.netloc else self.base_url
        #: the connection's shared rate limit (core.shared.RateLimiter), set by the hook
        self.limiter: Any = None
        self._urls: dict[str, httpx.URL] = {}

    @classmethod
    def for_connection(
        cls,
        base_url: str,
        extra: Mapping[str, Any],
        conn_id: str,
        *,
        dialect: ApiDialect,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        default_max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> ApiSession:
        """A session with the bounds a connection's extra sets (timeouts, retries, TLS, sizes), each checked."""
        return cls(
            base_url,
            dialect=dialect,
            auth=auth,
            timeouts=Timeouts.from_extra(extra, conn_id),
            retry=RetryPolicy.from_extra(extra, conn_id),
            verify=extra.get("verify", True),
            headers=headers,
            max_response_bytes=max_response_bytes(extra, conn_id),
            max_output_bytes=max_output_bytes(extra, conn_id, default_max_output_bytes),
        )

    # -- clients -----------------------------------------------------------------------------
    def _client_options(self) -> dict[str, Any]:
        """What the sync and the async client share: auth, timeouts, TLS, headers."""
        return {
            "auth": self.auth,
            "timeout": self.timeouts.to_httpx(),
            "verify": _ssl_context(self.verify),
            # only what core.content_encoding inflates in bounded steps (not br or zstd, whatever is installed)
            "headers": {"accept-encoding": ACCEPT_ENCODING, **self.headers},
            "follow_redirects": False,
            # a client may serve every trigger of a connection: keep all its connections alive
            # (httpx keeps 20 of 100, so a burst of polls would open and close 80 TLS sessions)
            "limits": httpx.Limits(max_connections=POOL_CONNECTIONS, max_keepalive_connections=POOL_CONNECTIONS),
        }

    @contextmanager
    def _proxy_support(self) -> Iterator[None]:
        """httpx builds a transport per proxy of the environment, a SOCKS one only with socksio:
        its ImportError says neither which variable nor which host."""
        try:
            yield
        except ImportError:
            proxy = environment_proxy(httpx.URL(self.base_url))
            if proxy is None or not proxy.url.lower().startswith("socks"):
                raise
            raise TaskRunsError(
                f"{self.dialect.cloud} at {self.host}: {proxy.variable} names the SOCKS proxy {proxy.shown} for "
                "it, and httpx needs the socksio package to use one: install httpx[socks] where tasks run, or "
                "add the host to NO_PROXY to go direct"
            ) from None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            hooks = self.limiter.httpx_hooks() if self.limiter else None
            with self._proxy_support():
                self._client = httpx.Client(transport=self._transport, event_hooks=hooks, **self._client_options())
            self._client._cookies = _NoCookies()
            bound_by_deadline(self._client)
        return self._client

    def warm_async(self) -> None:
        """Do in this (worker) thread what the first async request would do on the event loop:
        import the async transport (aiohttp, which builds TLS contexts as it loads: 0.1-0.5 s) and
        load the CA bundle (~30 ms). Hooks call it where they build the session off the loop."""
        _ssl_context(self.verify)
        if self._async_transport is None and async_transport_name() == "aiohttp":
            import airflow_task_runs.core.aio_transport  # noqa: F401

    @property
    def aclient(self) -> httpx.AsyncClient:
        if self._aclient is None:
            hooks = self.limiter.async_httpx_hooks() if self.limiter else None
            options = self._client_options()
            transport = self._async_transport
            if transport is None and async_transport_name() == "aiohttp":
                from airflow_task_runs.core.aio_transport import AiohttpTransport

                transport = AiohttpTransport(ssl_context=options["verify"], limit=POOL_CONNECTIONS)
            with self._proxy_support():
                self._aclient = httpx.AsyncClient(transport=transport, event_hooks=hooks, **options)
            bound_by_deadline(self._aclient)
        return self._aclient

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
            self._admission = None

    @property
    def admitted(self) -> asyncio.Semaphore:
        """At most as many async requests in the pool as it has connections; the rest wait here.

        httpcore's pool rescans every queued request against every connection each time one
        is added or finishes: with 1,000 triggers on one client that scan, not the network,
        was most of the triggerer's CPU. Waiting on a semaphore costs nothing per waiter.
        """
        loop = asyncio.get_running_loop()
        if self._admission is None or self._admission[0] is not loop:  # a semaphore serves one loop
            self._admission = (loop, asyncio.Semaphore(POOL_CONNECTIONS))
        return self._admission[1]

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        query = encode_query(params)
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    @property
    def rules(self) -> RetryRules:
        """How :attr:`retry` is applied (built on use: a caller may replace ``retry``)."""
        return RetryRules(self.retry, self.dialect.cloud)

    @property
    def budget(self) -> float:
        """Seconds one request may take in all, retries included."""
        return self.retry.budget(self.timeouts)

    def deadline(self) -> contextlib.AbstractContextManager[float]:
        """Bound everything inside (sends, reads, retries, waits) by one request budget."""
        return request_deadline(self.budget)

    def download_pace(self) -> contextlib.AbstractContextManager[DownloadPace]:
        """Bound an output's body streaming inside by progress (:class:`DownloadPace`), not the budget."""
        return download_pace(self.timeouts)

    def _body_bounds(self, download: bool) -> contextlib.AbstractContextManager[Any]:
        return self.download_pace() if download else contextlib.nullcontext()

    # -- requests ----------------------------------------------------------------------------
    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        retry_ok: bool = True,
        operation: str | None = None,
        max_bytes: int | None = None,
        download: bool = False,
    ) -> tuple[Any, httpx.Response]:
        """Send, retry per policy, raise :class:`ApiError` on failure; return (JSON body, response).

        ``retry_ok=False`` marks a request that must not be repeated (a POST without an
        idempotency token): it is sent exactly once. ``operation`` names the call in errors.
        ``max_bytes`` replaces ``max_response_bytes`` for a call whose answer carries an output;
        ``download=True`` bounds such an answer's body by progress (:func:`download_pace`), not
        by the request's budget.
        """
        request = self._build(self.client, method, path, params, json_body, content, headers)

        def attempt() -> tuple[Any, httpx.Response]:
            with self._mapped(request, operation):
                response = self.client.send(request, stream=True)
                try:
                    with self._body_bounds(download):
                        data = self._read(response, operation, max_bytes)
                finally:
                    response.close()
            return self._accept(request, response, data, operation)

        with self.deadline():
            return self._retrying(retry_ok)(attempt)

    async def arequest_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        retry_ok: bool = True,
        operation: str | None = None,
        max_bytes: int | None = None,
        download: bool = False,
    ) -> tuple[Any, httpx.Response]:
        request = self._build(self.aclient, method, path, params, json_body, content, headers)
        if download:  # the transport leaves the body's time to the pace (core.aio_transport)
            request.extensions[DOWNLOAD_EXTENSION] = True

        async def attempt() -> tuple[Any, httpx.Response]:
            with self._mapped(request, operation):
                async with self.admitted:
                    response = await self._asend(request)
                    try:
                        with self._body_bounds(download):
                            data = await self._aread(response, operation, max_bytes)
                    finally:
                        await response.aclose()
            return self._accept(request, response, data, operation)

        with self.deadline():
            return await self._aretrying(retry_ok)(attempt)

    async def _asend(self, request: httpx.Request) -> httpx.Response:
        """``aclient.send(request, stream=True)`` less what this session never uses.

        A triggerer sends a thousand of these a second. httpx's client wraps each in auth,
        redirect and stream layers, extracts cookies and logs a line: with 1,000 watches that
        was a fifth of a status poll's CPU. Kept, in httpx's order: the auth flow (a signer may
        answer a response with a new request), the event hooks (the rate limit), the transport
        for the URL (the proxy mounts). Left out: redirects (never followed here), cookies (none
        kept, as :class:`_NoCookies` keeps none on the sync client), ``response.elapsed`` and
        ``history``, Basic auth from a URL's user:password (no cloud's base URL has one) and the
        log line.
        """
        client = self.aclient
        if client.is_closed:  # as send: a closed client's transport would open a pool nothing closes
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        hooks = client.event_hooks
        flow = (client.auth or _NO_AUTH).async_auth_flow(request)
        try:
            request = await flow.__anext__()
            while True:
                for hook in hooks["request"]:
                    await hook(request)
                try:
                    response = await client._transport_for_url(request.url).handle_async_request(request)
                except httpx.RequestError as exc:  # as httpx's client does: the error names its request
                    try:
                        exc.request  # noqa: B018
                    except RuntimeError:
                        exc.request = request
                    raise
                response.request = request
                try:
                    for hook in hooks["response"]:
                        await hook(response)
                    try:
                        request = await flow.asend(response)
                    except StopAsyncIteration:
                        return response
                    await response.aread()  # the flow asks again: this answer is done with
                except BaseException:
                    await response.aclose()
                    raise
        finally:
            await flow.aclose()

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        retry_ok: bool = True,
        operation: str | None = None,
    ) -> Iterator[httpx.Response]:
        """A streamed response; connecting is retried, the body is read by the caller.

        ``json_body`` / ``content`` send a (small) request body, as in :meth:`request_json`;
        ``retry_ok=False`` sends the request exactly once (the caller may retry the whole
        exchange, e.g. when it can re-read the body from the start). The caller's reading is
        bounded by the same deadline, and its transport errors are mapped like the session's.
        """
        request = self._build(self.client, method, path, params, json_body, content, headers)

        def attempt() -> httpx.Response:
            with self._mapped(request, operation):
                response = self.client.send(request, stream=True)
                if not response.is_success:  # a redirect's page is no more the answer than an error's
                    try:
                        data = self._read(response, operation)
                    finally:
                        response.close()
                    self._accept(request, response, data, operation)
            return response

        with self.deadline():
            response: httpx.Response = self._retrying(retry_ok)(attempt)
            try:
                with self._mapped(request, operation):
                    yield response
            finally:
                response.close()

    @asynccontextmanager
    async def astream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        retry_ok: bool = True,
        operation: str | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """The async twin of :meth:`stream`."""
        request = self._build(self.aclient, method, path, params, json_body, content, headers)

        async def attempt() -> httpx.Response:
            with self._mapped(request, operation):
                response = await self._asend(request)
                if not response.is_success:  # a redirect's page is no more the answer than an error's
                    try:
                        data = await self._aread(response, operation)
                    finally:
                        await response.aclose()
                    self._accept(request, response, data, operation)
            return response

        async with self.admitted:
            with self.deadline():
                response: httpx.Response = await self._aretrying(retry_ok)(attempt)
                try:
                    with self._mapped(request, operation):
                        yield response
                finally:
                    await response.aclose()

    def _build(
        self,
        client: httpx.Client | httpx.AsyncClient,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        content: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Request:
        request_headers = dict(headers or {})
        if json_body is not None:
            import json

            content = json.dumps(json_body, separators=(",", ":")).encode()
            request_headers.setdefault("content-type", "application/json")
        # build_request merges the client's headers and sets its timeouts on the request.
        return client.build_request(method, self._parsed_url(path, params), content=content, headers=request_headers)

    def _parsed_url(self, path: str, params: Mapping[str, Any] | None) -> httpx.URL:
        """The request's URL, parsed once per distinct URL: a watch asks for the same one every
        poll, and parsing it (httpx validates every part) was a tenth of a poll's CPU."""
        text = self.url(path, params)
        url = self._urls.get(text)
        if url is None:
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            url = self._urls[text] = httpx.URL(text)
        return url

    # -- bounded reading -----------------------------------------------------------------------
    def _too_large(self, response: httpx.Response, size: int, operation: str | None, limit: int) -> ApiError:
        setting = (
            "max_response_bytes in the connection's extra (or [task_runs] max_response_bytes)"
            if limit == self.max_response_bytes
            else "the limit named in the operator's documentation"
        )
        return ApiError(
            cloud=self.dialect.cloud,
            status_code=response.status_code,
            code="ResponseTooLarge",
            message=f"the answer is over {size} bytes, more than the {limit} bytes allowed for this call; "
            f"nothing was kept. If the service legitimately sends that much, raise {setting}",
            request_id=self._request_id(response),
            method=response.request.method,
            path=response.request.url.path,
            host=self.host,
            operation=operation,
        )

    def _limit(self, response: httpx.Response, operation: str | None, max_bytes: int | None) -> int:
        """The byte limit for this answer; refuses at once one whose Content-Length is over it."""
        limit = self.max_response_bytes if max_bytes is None else max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large(response, int(declared), operation, limit)
        return limit

    def _read(self, response: httpx.Response, operation: str | None, max_bytes: int | None = None) -> bytes:
        """The whole body, decoded, never more than ``max_response_bytes`` of it in memory."""
        limit = self._limit(response, operation, max_bytes)
        buf = bytearray()
        try:
            for chunk in iter_decoded(response):
                self._take(buf, chunk, response, operation, limit)
        except UndecodableBody as exc:
            self._undecodable(response, exc, operation, buf)
        return self._keep(response, buf)

    async def _aread(self, response: httpx.Response, operation: str | None, max_bytes: int | None = None) -> bytes:
        limit = self._limit(response, operation, max_bytes)
        buf = bytearray()
        try:
            async for chunk in aiter_decoded(response):
                self._take(buf, chunk, response, operation, limit)
        except UndecodableBody as exc:
            self._undecodable(response, exc, operation, buf)
        return self._keep(response, buf)

    def _take(self, buf: bytearray, chunk: bytes, response: httpx.Response, operation: str | None, limit: int) -> None:
        buf += chunk
        if len(buf) > limit:
            raise self._too_large(response, len(buf), operation, limit)

    @staticmethod
    def _keep(response: httpx.Response, buf: bytearray) -> bytes:
        data = bytes(buf)
        response._content = data  # what response.content / .json() read from now on
        return data

    def _undecodable(
        self, response: httpx.Response, exc: UndecodableBody, operation: str | None, buf: bytearray
    ) -> None:
        """A success whose body cannot be decoded is an error; an error's body is dropped, its status speaks."""
        if not response.is_success:
            buf.clear()
            return
        raise ApiError(
            cloud=self.dialect.cloud,
            status_code=response.status_code,
            code="UndecodableBody",
            message=str(exc),
            request_id=self._request_id(response),
            method=response.request.method,
            path=response.request.url.path,
            host=self.host,
            operation=operation,
            retryable=exc.retryable,
        ) from None

    @contextmanager
    def _mapped(self, request: httpx.Request, operation: str | None) -> Iterator[None]:
        """httpx's transport errors as one :class:`ApiError` naming cloud, host, call and what to check."""
        try:
            yield
        except (httpx.TransportError, httpx.DecodingError) as exc:
            # a body streamed by the caller (a download) that cannot be decoded: asking again helps
            # only when it was cut short
            expired = deadline_expired() or too_slow(exc) is not None
            retryable = not expired and getattr(exc, "retryable", True)
            raise ApiError(
                cloud=self.dialect.cloud,
                status_code=None,
                code="Timeout" if expired else type(exc).__name__,
                message=_transport_hint(exc, self.host, self.timeouts, self.budget, environment_proxy(request.url)),
                request_id=self._sent_request_id(request),
                method=request.method,
                path=request.url.path,
                host=self.host,
                operation=operation,
                retryable=retryable,
            ) from None

    def _sent_request_id(self, request: httpx.Request) -> str | None:
        for name in self.dialect.request_id_headers:
            if value := request.headers.get(name):
                return value
        return None

    # -- responses ---------------------------------------------------------------------------
    def parse_model(self, cls: type[Any], body: Any, response: httpx.Response, request_id: str | None = None) -> Any:
        """Validate a response body into ``cls``; a body that does not fit is a MalformedResponseError."""
        from pydantic import ValidationError

        request_id = request_id or self.request_id_of(response, body)
        try:
            model = cls.model_validate(body)
        except (ValidationError, RecursionError) as exc:
            problem = model_problem(exc)
            raise MalformedResponseError(
                cloud=self.dialect.cloud,
                status_code=response.status_code,
                code=None,
                message=f"the response is not a {cls.__name__} ({problem})",
                request_id=request_id,
                method=response.request.method,
                path=response.request.url.path,
                host=self.host,
            ) from None
        if hasattr(model, "request_id"):
            model.request_id = request_id
        return model

    def request_id_of(self, response: httpx.Response, body: Any = _UNPARSED) -> str | None:
        """The cloud's request id for a response (header first, then body), for logs and XCom.

        Pass the ``body`` already parsed, if any: parsing the answer again costs a poll's CPU.
        """
        if body is _UNPARSED:
            body = _json_or_none(response)
        return self._request_id(response, _body_request_id(body))

    def _request_id(self, response: httpx.Response, body_id: str | None = None) -> str | None:
        for name in self.dialect.request_id_headers:
            if value := response.headers.get(name):
                return value
        return body_id or self._sent_request_id(response.request)

    def _malformed(
        self, response: httpx.Response, message: str, operation: str | None, retryable: bool
    ) -> MalformedResponseError:
        return MalformedResponseError(
            cloud=self.dialect.cloud,
            status_code=response.status_code,
            code=None,
            message=message,
            request_id=self._request_id(response),
            method=response.request.method,
            path=response.request.url.path,
            host=self.host,
            operation=operation,
            retryable=retryable,
        )

    def _parse(self, response: httpx.Response, data: bytes, operation: str | None) -> Any:
        """The JSON body of a 2xx answer; anything else there is a MalformedResponseError."""
        if not data.strip():
            return None
        content_type = response.headers.get("content-type", "")
        try:
            return bounded_json.loads(data)
        except bounded_json.JsonTooDeep as exc:
            # deliberate or broken, asking again gets the same answer
            raise self._malformed(response, str(exc), operation, retryable=False) from None
        except ValueError:
            pass
        if content_type and "json" not in content_type:
            what = f"a {content_type.split(';')[0].strip()} page, not JSON"
            hint = " (a proxy, load balancer or captive portal answering instead of the API?)"
        else:
            what, hint = "not valid JSON", " (cut or garbled on the way)"
        raise self._malformed(response, f"the response body is {what} ({len(data)} bytes){hint}", operation, True)

    def _accept(
        self, request: httpx.Request, response: httpx.Response, data: bytes, operation: str | None = None
    ) -> tuple[Any, httpx.Response]:
        path = request.url.path
        if response.is_success:
            body = self._parse(response, data, operation)
            if self.dialect.check_success_body is not None:
                failure = self.dialect.check_success_body(response, body)
                if failure is not None:
                    code, message = failure
                    err = ApiError(
                        cloud=self.dialect.cloud,
                        status_code=response.status_code,
                        code=code,
                        message=message or "the response body says the call failed",
                        request_id=self._request_id(response, _body_request_id(body)),
                        method=request.method,
                        path=path,
                        host=self.host,
                        operation=operation,
                    )
                    err.retryable = bool(self.dialect.is_retryable and self.dialect.is_retryable(err))
                    raise err
            return body, response
        try:
            body = bounded_json.loads(data) if data.strip() else None
        except ValueError:  # an error page that is not JSON (or is hostile): the status still speaks
            body = None
        code = message = body_id = None
        if self.dialect.parse_error is not None:
            try:
                code, message, body_id = self.dialect.parse_error(response, body)
            except Exception:  # a malformed error body must not hide the HTTP status
                code = message = body_id = None
        if not message:
            message = response.reason_phrase or "request failed"
        err = ApiError(
            cloud=self.dialect.cloud,
            status_code=response.status_code,
            code=code,
            message=message,
            request_id=self._request_id(response, body_id),
            method=request.method,
            path=path,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            host=self.host,
            operation=operation,
        )
        status = response.status_code
        err.retryable = (
            (status in self.retry.statuses and status not in self.dialect.never_retry)
            or bool(self.dialect.is_retryable and self.dialect.is_retryable(err))
            or (status == 401 and bool(request.extensions.get(REUSED_AUTH_EXTENSION)))
        )
        raise err

    # -- retries -----------------------------------------------------------------------------
    def _retrying(self, retry_ok: bool) -> Callable[[Callable[[], _T]], _T]:
        return self.rules.retrying(retry_ok)

    def _aretrying(self, retry_ok: bool) -> Callable[[Callable[[], Awaitable[_T]]], Awaitable[_T]]:
        return self.rules.aretrying(retry_ok)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return bounded_json.loads(response.content)
    except (ValueError, httpx.ResponseNotRead):
        return None


def _body_request_id(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("RequestId", "requestId", "request_id"):
            if isinstance(body.get(key), str):
                return body[key]
    return None
