"""botocore held to the httpx session's bounds: one time budget, a size cap, answers checked before parsing.

botocore reads a whole answer into memory with no size limit, does not enforce Content-Length,
and turns a 200 whose body is not JSON (an HTML page, a cut body) into ``{"message": <body>}``,
which looks like a valid, empty answer. Two event handlers, registered on each sync client,
close those gaps: ``before-send`` reads the answer itself (streamed, capped, checked against
its Content-Length and the request's deadline between reads), ``before-parse`` refuses a 2xx
that is not JSON, is nested too deep, or does not parse.
"""

from __future__ import annotations

import functools
from typing import Any

from airflow_task_runs.core import bounded_json
from airflow_task_runs.core.errors import ApiError, MalformedResponseError
from airflow_task_runs.core.http import deadline_left

_READ = 64 * 1024


class _Body:
    """What ``AWSResponse.content`` reads (``raw.stream()``): the bytes read already, bounded."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, *_: Any, **__: Any) -> Any:
        yield self._data


def install(client: Any, *, cloud: str, max_bytes: int, json_protocol: bool = True, sync: bool = True) -> Any:
    """Register the guards on a botocore client (once); returns the client.

    An aiobotocore client (``sync=False``) reads with the same cap; its time is bounded by the
    caller's ``asyncio`` timeout.
    """
    if getattr(client, "_task_runs_guarded", False):
        return client
    host = client.meta.endpoint_url
    session = client._endpoint.http_session  # the client's own pool, TLS and proxy settings
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


def _bounded_send(request: Any, http_session: Any, cloud: str, host: str, cap: int, **_: Any) -> Any:
    """Send ``request`` on the client's session and read the answer within the deadline and ``cap``."""
    from botocore.awsrequest import AWSResponse

    if getattr(request, "stream_output", False):  # a streamed download (S3 GetObject): the caller reads it
        return None
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
            raise ApiError(
                cloud=cloud,
                status_code=None,
                code="Timeout",
                message=f"no complete answer from {host} within the request's time budget (retry_max_elapsed + "
                "read_timeout), retries included: the server is too slow or trickling its answer",
                method=request.method,
                path=_path(request.url),
                host=host,
            )
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
