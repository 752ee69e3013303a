"""AWS Signature Version 4 (``AWS4-HMAC-SHA256``) as an httpx.Auth, for the HealthOmics REST calls.

Spec: AWS "Create a signed AWS API request" (SigV4), as botocore's ``SigV4Auth`` implements it:

    CanonicalRequest = METHOD \\n CanonicalURI \\n CanonicalQuery \\n CanonicalHeaders \\n
                       SignedHeaders \\n hex(sha256(body))
    StringToSign     = "AWS4-HMAC-SHA256" \\n X-Amz-Date \\n <date>/<region>/<service>/aws4_request \\n
                       hex(sha256(CanonicalRequest))
    Signature        = hex(hmac(kSigning, StringToSign)), kSigning derived from the secret key

The canonical request is computed from the request httpx is about to send: its path as on the
wire (``request.url.raw_path``, percent-encoded once more, as SigV4 wants for every service but
S3), its query decoded and re-encoded the AWS way (RFC 3986, ``~`` kept) and sorted, and its
``host``. Signed headers: ``host``, ``content-type`` when sent, and every ``x-amz-*`` header
(``x-amz-date``, ``x-amz-security-token`` for temporary credentials); the others (``accept``,
``user-agent``, ...) may be changed by the transport or a proxy and are left out, as SigV4
allows. Every send, retries included, is signed afresh with the credentials of that moment:
aiobotocore's refreshable credentials renew themselves when near expiry (a synchronous refresher, such
as the amazon provider's AssumeRole, is moved to a thread by ``omics_rest.refresh_off_the_loop``).
``tests/aws/test_sigv4.py`` checks the Authorization header against botocore's own signer.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import Any

import httpx

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: headers a previous signature of the same request left (a retry is sent again, signed afresh)
_STALE = ("authorization", "x-amz-date", "x-amz-security-token")


def _quote(text: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(text, safe=safe)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4, and empty segments dropped, as botocore normalises a path before signing."""
    if not path:
        return "/"
    kept: list[str] = []
    for segment in path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if kept:
                kept.pop()
        else:
            kept.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and kept else ""
    return first + "/".join(kept) + last


@functools.lru_cache(maxsize=4096)  # a watch asks for the same path every poll
def canonical_path(raw_path: str) -> str:
    """The path as sent (already percent-encoded), normalised and encoded once more (``/`` and ``~`` kept)."""
    return _quote(_remove_dot_segments(raw_path), safe="/~")


@functools.lru_cache(maxsize=4096)
def canonical_query(raw_query: str) -> str:
    """The query as sent, each key and value decoded and re-encoded per RFC 3986, sorted by key then value."""
    if not raw_query:
        return ""
    pairs = []
    for part in raw_query.split("&"):
        key, _, value = part.partition("=")
        pairs.append((_quote(urllib.parse.unquote(key)), _quote(urllib.parse.unquote(value))))
    pairs.sort()
    return "&".join(f"{key}={value}" for key, value in pairs)


def host_header(url: httpx.URL) -> str:
    """``host[:port]`` as an HTTP client sends it: lower case, the default port left out."""
    host = url.host
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = url.port
    if port is not None and port != _DEFAULT_PORTS.get(url.scheme):
        host = f"{host}:{port}"
    return host


def amz_date(epoch_seconds: float) -> str:
    """``X-Amz-Date``: ISO 8601 basic format, UTC, to the second (``20250102T030405Z``)."""
    return _amz_date_of(int(epoch_seconds))


