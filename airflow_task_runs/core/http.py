"""One authenticated HTTP session per hook: httpx clients, timeouts, retries, error mapping.

Clouds differ in how they sign, where they put error codes and which answers are worth a
retry; they plug those in through :class:`ApiDialect`. Everything else is here, once.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import random
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import tenacity

from airflow_task_runs.core.errors import ApiError, MalformedResponseError

log = logging.getLogger(__name__)

DEFAULT_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: at most ``max_attempts`` tries and ``max_elapsed`` seconds in all."""

    max_attempts: int = 5
    max_elapsed: float = 120.0
    backoff_initial: float = 0.5
    backoff_max: float = 20.0
    max_retry_after: float = 60.0
    statuses: frozenset[int] = DEFAULT_RETRY_STATUSES

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> RetryPolicy:
        """Read ``retry_max_attempts`` / ``retry_max_elapsed`` / ``retry_backoff_*`` from a connection extra."""
        base = cls()
        return cls(
            max_attempts=int(extra.get("retry_max_attempts", base.max_attempts)),
            max_elapsed=float(extra.get("retry_max_elapsed", base.max_elapsed)),
            backoff_initial=float(extra.get("retry_backoff_initial", base.backoff_initial)),
            backoff_max=float(extra.get("retry_backoff_max", base.backoff_max)),
        )


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float = 60.0

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> Timeouts:
        base = cls()
        return cls(
            connect=float(extra.get("connect_timeout", base.connect)),
            read=float(extra.get("read_timeout", base.read)),
        )

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.read, pool=self.connect)


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
    import os

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


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class ApiSession:
    """A sync and an async httpx client for one hook, created lazily and reused across polls."""

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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.dialect = dialect
        self.auth = auth
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.verify = _verify_setting(verify)
        self.headers = dict(headers or {})
        self._transport = transport
        self._async_transport = async_transport
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        #: the connection's shared rate limit (core.shared.RateLimiter), set by the hook
        self.limiter: Any = None

    # -- clients -----------------------------------------------------------------------------
    def _client_options(self) -> dict[str, Any]:
        """What the sync and the async client share: auth, timeouts, TLS, headers."""
        return {
            "auth": self.auth,
            "timeout": self.timeouts.to_httpx(),
            "verify": _ssl_context(self.verify),
            "headers": self.headers,
            "follow_redirects": False,
            # a client may serve every trigger of a connection: keep all its connections alive
            # (httpx keeps 20 of 100, so a burst of polls would open and close 80 TLS sessions)
            "limits": httpx.Limits(max_connections=100, max_keepalive_connections=100),
        }

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            hooks = self.limiter.httpx_hooks() if self.limiter else None
            self._client = httpx.Client(transport=self._transport, event_hooks=hooks, **self._client_options())
        return self._client

    @property
    def aclient(self) -> httpx.AsyncClient:
        if self._aclient is None:
            hooks = self.limiter.async_httpx_hooks() if self.limiter else None
            self._aclient = httpx.AsyncClient(
                transport=self._async_transport, event_hooks=hooks, **self._client_options()
            )
        return self._aclient

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        query = encode_query(params)
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

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
    ) -> tuple[Any, httpx.Response]:
        """Send, retry per policy, raise :class:`ApiError` on failure; return (JSON body, response).

        ``retry_ok=False`` marks a request that must not be repeated (a POST without an
        idempotency token): it is sent exactly once.
        """
        request = self._build(self.client, method, path, params, json_body, content, headers)

        def attempt() -> tuple[Any, httpx.Response]:
            response = self.client.send(request)
            return self._accept(request, response)

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
    ) -> tuple[Any, httpx.Response]:
        request = self._build(self.aclient, method, path, params, json_body, content, headers)

        async def attempt() -> tuple[Any, httpx.Response]:
            response = await self.aclient.send(request)
            return self._accept(request, response)

        return await self._aretrying(retry_ok)(attempt)

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
    ) -> Iterator[httpx.Response]:
        """A streamed response; connecting is retried, the body is read by the caller.

        ``json_body`` / ``content`` send a (small) request body, as in :meth:`request_json`;
        ``retry_ok=False`` sends the request exactly once (the caller may retry the whole
        exchange, e.g. when it can re-read the body from the start).
        """
        request = self._build(self.client, method, path, params, json_body, content, headers)

        def attempt() -> httpx.Response:
            response = self.client.send(request, stream=True)
            if response.is_error:
                response.read()
                self._accept(request, response)
            return response

        response: httpx.Response = self._retrying(retry_ok)(attempt)
        try:
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
    ) -> AsyncIterator[httpx.Response]:
        """The async twin of :meth:`stream`."""
        request = self._build(self.aclient, method, path, params, json_body, content, headers)

        async def attempt() -> httpx.Response:
            response = await self.aclient.send(request, stream=True)
            if response.is_error:
                await response.aread()
                self._accept(request, response)
            return response

        response: httpx.Response = await self._aretrying(retry_ok)(attempt)
        try:
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
        return client.build_request(method, self.url(path, params), content=content, headers=request_headers)

    # -- responses ---------------------------------------------------------------------------
    def parse_model(self, cls: type[Any], body: Any, response: httpx.Response, request_id: str | None = None) -> Any:
        """Validate a response body into ``cls``; a body that does not fit is a MalformedResponseError."""
        from pydantic import ValidationError

        request_id = request_id or self.request_id_of(response)
        try:
            model = cls.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise MalformedResponseError(
                cloud=self.dialect.cloud,
                status_code=response.status_code,
                code=None,
                message=f"the response is not a {cls.__name__} ({exc.error_count()} problem(s), first: "
                f"{'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']})",
                request_id=request_id,
                method=response.request.method,
                path=response.request.url.path,
            ) from None
        if hasattr(model, "request_id"):
            model.request_id = request_id
        return model

    def request_id_of(self, response: httpx.Response) -> str | None:
        """The cloud's request id for a response (header first, then body), for logs and XCom."""
        return self._request_id(response, _body_request_id(_json_or_none(response)))

    def _request_id(self, response: httpx.Response, body_id: str | None = None) -> str | None:
        for name in self.dialect.request_id_headers:
            if value := response.headers.get(name):
                return value
        return body_id

    def _accept(self, request: httpx.Request, response: httpx.Response) -> tuple[Any, httpx.Response]:
        body = _json_or_none(response)
        path = request.url.path
        if response.is_success and self.dialect.check_success_body is not None:
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
                )
                err.retryable = bool(self.dialect.is_retryable and self.dialect.is_retryable(err))
                raise err
        if response.is_success:
            if body is None and response.content and "json" in response.headers.get("content-type", "json"):
                raise MalformedResponseError(
                    cloud=self.dialect.cloud,
                    status_code=response.status_code,
                    code=None,
                    message=f"the response body is not valid JSON ({len(response.content)} bytes)",
                    request_id=self._request_id(response),
                    method=request.method,
                    path=path,
                    retryable=True,
                )
            return body, response
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
        )
        status = response.status_code
        err.retryable = (status in self.retry.statuses and status not in self.dialect.never_retry) or bool(
            self.dialect.is_retryable and self.dialect.is_retryable(err)
        )
        raise err

    # -- retry machinery ---------------------------------------------------------------------
    def _should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, httpx.TransportError):
            return True
        return isinstance(exc, ApiError) and exc.retryable

    def _wait_bound(self, state: tenacity.RetryCallState) -> tuple[float, bool]:
        """(longest wait before the next attempt, whether the server fixed it by Retry-After)."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ApiError) and exc.retry_after is not None:
            return min(exc.retry_after, self.retry.max_retry_after), True
        return min(self.retry.backoff_max, self.retry.backoff_initial * (2 ** (state.attempt_number - 1))), False

    def _wait(self, state: tenacity.RetryCallState) -> float:
        bound, fixed = self._wait_bound(state)
        return bound if fixed else random.uniform(0, bound)  # full jitter

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        sleep = state.next_action.sleep if state.next_action else 0
        log.warning(
            "%s request failed (%s); retry %d of %d in %.1fs",
            self.dialect.cloud,
            exc,
            state.attempt_number,
            self.retry.max_attempts - 1,
            sleep,
        )

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= self.retry.max_attempts:
            return True
        # Do not start a wait that would end past the total budget.
        upcoming = self._wait_bound(state)[0] if state.outcome else 0
        return ((state.seconds_since_start or 0.0) + upcoming) > self.retry.max_elapsed

    def _retry_options(self, retry_ok: bool) -> dict[str, Any]:
        return {
            "retry": tenacity.retry_if_exception(self._should_retry) if retry_ok else tenacity.retry_never,
            "stop": self._stop,
            "wait": self._wait,
            "before_sleep": self._before_sleep,
            "reraise": True,
        }

    def _retrying(self, retry_ok: bool) -> tenacity.Retrying:
        return tenacity.Retrying(**self._retry_options(retry_ok))

    def _aretrying(self, retry_ok: bool) -> tenacity.AsyncRetrying:
        return tenacity.AsyncRetrying(**self._retry_options(retry_ok))


def _body_request_id(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("RequestId", "requestId", "request_id"):
            if isinstance(body.get(key), str):
                return body[key]
    return None
