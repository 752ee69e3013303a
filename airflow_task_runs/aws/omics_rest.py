"""HealthOmics' status, list and cancel calls of the triggerer, as REST-JSON on the shared httpx session.

aiobotocore's request pipeline (endpoint rules, event hooks, a user agent rebuilt per call,
``AWSRequest`` signing, response parsing) cost ~0.9 ms of CPU per status poll at 1,000 watches in
one event loop (``benchmarks/trigger_fanout.py``). These five calls are simple REST-JSON
(botocore's ``omics`` service model: ``GET /run/{id}``, ``GET /run/{id}/task/{taskId}``,
``GET /run/{id}/task``, ``GET /run``, ``POST /run/{id}/cancel``), so the triggerer makes them on
:class:`~airflow_task_runs.core.http.ApiSession` like every other cloud: its retries, 429 pause,
rate limit, bounded reads and time budget, signed by :class:`~airflow_task_runs.aws.sigv4.SigV4Auth`.

What still comes from the amazon provider's aiobotocore client (built once per hook): the
endpoint (and the ``workflows-`` host prefix these operations carry, when botocore would inject
it), the region, the credentials (keys, profiles, assumed roles; fetched and refreshed off the event loop),
TLS verification, the retry attempts and timeouts of its ``Config``, the user agent, and the
service model, which says what botocore's parser would keep of each answer: the answers are
reduced to the same members, in the same order, with the same values (timestamps included),
so a status reads the same through this client as through boto3.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from airflow_task_runs.core.botocore_errors import api_error, error_hint
from airflow_task_runs.core.errors import ApiError, MalformedResponseError, model_problem

if TYPE_CHECKING:
    from pydantic import BaseModel

    from airflow_task_runs.aws.models import Run, RunListItem, RunTask, TaskListItem
    from airflow_task_runs.core.http import ApiSession

log = logging.getLogger(__name__)

CLOUD = "AWS HealthOmics"
_Model = TypeVar("_Model", bound="BaseModel")
#: botocore's standard retry mode retries these error codes whatever the HTTP status (a
#: ThrottlingException may come as a 400); the session retries 408/429/5xx by status anyway
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"})
OPERATIONS = ("GetRun", "GetRunTask", "ListRunTasks", "ListRuns", "CancelRun")
#: outputUriPrefixMode: read from GetRun answers even where botocore's model lacks it (see aws.runs)
PREFIX_MODE = "outputUriPrefixMode"
#: ISO 8601 timestamps pydantic parses to the same instant and zone as botocore's parser
_ISO_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)\Z")


# -- errors ----------------------------------------------------------------------------------
def error_code(response: httpx.Response, body: Any) -> str | None:
    """The error's name, where botocore's rest-json parser finds it: ``x-amzn-ErrorType``, else the
    body's ``code`` / ``Code``, else its ``__type``; without a ``:...`` suffix or ``namespace#`` prefix."""
    code = response.headers.get("x-amzn-errortype")
    if not code and isinstance(body, dict):
        code = body.get("code") or body.get("Code") or body.get("__type")
    if not code or not isinstance(code, str):
        return None
    return code.split(":", 1)[0].rsplit("#", 1)[-1] or None


def parse_error(response: httpx.Response, body: Any) -> tuple[str | None, str | None, str | None]:
    """(code, message, None): AWS's words (``message`` / ``Message``), and what to check."""
    code = error_code(response, body)
    message = None
    if isinstance(body, dict):
        words = body.get("message", body.get("Message"))
        message = str(words) if words else None
    message = message or response.reason_phrase or "request failed"
    return code, message + error_hint(code), None


def is_retryable(codes: frozenset[str]) -> Callable[[ApiError], bool]:
    retryable = THROTTLING_CODES | TRANSIENT_CODES | codes

    def check(err: ApiError) -> bool:
        return err.code in retryable

    return check


def request_id(response: httpx.Response) -> str | None:
    """The request id as botocore reads it (``x-amzn-RequestId``, else ``x-amz-request-id``)."""
    headers = response.headers
    return headers.get("x-amzn-requestid") or headers.get("x-amz-request-id")


# -- answers, reduced as botocore's parser reduces them ---------------------------------------
def _timestamp(value: Any) -> Any:
    """A strict ISO 8601 string is left to pydantic (same datetime, same dump); anything else
    (epoch seconds, other spellings) is parsed by botocore's own timestamp parser."""
    if isinstance(value, str) and _ISO_TIMESTAMP.match(value):
        return value
    from botocore.utils import parse_timestamp

    return parse_timestamp(value)


def _blob(value: Any) -> bytes:
    import base64

    return base64.b64decode(value)


