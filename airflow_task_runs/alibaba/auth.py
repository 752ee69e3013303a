"""Alibaba Cloud V3 request signature (``ACS3-HMAC-SHA256``), as an httpx.Auth.

Spec: Alibaba Cloud "Request syntax and signature method V3".

    CanonicalRequest = METHOD \\n CanonicalURI \\n CanonicalQuery \\n CanonicalHeaders \\n SignedHeaders \\n
                       hex(sha256(body))
    StringToSign     = "ACS3-HMAC-SHA256" \\n hex(sha256(CanonicalRequest))
    Signature        = hex(hmac_sha256(AccessKeySecret, StringToSign))

The canonical request is computed from the request httpx is about to send (its path and
query bytes, its headers), so what is signed is exactly what goes on the wire. Signed
headers are ``host``, ``content-type`` when present and every ``x-acs-*`` header, as the
official SDK does. The flow runs once per send: every retry gets a fresh date and nonce
(ROS rejects a reused ``x-acs-signature-nonce``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence

import httpx

ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _quote(text: str) -> str:
    """RFC 3986 percent-encoding: space -> %20, ``*`` -> %2A, ``~`` kept."""
    return urllib.parse.quote(text, safe="-_.~")


def canonical_query(raw_query: str) -> str:
    """The query as sent (``a=1&b=x%20y``), decoded and re-encoded per RFC 3986, sorted by key."""
    pairs: list[tuple[str, str]] = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((_quote(urllib.parse.unquote(key)), _quote(urllib.parse.unquote(value))))
    pairs.sort()
    return "&".join(f"{key}={value}" for key, value in pairs)


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """``host``, ``content-type`` (if sent) and every ``x-acs-*`` header, lower-cased and sorted."""
    names = {name.lower() for name in headers}
    return sorted(n for n in names if n in ("host", "content-type") or n.startswith("x-acs-"))


def canonical_request(
    method: str,
    path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload_sha256: str,
) -> str:
    lowered = {name.lower(): value for name, value in headers.items()}
    canonical_headers = "".join(f"{name}:{lowered[name].strip()}\n" for name in signed_headers)
    return "\n".join(
        [
            method.upper(),
            path or "/",
            canonical_query(raw_query),
            canonical_headers,
            ";".join(signed_headers),
            payload_sha256,
        ]
    )


def signature(access_key_secret: str, canonical: str) -> str:
    string_to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return hmac.new(access_key_secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def authorization(access_key_id: str, signed_headers: Sequence[str], sig: str) -> str:
    return f"{ALGORITHM} Credential={access_key_id},SignedHeaders={';'.join(signed_headers)},Signature={sig}"


def acs_date(epoch_seconds: float) -> str:
    """``x-acs-date``: ISO 8601 UTC to the second, e.g. ``2025-01-02T03:04:05Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_seconds))


def new_nonce() -> str:
    return uuid.uuid4().hex


class AcsV3Auth(httpx.Auth):
    """Signs each send with ``ACS3-HMAC-SHA256``; adds ``x-acs-security-token`` for STS credentials.

    The API's ``x-acs-action`` and ``x-acs-version`` are set by the caller on the request;
    ``clock`` and ``nonce`` are injectable so a test can reproduce a published vector.
    """

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        security_token: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = new_nonce,
    ) -> None:
        self._access_key_id = access_key_id
        self._access_key_secret = access_key_secret
        self._security_token = security_token
        self._clock = clock
        self._nonce = nonce

    def __repr__(self) -> str:  # never show the secret or the token
        return f"AcsV3Auth(access_key_id={self._access_key_id!r}, sts={self._security_token is not None})"

    def sign(self, request: httpx.Request) -> httpx.Request:
        """Add the date, nonce, payload hash (and token) headers and the Authorization header."""
        if "x-acs-action" not in request.headers:
            raise ValueError("an ACS3 request needs an x-acs-action header (the API operation, e.g. GetAITask)")
        body = request.content
        request.headers["x-acs-date"] = acs_date(self._clock())
        request.headers["x-acs-signature-nonce"] = self._nonce()
        request.headers["x-acs-content-sha256"] = hashlib.sha256(body).hexdigest()
        if self._security_token:
            request.headers["x-acs-security-token"] = self._security_token
        request.headers.pop("authorization", None)
        signed = signed_header_names(request.headers)
        canonical = canonical_request(
            request.method,
            request.url.raw_path.split(b"?", 1)[0].decode("ascii"),
            request.url.query.decode("ascii"),
            request.headers,
            signed,
            request.headers["x-acs-content-sha256"],
        )
        request.headers["Authorization"] = authorization(
            self._access_key_id, signed, signature(self._access_key_secret, canonical)
        )
        return request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        yield self.sign(request)
