"""botocore held to the httpx session's bounds: one time budget, a size cap, answers checked before parsing.

botocore reads a whole answer into memory with no size limit, does not enforce Content-Length,
and turns a 200 whose body is not JSON (an HTML page, a cut body) into ``{"message": <body>}``,
which looks like a valid, empty answer. Two event handlers, registered on each sync client,
close those gaps: ``before-send`` reads the answer itself (streamed, capped, checked against
its Content-Length and the request's deadline between reads), ``before-parse`` refuses a 2xx
that is not JSON, is nested too deep, or does not parse. botocore's retry handler is wrapped
(``needs-retry``) so that it never starts a backoff that would end past the retry window.

The guards reach into botocore, urllib3 and socket internals (the client's HTTP session and
its pools, the sockets, the event emitter's retry handler). Those are checked when a guard is
installed: a release that renamed one fails every call at once, naming what is missing, rather
than leaving calls unbounded or failing them half-way.
"""

from __future__ import annotations

import functools
import inspect
import io
import logging
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_task_runs.core import bounded_json
from airflow_task_runs.core.errors import ApiError, MalformedResponseError, TaskRunsError
from airflow_task_runs.core.http import deadline_left

log = logging.getLogger(__name__)

_READ = 64 * 1024


class BotocoreInternalsError(AirflowFailException, TaskRunsError):
    """The installed botocore / urllib3 lack an internal the guards rely on. Not retried: the
    installation has to change."""


class _Body:
    """What ``AWSResponse.content`` reads (``raw.stream()``): the bytes read already, bounded."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, *_: Any, **__: Any) -> Any:
        yield self._data


def install(
    client: Any,
    *,
    cloud: str,
    max_bytes: int,
    json_protocol: bool = True,
    sync: bool = True,
    retry_reserve: float = 0.0,
) -> Any:
    """Register the guards on a botocore client (once); returns the client.

    An aiobotocore client (``sync=False``) reads with the same cap; its time is bounded by the
    caller's ``asyncio`` timeout. On both, a retry is made only if, after botocore's backoff,
    ``retry_reserve`` seconds (the read timeout) are left of the request's deadline.
    """
    if getattr(client, "_task_runs_guarded", False):
        return client
    _check_internals(client, cloud, sync)
    host = client.meta.endpoint_url
    session = client._endpoint.http_session  # the client's own pool, TLS and proxy settings
    _bound_retries(client, cloud, host, retry_reserve, sync)
    client.meta.events.register(
        "before-send",
        functools.partial(
            _bounded_send if sync else _abounded_send, http_session=session, cloud=cloud, host=host, cap=max_bytes
        ),
    )
    if json_protocol:
        client.meta.events.register("before-parse", functools.partial(_check_json, cloud=cloud, host=host))
    client._task_runs_guarded = True
    return client


def _retry_event(client: Any) -> tuple[str, str]:
    """The event and unique id botocore (and aiobotocore) register a client's retry handler under,
    in every retry mode (legacy, standard, adaptive)."""
    service = client.meta.service_model.service_id.hyphenize()
    return f"needs-retry.{service}", f"retry-config-{service}"


def _retry_handler(client: Any) -> Any:
    """The client's retry handler, or None (found by its unique id: the emitter has no public lookup)."""
    handlers = getattr(getattr(client.meta.events, "_emitter", None), "_unique_id_handlers", None)
    entry = handlers.get(_retry_event(client)[1]) if isinstance(handlers, dict) else None
    return entry.get("handler") if isinstance(entry, dict) else None