def _boolean(value: Any) -> bool:
    from botocore.utils import ensure_boolean

    return bool(ensure_boolean(value))


_SCALARS: dict[str, Callable[[Any], Any]] = {
    "timestamp": _timestamp,
    "integer": int,
    "long": int,
    "float": float,
    "double": float,
    "boolean": _boolean,
    "blob": _blob,
}

Converter = Callable[[Any], Any]


class ResponseShapes:
    """Converters built once from botocore's service model: answer JSON -> what botocore returns.

    botocore's rest-json parser keeps only the members an output shape models (a newer field the
    installed botocore does not know is dropped), in the shape's order, drops ``null`` members,
    and converts timestamps, numbers, booleans and blobs; documents and strings pass as they are.
    Doing the same here keeps every status, event and XCom value identical to the boto3 path's.
    """

    def __init__(self, service_model: Any, operations: Iterable[str] = OPERATIONS) -> None:
        self._compiled: dict[str, Converter | None] = {}
        self._compiling: set[str] = set()
        self._by_operation: dict[str, Converter | None] = {}
        self._members: dict[str, frozenset[str]] = {}
        for name in operations:
            shape = service_model.operation_model(name).output_shape
            self._by_operation[name] = self._converter(shape) if shape is not None else None
            self._members[name] = frozenset(shape.members) if shape is not None else frozenset()

    def models(self, operation: str, member: str) -> bool:
        """Whether botocore's model has ``member`` in ``operation``'s output."""
        return member in self._members[operation]

    def _converter(self, shape: Any) -> Converter | None:
        """A function converting one value of ``shape`` (None: the value passes unchanged)."""
        kind = shape.type_name
        if kind in _SCALARS:
            return _SCALARS[kind]
        if kind not in ("structure", "list", "map") or getattr(shape, "is_document_type", False):
            return None  # strings and enums (jsonvalue strings are headers, not body members), documents
        key = shape.name
        if key in self._compiling:  # a recursive shape: its converter, once built
            return lambda value: (self._compiled[key] or (lambda same: same))(value)
        if key not in self._compiled:
            self._compiling.add(key)
            try:
                self._compiled[key] = self._build(kind, shape)
            finally:
                self._compiling.discard(key)
        return self._compiled[key]

    def _build(self, kind: str, shape: Any) -> Converter | None:
        if kind == "structure":
            return self._structure(shape)
        if kind == "list":
            item = self._converter(shape.member)
            return None if item is None else (lambda value: [x if x is None else item(x) for x in value])
        mapped = self._converter(shape.value)
        return None if mapped is None else (lambda value: {k: mapped(v) for k, v in value.items()})

    def _structure(self, shape: Any) -> Converter:
        if getattr(shape, "is_tagged_union", False):
            from botocore.parsers import RestJSONParser

            parser = RestJSONParser()
            return lambda value: parser._parse_shape(shape, value)
        members = [
            (name, member.serialization.get("name", name), self._converter(member))
            for name, member in shape.members.items()
        ]

        def convert(value: Any) -> Any:
            if not isinstance(value, dict):
                raise ValueError(f"a JSON {type(value).__name__} where the model has a {shape.name} object")
            out = {}
            name = ""
            try:
                for name, json_name, converter in members:
                    raw = value.get(json_name)
                    if raw is not None:
                        out[name] = raw if converter is None else converter(raw)
            except (ValueError, TypeError, AttributeError) as exc:  # botocore could not convert it either
                raise ValueError(f"{name}: {exc}") from None
            return out

        return convert

    def parse(self, operation: str, body: Any) -> dict[str, Any]:
        """``body`` as botocore's parser returns it for ``operation`` (without ResponseMetadata)."""
        if body is None:
            return {}
        converter = self._by_operation[operation]
        return {} if converter is None else converter(body)  # type: ignore[no-any-return]


