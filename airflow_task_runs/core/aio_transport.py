"""httpx's interface on aiohttp's connection pool: the async transport of every ApiSession.

A triggerer polls a thousand runs through one client. httpx's default transport (httpcore on
anyio) spends most of that CPU in its pool bookkeeping, which rescans every connection when a
request starts or ends; aiohttp's pool and parser are C-accelerated and keep a plain queue
(``benchmarks/trigger_fanout.py`` measures both). Everything above the transport stays httpx:
auth flows (the clouds' signers), event hooks (the rate limit), retries, size-capped reads and
the error mapping of :mod:`airflow_task_runs.core.http`.

What httpcore did for us is done here: the request's time budget
(:func:`~airflow_task_runs.core.http.deadline_left`) bounds connect, send and the whole body read
(aiohttp's ``total``), the read timeout bounds each read, and aiohttp's errors become the httpx
errors the session maps once.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import httpx
import yarl

_CHUNK = 64 * 1024


@contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    """aiohttp's failures as the httpx errors they are (ordered: most specific first)."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "timed out connecting", request=request) from exc
    except aiohttp.ServerTimeoutError as exc:  # a read waited longer than the read timeout
        raise httpx.ReadTimeout(str(exc) or "timed out reading", request=request) from exc
    except asyncio.TimeoutError as exc:  # aiohttp's total: the request's time budget ran out
        raise httpx.ReadTimeout("the request's time budget ran out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:  # refused, DNS, TLS handshake and certificate
        raise httpx.ConnectError(_connect_failure(exc), request=request) from exc
    except aiohttp.ClientHttpProxyError as exc:  # the proxy answered CONNECT with an error, as httpx says it
        raise httpx.ProxyError(f"{exc.status} {exc.message}".strip(), request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
        # closed early, a body shorter than its Content-Length, a malformed status line/header
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
    except aiohttp.ClientOSError as exc:
        raise httpx.ReadError(str(exc), request=request) from exc
    except aiohttp.InvalidURL as exc:  # quotes the URL whole: never a user:password in it
        raise _not_retried(f"not a valid URL: {_USERINFO.sub('//', str(exc))}", request) from None
    except aiohttp.ClientError as exc:
        raise httpx.TransportError(f"{type(exc).__name__}: {exc}", request=request) from exc


_USERINFO = re.compile(r"//[^/@\s]*@")


def _not_retried(message: str, request: httpx.Request) -> httpx.UnsupportedProtocol:
    """A URL or proxy no request here can use: asking again gets the same answer (the session
    reads ``retryable``, as on core.content_encoding's errors)."""
    refused = httpx.UnsupportedProtocol(message, request=request)
    refused.retryable = False  # type: ignore[attr-defined]
    return refused


def _connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    """The cause, worded as httpx words it: aiohttp's own text ("Cannot connect to host h:443
    ssl:default [Connect call failed ...]") names TLS whatever failed, and never says refused."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return str(exc.certificate_error)
    cause = exc.os_error
    if isinstance(cause, (ssl.SSLError, socket.gaierror)) or not cause.errno:
        return str(cause) or type(cause).__name__
    return f"[Errno {cause.errno}] {os.strerror(cause.errno)}"  # asyncio says "Connect call failed" for all


class _Body(httpx.AsyncByteStream):
    """The response body, read chunk by chunk as the session asks (never buffered whole here)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        from airflow_task_runs.core.http import DownloadTooSlow, current_pace

        pace = current_pace()
        with _as_httpx_errors(self._request):
            chunks = self._response.content.iter_chunked(_CHUNK)
            if pace is None:
                async for chunk in chunks:
                    yield chunk
                return
            while True:  # an output's body: each read cut to the pace's window (core.http.DownloadPace)
                try:
                    try:
                        chunk = await asyncio.wait_for(chunks.__anext__(), pace.timeout(None))
                    except asyncio.TimeoutError:
                        pace.timed_out()
                        raise
                except StopAsyncIteration:
                    return
                except DownloadTooSlow as exc:
                    raise httpx.ReadTimeout(str(exc), request=self._request) from exc
                pace.got(len(chunk))
                yield chunk

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()  # read to its end: the connection goes back to the pool
        else:
            self._response.close()  # left unread (refused, cut short): the connection is dropped


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (pool of ``limit`` connections) behind an httpx.AsyncClient.

    The session opens on first use inside the running loop and belongs to it, like the client.
    Proxies come from the environment (``HTTPS_PROXY``/``NO_PROXY``), as with httpx. Bodies are
    handed on undecoded: the session inflates them in bounded steps (core.content_encoding).
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | bool, limit: int) -> None:
        self._ssl = ssl_context
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str, int | None], str | None] = {}

    def _proxy(self, request: httpx.Request) -> str | None:
        """The environment's proxy for this origin (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``...),
        as httpx's client picks it; looked up once per origin. aiohttp speaks to HTTP proxies
        only: a SOCKS one (a desktop's ``ALL_PROXY``) is refused by name, not sent plain HTTP."""
        url = request.url
        key = (url.scheme, url.host, url.port)
        if key not in self._proxies:
            from airflow_task_runs.core.http import environment_proxy

            proxy = environment_proxy(url)
            if proxy is not None:
                problem = _unusable_proxy(proxy.url)
                if problem is not None:
                    raise _not_retried(f"{proxy.variable} names the proxy {proxy.shown} for it, but {problem}", request)
            self._proxies[key] = proxy.url if proxy is not None else None
        return self._proxies[key]

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=self._limit, limit_per_host=0),
                auto_decompress=False,
                trust_env=False,  # aiohttp would then look up netrc in a thread per request
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        from airflow_task_runs.core.http import DOWNLOAD_EXTENSION, deadline_left

        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        left = deadline_left()
        if left is not None and left <= 0:
            raise httpx.ReadTimeout("the request's time budget ran out", request=request)
        # an output's body is bounded by its pace (_Body), the status line and headers by the budget
        download = bool(request.extensions.get(DOWNLOAD_EXTENSION))
        timeout = aiohttp.ClientTimeout(
            total=None if download else left,
            sock_connect=_bounded(timeouts.get("connect"), left),
            sock_read=timeouts.get("read") if download else _bounded(timeouts.get("read"), left),
        )
        trace = request.extensions.get("trace")
        if trace is not None:  # the rate limit's wire gate (httpcore calls it at the same point)
            await trace("http11.send_request_headers.started", {"request": request})
        body = request.content if isinstance(request.stream, httpx.ByteStream) else await request.aread()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        with _as_httpx_errors(request):
            sent = self._client().request(
                request.method,
                yarl.URL(str(request.url), encoded=True),  # byte for byte what was signed
                headers=headers,
                skip_auto_headers=_not_sent(request.method, headers, bool(body)),
                data=body or None,
                allow_redirects=False,
                proxy=self._proxy(request),
                timeout=timeout,
                compress=None,
            )
            response = await (asyncio.wait_for(sent, left) if download and left is not None else sent)
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode("latin-1")},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _unusable_proxy(proxy_url: str) -> str | None:
    """Why aiohttp cannot use this proxy, with the way out; None if it can. Its own error for a
    malformed one (InvalidURL) would quote the URL whole, credentials and all."""
    if not proxy_url.lower().startswith(("http://", "https://")):
        return (
            "the triggerer's transport speaks only to http:// and https:// proxies: name an HTTP proxy, add the "
            "host to NO_PROXY, or set AIRFLOW_TASK_RUNS_ASYNC_TRANSPORT=httpx (with httpx[socks] installed)"
        )
    try:
        host = yarl.URL(proxy_url).host
    except ValueError as exc:  # yarl's reason names no part of the URL
        return f"that is not a valid URL ({exc}): correct it, or add the host to NO_PROXY"
    if not host:
        return "that URL has no host: correct it, or add the host to NO_PROXY"
    return None


#: headers aiohttp adds to a request that lacks them (lower case)
_AUTO_HEADERS = frozenset({"user-agent", "accept", "accept-encoding", "content-type"})


def _not_sent(method: str, headers: list[tuple[str, str]], has_body: bool) -> list[str] | None:
    """The headers aiohttp would add that httpx's request does not have: the wire carries only
    what httpx built (and the signer signed). None, the usual case with httpx's default headers,
    keeps aiohttp on its fast path: a session-wide skip list costs every request a copy of its
    headers."""
    missing = set(_AUTO_HEADERS.difference(name.lower() for name, _ in headers))
    if not has_body and method not in ("POST", "PUT", "PATCH"):  # aiohttp adds no Content-Type then
        missing.discard("content-type")
    return sorted(missing) or None


def _bounded(timeout: float | None, left: float | None) -> float | None:
    if left is None:
        return timeout
    return left if timeout is None else min(timeout, left)