def _check_internals(client: Any, cloud: str, sync: bool) -> None:
    """Refuse, naming each, the internals missing from this botocore / urllib3 / socket."""
    import socket

    import botocore
    import urllib3
    from urllib3.connectionpool import HTTPConnectionPool
    from urllib3.response import HTTPResponse

    missing = []
    session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    if session is None:
        missing.append("client._endpoint.http_session")
    elif sync:
        proxy = getattr(session, "_proxy_config", None)
        needed = {
            f"{type(session).__name__}._proxy_config.proxy_url_for": callable(getattr(proxy, "proxy_url_for", None)),
            f"{type(session).__name__}._get_connection_manager": callable(
                getattr(session, "_get_connection_manager", None)
            ),
            "urllib3 HTTPConnectionPool.ConnectionCls": hasattr(HTTPConnectionPool, "ConnectionCls"),
            "urllib3 HTTPResponse.read1": hasattr(HTTPResponse, "read1"),
            "socket.socket._io_refs": hasattr(socket.socket, "_io_refs"),
            "socket.socket._decref_socketios": hasattr(socket.socket, "_decref_socketios"),
        }
        missing += [name for name, present in needed.items() if not present]
    if not callable(_retry_handler(client)):
        unique_id = _retry_event(client)[1]
        missing.append(f"the retry handler client.meta.events._emitter._unique_id_handlers[{unique_id!r}]")
    if not missing:
        return
    versions = f"botocore {botocore.__version__}, urllib3 {urllib3.__version__}"
    if not sync:
        import aiobotocore

        versions = f"aiobotocore {aiobotocore.__version__}, {versions}"
    raise BotocoreInternalsError(
        f"{cloud}: cannot bound calls with {versions}: missing {', '.join(missing)}. The provider holds every "
        "call to its time budget and answer size cap through these internals, and refuses to call unbounded: "
        "install a botocore / urllib3 release this version of airflow-task-runs supports (or a newer "
        "airflow-task-runs)"
    )


def _bound_retries(client: Any, cloud: str, host: str, reserve: float, sync: bool) -> None:
    """Wrap the client's retry handler: no retry whose backoff would end past the retry window.

    botocore sleeps whatever backoff its handler returns, deadline or not. The wrapper keeps
    botocore's decision and backoff (retry mode, attempts, quota, throttling) and only turns a
    retry down when, after the backoff, less than ``reserve`` (the read timeout an attempt may
    take) would be left of the request's deadline: the call then ends, in time, with the last
    answer's own error; or, when the deadline itself cut that attempt short (a trickling
    server), with the time-budget error.
    """
    event, unique_id = _retry_event(client)
    retry = _retry_handler(client)

    def within(delay: Any, kwargs: dict[str, Any]) -> Any:
        if delay is None or delay is False:
            return delay
        left = deadline_left()
        if left is None or left - float(delay) >= reserve:
            return delay
        if left <= 0:  # the attempt ran to the deadline: its read was cut by the budget, not read_timeout
            request = kwargs.get("request_dict") or {}
            raise _out_of_time(request.get("method"), request.get("url"), cloud, host)
        log.warning(
            "%s %s: not retried after attempt %s: botocore's backoff of %.2f s would leave %.2f s of the call's "
            "time budget, under the %g s read_timeout an attempt may take (raise retry_max_elapsed to retry longer)",
            cloud,
            getattr(kwargs.get("operation"), "name", "call"),
            kwargs.get("attempts"),
            float(delay),
            max(0.0, left - float(delay)),
            reserve,
        )
        return None  # no retry from botocore's handler; another (S3's region redirector) may still ask

    def needs_retry(**kwargs: Any) -> Any:
        return within(retry(**kwargs), kwargs)

    async def aneeds_retry(**kwargs: Any) -> Any:
        delay = retry(**kwargs)
        return within(await delay if inspect.isawaitable(delay) else delay, kwargs)

    client.meta.events.unregister(event, unique_id=unique_id)
    client.meta.events.register(event, needs_retry if sync else aneeds_retry, unique_id=unique_id)