# -- the client ------------------------------------------------------------------------------
class OmicsRestClient:
    """``GetRun``, ``GetRunTask``, ``ListRunTasks``, ``ListRuns`` and ``CancelRun`` on one
    :class:`ApiSession`; built by :meth:`from_aiobotocore` from the hook's aiobotocore client."""

    def __init__(self, session: ApiSession, shapes: ResponseShapes) -> None:
        self.session = session
        self.shapes = shapes

    @classmethod
    def from_aiobotocore(
        cls,
        client: Any,
        *,
        extra: Mapping[str, Any],
        conn_id: str,
        max_response_bytes: int,
        limiter: Any = None,
        on_credentials: Callable[[Any], Any] | None = None,
    ) -> OmicsRestClient:
        """The client for ``client``'s endpoint, region, credentials, TLS, retries and timeouts.

        Synchronous: reading the service model takes milliseconds, so the hook calls this in a
        thread, off the event loop.
        """
        from airflow_task_runs.aws.sigv4 import SigV4Auth
        from airflow_task_runs.core.http import ApiDialect, ApiSession, RetryPolicy, Timeouts

        model = client.meta.service_model
        config = client.meta.config
        credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
        refresh_off_the_loop(credentials)
        _warn_ignored_config(config)
        auth = (
            SigV4Auth(
                credentials, client.meta.region_name, model.signing_name or "omics", on_credentials=on_credentials
            )
            if credentials is not None
            else _NoCredentials()
        )
        retries = dict(config.retries or {})
        attempts = retries.get("total_max_attempts") or (5 if retries.get("mode") == "legacy" else 3)
        defaults = Timeouts.from_extra(extra, conn_id)
        timeouts = dataclasses.replace(
            defaults,
            connect=float(config.connect_timeout or defaults.connect),
            read=float(config.read_timeout or defaults.read),
        )
        modeled_retryable = frozenset(s.name for s in model.error_shapes if s.metadata.get("retryable"))
        http_session = getattr(getattr(client, "_endpoint", None), "http_session", None)
        verify = getattr(http_session, "_verify", None)  # botocore's resolved choice (AWS_CA_BUNDLE...)
        user_agent = getattr(client, "_user_agent_creator", None)
        session = ApiSession(
            endpoint(client),
            dialect=ApiDialect(
                cloud=CLOUD,
                request_id_headers=("x-amzn-RequestId", "x-amz-request-id"),
                parse_error=parse_error,
                is_retryable=is_retryable(modeled_retryable),
            ),
            auth=auth,
            timeouts=timeouts,
            retry=dataclasses.replace(RetryPolicy.from_extra(extra, conn_id), max_attempts=int(attempts)),
            verify=True if verify is None else verify,
            headers={"User-Agent": f"{user_agent.to_string()} lib/airflow-task-runs"} if user_agent else None,
            max_response_bytes=max_response_bytes,
        )
        session.limiter = limiter
        session.warm_async()  # built in a worker thread (HealthOmicsHook.aomics)
        return cls(session, ResponseShapes(model))

    async def aclose(self) -> None:
        await self.session.aclose()

    # -- calls -------------------------------------------------------------------------------
    async def _call(
        self, method: str, path: str, operation: str, params: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> tuple[Any, dict[str, Any], httpx.Response]:
        """(the answer's JSON, that JSON as botocore's parser returns it, the response)."""
        try:
            body, response = await self.session.arequest_json(
                method, path, params=params, operation=operation, **kwargs
            )
        except refresh_errors() as exc:  # from signing: the credentials' refresh (AssumeRole...) failed
            raise refresh_error(exc, operation, self.session.host) from None
        try:
            parsed = self.shapes.parse(operation, body)
        except (ValueError, TypeError, AttributeError) as exc:  # a value botocore could not convert either
            raise self._malformed(response, operation, str(exc)) from None
        return body, parsed, response

    def _malformed(self, response: httpx.Response, operation: str, problem: str) -> MalformedResponseError:
        return MalformedResponseError(
            cloud=CLOUD,
            status_code=response.status_code,
            code=None,
            message=f"the answer is not what the API page describes ({problem})",
            request_id=request_id(response),
            method=response.request.method,
            path=response.request.url.path,
            host=self.session.host,
            operation=operation,
        )

    def _model(self, cls: type[_Model], body: Any, response: httpx.Response, operation: str) -> _Model:
        from pydantic import ValidationError

        try:
            return cls.model_validate(body)
        except (ValidationError, RecursionError) as exc:
            raise self._malformed(response, operation, model_problem(exc)) from None

    async def get_run(self, run_id: str) -> Run:
        from airflow_task_runs.aws.models import Run

        raw, body, response = await self._call("GET", f"/run/{_segment(run_id)}", "GetRun")
        if (
            isinstance(raw, dict)
            and isinstance(raw.get(PREFIX_MODE), str)
            and not self.shapes.models("GetRun", PREFIX_MODE)
        ):
            body[PREFIX_MODE] = raw[PREFIX_MODE]  # as aws.runs reads it back on an older botocore
        run = self._model(Run, body, response, "GetRun")
        run.request_id = request_id(response)
        return run

    async def get_run_task(self, run_id: str, run_task_id: str) -> RunTask:
        from airflow_task_runs.aws.models import RunTask

        path = f"/run/{_segment(run_id)}/task/{_segment(run_task_id)}"
        _, body, response = await self._call("GET", path, "GetRunTask")
        task = self._model(RunTask, body, response, "GetRunTask")
        task.request_id = request_id(response)
        return task

    async def list_run_tasks(self, run_id: str, status: str | None = None) -> list[TaskListItem]:
        """Every page, within one time budget for the whole listing (as botocore's paginator ran)."""
        from airflow_task_runs.aws.models import TaskListItem

        items: list[TaskListItem] = []

        def take(page: dict[str, Any], response: httpx.Response) -> bool:
            items.extend(self._model(TaskListItem, item, response, "ListRunTasks") for item in page.get("items") or [])
            return True

        await self._pages("ListRunTasks", f"/run/{_segment(run_id)}/task", {"status": status}, take)
        return items

    async def list_runs(self, status: str, max_pages: int) -> list[RunListItem]:
        """At most ``max_pages`` pages of 100 runs, and 100 x ``max_pages`` runs (botocore's ``MaxItems``)."""
        from airflow_task_runs.aws.models import RunListItem

        items: list[RunListItem] = []
        limit = 100 * max_pages

        def take(page: dict[str, Any], response: httpx.Response) -> bool:
            for item in (page.get("items") or [])[: limit - len(items)]:
                items.append(self._model(RunListItem, item, response, "ListRuns"))
            return len(items) < limit

        await self._pages("ListRuns", "/run", {"status": status, "maxResults": 100}, take, max_pages)
        return items

    async def _pages(
        self,
        operation: str,
        path: str,
        params: dict[str, Any],
        take: Callable[[dict[str, Any], httpx.Response], bool],
        max_pages: int | None = None,
    ) -> None:
        """Hand each page of a listing to ``take`` (which says whether to go on), following
        ``nextToken`` (an empty one ends it, as in botocore's paginator): one time budget for all
        pages, at most ``max_pages``, and a token the listing sent before refused (a loop)."""
        import hashlib

        from airflow_task_runs.core.http import request_deadline

        seen: set[bytes] = set()
        token: str | None = None
        pages = 0
        with request_deadline(self.session.budget):
            while max_pages is None or pages < max_pages:
                pages += 1
                _, page, response = await self._call("GET", path, operation, {**params, "startingToken": token})
                token = page.get("nextToken")
                if token is not None and not isinstance(token, str):
                    raise self._malformed(response, operation, f"its nextToken is a JSON {type(token).__name__}")
                if not take(page, response) or not token:
                    return
                digest = hashlib.sha256(token.encode()).digest()
                if digest in seen:
                    raise MalformedResponseError(
                        cloud=CLOUD,
                        status_code=response.status_code,
                        code="ListingLoop",
                        message=f"sent a nextToken it had sent before, after {pages} page(s): the listing would go "
                        "round in a loop",
                        request_id=request_id(response),
                        method="GET",
                        path=path,
                        host=self.session.host,
                        operation=operation,
                    )
                seen.add(digest)

    async def cancel_run(self, run_id: str) -> str | None:
        """``CancelRun``; the request id. Retried as botocore's standard mode retried it (throttling,
        5xx, a broken connection): a retry after a lost answer meets a run that is stopping already,
        which AWS may answer with a ``ConflictException``, as it did for botocore's retries."""
        _, _, response = await self._call("POST", f"/run/{_segment(run_id)}/cancel", "CancelRun", content=b"")
        return request_id(response)


REFRESHING = "refreshing the connection's AWS credentials"


def _without_words(error: BaseException) -> str:
    """A refresher's own error, told without its message: only its type (and an ``OSError``'s
    ``strerror`` and file name, such as a missing web identity token file). Its words may carry what
    it was handling (a token, an STS answer), which the masker does not know."""
    if isinstance(error, OSError) and error.strerror:
        detail = f": {error.strerror}" + (f" ({error.filename})" if error.filename else "")
    else:
        detail = " (its message is left out: it may carry a secret)"
    return f"the refresher raised {type(error).__name__}{detail}"


def refresh_errors() -> tuple[type[BaseException], ...]:
    """What a failed credentials refresh raises (see :func:`refresh_off_the_loop`): botocore's errors."""
    from botocore.exceptions import BotoCoreError, ClientError

    return BotoCoreError, ClientError


def refresh_error(exc: BaseException, operation: str, host: str | None) -> BaseException:
    """A failed credentials refresh as one :class:`ApiError` naming the call and the host."""
    return api_error(exc, operation, REFRESHING, CLOUD, host)


async def first_credentials(client: Any, operation: str) -> Any:
    """The frozen credentials ``client`` signs with (None without any), fetched off the event loop.

    The amazon provider's web identity credentials (and any deferred refreshable ones) are
    fetched at their first use, by a blocking boto3 STS call: it runs in a thread, as every later
    refresh does. A failure is the :class:`ApiError` of :func:`refresh_error`.
    """
    credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    if credentials is None:
        return None
    refresh_off_the_loop(credentials)
    try:
        from airflow_task_runs.aws.sigv4 import frozen_credentials

        return await frozen_credentials(credentials)
    except refresh_errors() as exc:
        parts = urllib.parse.urlsplit(endpoint(client))
        raise refresh_error(exc, operation, f"{parts.scheme}://{parts.netloc}") from None


def refresh_off_the_loop(credentials: Any) -> None:
    """Make a synchronous refresh (the amazon provider's AssumeRole, web identity: boto3 STS calls)
    run in a thread: aiobotocore would call it on the event loop, stalling every trigger for as long
    as STS takes (up to the connection's retries and timeouts). An async refresh is awaited as it was.

    Either way a refresher's own error (not botocore's) leaves as botocore's
    ``CredentialRetrievalError``, without its words and unchained from it (aiobotocore logs a
    failed refresh with its traceback); :func:`refresh_error` makes it, like botocore's own
    errors, the call's :class:`ApiError`.
    """
    import asyncio
    import inspect

    from botocore.exceptions import BotoCoreError, ClientError, CredentialRetrievalError

    refresh = getattr(credentials, "_refresh_using", None)
    if refresh is None or getattr(refresh, "off_the_loop", False):
        return
    method = getattr(credentials, "method", None)
    is_async = inspect.iscoroutinefunction(refresh)

    async def guarded() -> Any:
        try:
            result = refresh() if is_async else await asyncio.to_thread(refresh)
            # a plain function may return a coroutine (aiobotocore's credential_process refresher): await it here
            return await result if inspect.isawaitable(result) else result
        except (BotoCoreError, ClientError):
            raise
        except Exception as exc:
            error = CredentialRetrievalError(provider=method or "custom", error_msg=_without_words(exc))
        raise error  # out of the except block: not chained to the words it leaves out

    guarded.off_the_loop = True  # type: ignore[attr-defined]
    credentials._refresh_using = guarded


def _warn_ignored_config(config: Any) -> None:
    """botocore settings the triggerer's own client cannot honour, said once, where it is built."""
    ignored = [name for name in ("proxies", "proxies_config", "client_cert") if getattr(config, name, None)]
    if (getattr(config, "retries", None) or {}).get("mode") == "adaptive":
        ignored.append("retries mode 'adaptive' (its client-side rate limit; max_requests_per_second limits here)")
    if ignored:
        log.warning(
            "%s calls from the triggerer do not apply the connection's botocore Config %s: they use the "
            "environment's HTTPS_PROXY / NO_PROXY and no client certificate (the workers' boto3 calls do apply it)",
            CLOUD,
            ", ".join(ignored),
        )


@functools.lru_cache(maxsize=4096)  # a watch asks for the same run every poll
def _segment(value: str) -> str:
    """A path label as botocore's rest serializer encodes it (RFC 3986, ``-_.~`` kept)."""
    return urllib.parse.quote(value, safe="-_.~")


def endpoint(client: Any) -> str:
    """The base URL botocore sends these operations to: the client's endpoint, with the
    operations' host prefix (``workflows-``) when the client's config injects it."""
    base = str(client.meta.endpoint_url)
    if not client.meta.config.inject_host_prefix:
        return base
    model = client.meta.service_model
    prefixes = {(model.operation_model(name).endpoint or {}).get("hostPrefix") for name in OPERATIONS}
    if len(prefixes) != 1 or any(p and "{" in p for p in prefixes):  # labelled prefixes: not for these calls
        raise ValueError(f"{CLOUD}: unexpected host prefixes {sorted(map(str, prefixes))} in botocore's omics model")
    prefix = prefixes.pop()
    if not prefix:
        return base
    parts = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit((parts.scheme, prefix + parts.netloc, parts.path, parts.query, parts.fragment))


class _NoCredentials(httpx.Auth):
    """The auth of a client that found no credentials: each call fails at once, saying where to set them."""

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        raise ApiError(
            cloud=CLOUD,
            status_code=None,
            code="NoCredentials",
            message="no AWS credentials found; set them in the aws connection (login/password or role_arn) or in "
            "the triggerer's environment",
            method=request.method,
            path=request.url.path,
            host=f"{request.url.scheme}://{request.url.netloc.decode('ascii')}",
        )
        yield request  # pragma: no cover - an async generator, as httpx expects