@functools.lru_cache(maxsize=4)
def _amz_date_of(second: int) -> str:
    """Formatted once a second, not once per request (as OCI's ``date``: every poll of a round shares it)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))


async def frozen_credentials(credentials: Any) -> Any:
    """``await credentials.get_frozen_credentials()``, refreshing them if due.

    A refresh that returns credentials already expired makes aiobotocore raise a bare
    ``RuntimeError``; it leaves here as botocore's ``CredentialRetrievalError``, like every
    other failed refresh, so the caller maps it to the call's error with the others.
    """
    try:
        return await credentials.get_frozen_credentials()
    except RuntimeError as exc:
        if "still expired" not in str(exc):
            raise
        from botocore.exceptions import CredentialRetrievalError

        raise CredentialRetrievalError(
            provider=getattr(credentials, "method", None) or "the credentials' refresh",
            error_msg="the credentials were refreshed but are already expired: check this machine's clock, and the "
            "expiry the credential source returns (a role's session duration)",
        ) from None


class SigV4Auth(httpx.Auth):
    """Signs each send with SigV4 for ``service`` in ``region``.

    :param credentials: a botocore credentials object (``get_frozen_credentials()`` returning
        ``(access_key, secret_key, token)``): aiobotocore's ``AioCredentials`` /
        ``AioRefreshableCredentials`` (awaited, for the async client) or botocore's (sync).
    :param on_credentials: awaited with the frozen credentials whenever they differ from the
        last ones signed with (a refresh): the caller registers the new secrets with the masker.
    :param clock: seconds since the epoch (a test reproduces botocore's signature at a fixed time).
    """

    def __init__(
        self,
        credentials: Any,
        region: str,
        service: str,
        *,
        on_credentials: Callable[[Any], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self.region = region
        self.service = service
        self._on_credentials = on_credentials
        self._clock = clock
        self._seen: tuple[str, str, str | None] | None = None
        #: (secret key, date) -> kSigning: four HMACs saved per request, recomputed once a day
        self._key: tuple[str, str, bytes] | None = None

    def __repr__(self) -> str:  # never show a key or a token
        return f"SigV4Auth(service={self.service!r}, region={self.region!r})"

    def _signing_key(self, secret_key: str, date: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == secret_key and cached[1] == date:
            return cached[2]
        key = hmac.digest(f"AWS4{secret_key}".encode(), date.encode(), "sha256")
        for part in (self.region, self.service, "aws4_request"):
            key = hmac.digest(key, part.encode(), "sha256")
        self._key = (secret_key, date, key)
        return key

    def sign(self, request: httpx.Request, credentials: Any, when: float | None = None) -> httpx.Request:
        """Add ``X-Amz-Date`` (and ``X-Amz-Security-Token``) and the ``Authorization`` header."""
        access_key, secret_key, token = credentials.access_key, credentials.secret_key, credentials.token
        date_time = amz_date(self._clock() if when is None else when)
        headers = request.headers
        items = headers.multi_items()  # names lower-cased by httpx
        if any(name in _STALE for name, _ in items):  # a retry is signed afresh
            for stale in _STALE:
                headers.pop(stale, None)
            items = headers.multi_items()
        headers["x-amz-date"] = date_time
        if token:
            headers["x-amz-security-token"] = token
        signed: dict[str, str] = {}
        for name, value in items:
            if name == "host" or name == "content-type" or name.startswith("x-amz-"):
                value = " ".join(value.split())
                signed[name] = f"{signed[name]},{value}" if name in signed else value
        signed["x-amz-date"] = date_time
        if token:
            signed["x-amz-security-token"] = " ".join(token.split())
        if "host" not in signed:
            signed["host"] = headers["host"] = host_header(request.url)
        names = sorted(signed)
        path, _, query = request.url.raw_path.decode("ascii").partition("?")
        body = request.content
        canonical = "\n".join(
            (
                request.method,
                canonical_path(path),
                canonical_query(query),
                "".join(f"{name}:{signed[name]}\n" for name in names),
                ";".join(names),
                hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256,
            )
        )
        date = date_time[:8]
        scope = f"{date}/{self.region}/{self.service}/aws4_request"
        string_to_sign = f"{ALGORITHM}\n{date_time}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(secret_key, date), string_to_sign.encode(), "sha256").hexdigest()
        headers["authorization"] = (
            f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        return request

    def _check(self, credentials: Any) -> bool:
        """Whether these credentials differ from the last ones signed with (first use, a refresh)."""
        current = (credentials.access_key, credentials.secret_key, credentials.token)
        if current == self._seen:
            return False
        self._seen = current
        return True

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        credentials = await frozen_credentials(self._credentials)
        if self._check(credentials) and self._on_credentials is not None:
            await self._on_credentials(credentials)
        yield self.sign(request, credentials)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        credentials = self._credentials.get_frozen_credentials()
        if hasattr(credentials, "__await__"):
            credentials.close()
            raise TypeError(
                "SigV4Auth: asynchronous (aiobotocore) credentials sign only an httpx.AsyncClient's requests"
            )
        self._check(credentials)
        yield self.sign(request, credentials)