class _DeadlineSocket:
    """A connected socket whose every receive and send ends by the request's deadline.

    http.client reads the status line and headers itself, one ``recv`` at a time, each bounded
    only by the read timeout: a server trickling them a byte per read timeout would hold a call
    past its budget. Each operation here gets ``min(read timeout, what is left of the deadline)``.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._timeout = sock.gettimeout()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout
        self._sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._timeout

    def _arm(self) -> None:
        left = deadline_left()
        if left is not None and left <= 0:
            raise TimeoutError("the request's time budget is spent")
        timeout = self._timeout if left is None or (self._timeout is not None and self._timeout < left) else left
        self._sock.settimeout(timeout)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._arm()
        return self._sock.recv_into(buffer, nbytes, flags)

    def recv(self, size: int, flags: int = 0) -> bytes:
        self._arm()
        return self._sock.recv(size, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._arm()
        self._sock.sendall(data, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        self._arm()
        return self._sock.send(data, flags)

    def makefile(self, mode: str = "r", buffering: int | None = None, **_: Any) -> Any:
        """What http.client reads the answer from ("rb"): file reads go through :meth:`recv_into`."""
        raw = _DeadlineSocketIO(self)
        return raw if buffering == 0 else io.BufferedReader(raw, buffering or io.DEFAULT_BUFFER_SIZE)


class _DeadlineSocketIO(io.RawIOBase):
    """``socket.SocketIO`` over a :class:`_DeadlineSocket` (keeps the socket open while a file reads it)."""

    def __init__(self, sock: _DeadlineSocket) -> None:
        super().__init__()
        self._socket = sock
        sock._sock._io_refs += 1  # type: ignore[attr-defined]  # as socket.makefile: close() waits for us

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._socket.recv_into(buffer)

    def fileno(self) -> int:
        return self._socket.fileno()

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._socket._sock._decref_socketios()  # type: ignore[attr-defined]


def _deadline_connections(http_session: Any, url: str) -> None:
    """Make the connections of ``url``'s urllib3 pool use :class:`_DeadlineSocket` (once per pool)."""
    proxy_url = http_session._proxy_config.proxy_url_for(url)
    pool = http_session._get_connection_manager(url, proxy_url).connection_from_url(url)
    base = pool.ConnectionCls
    if getattr(base, "_task_runs_deadline", False):
        return

    class DeadlineConnection(base):  # type: ignore[misc, valid-type]
        _task_runs_deadline = True

        def connect(self) -> None:
            super().connect()
            self.sock = _DeadlineSocket(self.sock)  # type: ignore[has-type]

    pool.ConnectionCls = DeadlineConnection


def _bounded_send(request: Any, http_session: Any, cloud: str, host: str, cap: int, **_: Any) -> Any:
    """Send ``request`` on the client's session and read the answer within the deadline and ``cap``."""
    from botocore.awsrequest import AWSResponse

    _deadline_connections(http_session, request.url)
    if getattr(request, "stream_output", False):  # a streamed download (S3 GetObject): the caller reads it
        return None
    left = deadline_left()
    if left is not None and left <= 0:  # botocore retrying what the budget already ended
        raise _out_of_time(request.method, request.url, cloud, host)
    request.stream_output = True
    try:
        response = http_session.send(request)
    finally:
        request.stream_output = False
    raw = response.raw
    try:
        data = _read(raw, request, cloud, host, cap)
    except BaseException:
        raw.close()
        raise
    return AWSResponse(request.url, response.status_code, response.headers, _Body(data))


