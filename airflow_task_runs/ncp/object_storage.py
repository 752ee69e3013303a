"""NCP Object Storage (the S3 API) for result files, on the same httpx session machinery as every API call.

A result file streams through :class:`~airflow_task_runs.core.http.ApiSession`, so it gets what
every other output gets and a botocore ``get_object`` does not: transport errors mapped once
(cloud, host, call), the connection's retry policy for connecting, and a body bounded by progress
(``download_min_rate`` over ``download_rate_window``) and by ``max_output_bytes``, whatever the
store sends. Requests are signed by botocore's own S3 SigV4 signer.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from airflow_task_runs.core.http import ApiSession

CLOUD = "NCP Object Storage"
#: an S3 error document is small; read a bounded part of it with a regex, never an XML parser
_XML_FIELD = re.compile(r"<(Code|Message|RequestId)>([^<]{0,500})</\1>")


class S3SigV4Auth(httpx.Auth):
    """Signs each request (every retry afresh) with botocore's S3 SigV4 signer."""

    def __init__(self, access_key: str, secret_key: str, region: str) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._region = region

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        from botocore.auth import S3SigV4Auth as Signer
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        unsigned = AWSRequest(method=request.method, url=str(request.url), data=request.content or b"")
        Signer(Credentials(self._access_key, self._secret_key), "s3", self._region).add_auth(unsigned)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256"):
            request.headers[name] = unsigned.headers[name]
        yield request


def parse_error(response: httpx.Response, body: Any) -> tuple[str | None, str | None, str | None]:
    """(code, message, request id) of an S3 XML error document."""
    fields = dict(_XML_FIELD.findall(response.content[:8192].decode("utf-8", "replace")))
    return fields.get("Code"), fields.get("Message"), fields.get("RequestId")


def _segment(text: str) -> str:
    # "." and ".." are names in an S3 key, but URL paths drop them (httpx does): escape them
    return {".": "%2E", "..": "%2E%2E"}.get(text) or urllib.parse.quote(text, safe="~")


def object_path(bucket: str, key: str) -> str:
    """Path-style ``/bucket/key``, each segment quoted (the key's ``/`` kept, dot segments escaped)."""
    return "/" + "/".join(_segment(part) for part in [bucket, *key.split("/")])


@contextmanager
def open_object(
    session: ApiSession, bucket: str, key: str, *, chunk_size: int, conn_id: str, what: str
) -> Iterator[tuple[int, Iterator[bytes]]]:
    """GET one object: ``(Content-Length, chunks)``; the response closes with the block.

    An object whose declared size is over ``max_output_bytes`` is refused before its body is
    read; one that sends more than that anyway is cut there. The body is bounded by progress,
    not by the request's time budget, so a large file on a slow but healthy link finishes.
    """
    from airflow_task_runs.core.errors import OutputIntegrityError, OutputOverCapError

    cap = session.max_output_bytes
    path = object_path(bucket, key)
    # the stored bytes as they are: a Content-Encoding decoded on the way would no longer match
    # the Content-Length (or the object), so none is asked for and the body is read raw
    headers = {"accept-encoding": "identity"}
    with session.stream("GET", path, headers=headers, operation="GetObject") as response:
        sent = response.request.url.raw_path.decode("ascii").split("?", 1)[0]
        if not sent.endswith(path):  # the key must be what was asked for, not what a URL parser made of it
            raise ValueError(f"{what}: the key {key!r} cannot be sent as one S3 path ({sent!r} != {path!r})")
        declared = response.headers.get("content-length", "")
        if not declared.isdigit():  # without it, a body cut short could not be told from a whole one
            raise OutputIntegrityError(
                f"{what}: {CLOUD} answered GetObject without a Content-Length ({declared!r}), so the "
                f"file's completeness cannot be checked; nothing was written. Check {session.host} (or a "
                "proxy in between) serves objects as S3 does"
            )
        size = int(declared)
        if size > cap:
            raise OutputOverCapError(what, size, cap, conn_id)

        def chunks() -> Generator[bytes, None, None]:
            received = 0
            with session.download_pace():
                for chunk in response.iter_raw(chunk_size):
                    received += len(chunk)
                    if received > cap:
                        raise OutputOverCapError(what, received, cap, conn_id)
                    yield chunk

        body = chunks()
        try:
            yield size, body
        finally:
            body.close()  # here, in order: a pace left to the garbage collector would outlive this block