class _AioBody:
    """What ``AioAWSResponse.content`` awaits (``raw.read()``)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self) -> bytes:
        return self._data


async def _abounded_send(request: Any, http_session: Any, cloud: str, host: str, cap: int, **_: Any) -> Any:
    """The aiobotocore twin of :func:`_bounded_send` (aiohttp underneath)."""
    import aiohttp
    from aiobotocore.awsrequest import AioAWSResponse
    from botocore.exceptions import ConnectionClosedError

    if getattr(request, "stream_output", False):
        return None
    request.stream_output = True
    try:
        response = await http_session.send(request)
    finally:
        request.stream_output = False
    raw = response.raw
    buf = bytearray()
    try:
        async for chunk in raw.content.iter_any():
            buf += chunk
            if len(buf) > cap:
                raise _too_large(request, cloud, host, len(buf), cap)
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
        raise ConnectionClosedError(endpoint_url=request.url, error=str(exc)) from None
    finally:
        raw.release()
    return AioAWSResponse(request.url, response.status_code, response.headers, _AioBody(bytes(buf)))


def _too_large(request: Any, cloud: str, host: str, size: int, cap: int) -> ApiError:
    return ApiError(
        cloud=cloud,
        status_code=None,
        code="ResponseTooLarge",
        message=f"the answer is over {size} bytes, more than the {cap} allowed; nothing was kept. "
        "Raise max_response_bytes in the connection's extra (or [task_runs] max_response_bytes) "
        "if the service legitimately sends that much",
        method=request.method,
        path=_path(request.url),
        host=host,
    )


def _read(raw: Any, request: Any, cloud: str, host: str, cap: int) -> bytes:
    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
    from urllib3.exceptions import HTTPError
    from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeout

    buf = bytearray()
    while True:
        left = deadline_left()
        if left is not None and left <= 0:
            raise _out_of_time(request.method, request.url, cloud, host)
        try:
            chunk = raw.read1(_READ, decode_content=False)
        except Urllib3ReadTimeout:
            raise ReadTimeoutError(endpoint_url=request.url) from None  # botocore retries it
        except (HTTPError, OSError) as exc:
            raise ConnectionClosedError(endpoint_url=request.url, error=str(exc)) from None
        if not chunk:
            break
        buf += chunk
        if len(buf) > cap:
            raise _too_large(request, cloud, host, len(buf), cap)
    declared = raw.headers.get("content-length", "")
    if declared.isdigit() and len(buf) < int(declared):  # a cut answer: botocore retries a closed connection
        raise ConnectionClosedError(endpoint_url=request.url, error=f"{len(buf)} of {declared} bytes")
    return bytes(buf)


def _out_of_time(method: str | None, url: str | None, cloud: str, host: str) -> ApiError:
    return ApiError(
        cloud=cloud,
        status_code=None,
        code="Timeout",
        message=f"no complete answer from {host} within the request's time budget (retry_max_elapsed + "
        "read_timeout), retries included: the server is too slow or trickling its answer",
        method=method,
        path=_path(url) if url else None,
        host=host,
    )


def _path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path or "/"


def _check_json(operation_model: Any, response_dict: dict[str, Any], cloud: str, host: str, **_: Any) -> None:
    """A 2xx must be JSON (not an HTML page), shallow, and parse: else a MalformedResponseError."""
    status = response_dict.get("status_code") or 0
    body = response_dict.get("body") or b""
    if not 200 <= status < 300 or not body.strip():
        return
    headers = response_dict.get("headers") or {}
    content_type = str(headers.get("content-type", ""))

    def malformed(message: str, retryable: bool) -> MalformedResponseError:
        return MalformedResponseError(
            cloud=cloud,
            status_code=status,
            code=None,
            message=message,
            request_id=headers.get("x-amzn-requestid") or headers.get("x-amz-request-id"),
            host=host,
            operation=operation_model.name,
            retryable=retryable,
        )

    try:  # the body decides (moto labels its JSON text/html); the type only words the error
        bounded_json.loads(body)
    except bounded_json.JsonTooDeep as exc:
        raise malformed(str(exc), retryable=False) from None
    except ValueError:
        if content_type and "json" not in content_type:
            raise malformed(
                f"the answer is a {content_type.split(';')[0].strip()} page, not JSON ({len(body)} bytes; a proxy "
                "or captive portal answering instead of AWS?)",
                retryable=True,
            ) from None
        raise malformed(
            f"the answer is not valid JSON ({len(body)} bytes: cut, or a Content-Length shorter than the body)",
            retryable=True,
        ) from None
