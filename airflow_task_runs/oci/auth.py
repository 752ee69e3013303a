"""OCI HTTP request signatures (draft-cavage-http-signatures-08, rsa-sha256) as an httpx.Auth.

Follows Oracle's "Request Signatures" documentation and the behaviour of the official
Python SDK's ``oci.signer.Signer`` (checked byte for byte against vectors it computed):

- GET / HEAD / DELETE sign ``date (request-target) host``;
- POST / PUT / PATCH also sign ``content-length content-type x-content-sha256``, where
  ``x-content-sha256`` is the base64 SHA-256 of exactly the body bytes httpx sends;
- ``Authorization: Signature algorithm="rsa-sha256",headers="...",keyId="{tenancy}/{user}/{fingerprint}",
  signature="...",version="1"``.

Instance and resource principals need OCI's own token exchange: :class:`OciSdkSignerAuth`
adapts the official SDK's signer (installed with the ``oci-sdk`` extra) to httpx.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import functools
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Generator
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

log = logging.getLogger(__name__)

GENERIC_HEADERS = ("date", "(request-target)", "host")
BODY_HEADERS = ("content-length", "content-type", "x-content-sha256")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: a GET or HEAD signs only ``date (request-target) host``: the same read of the same resource
#: within this many seconds is sent with the signature already made for it. OCI accepts a
#: ``date`` up to 5 minutes from its clock; a minute of reuse leaves four for clock skew.
SIGNATURE_REUSE_SECONDS = 60
#: the most reusable signatures kept per signer (about 600 bytes each)
MAX_REUSABLE_SIGNATURES = 16_384
_REUSABLE_METHODS = frozenset({"GET", "HEAD"})


class PrivateKeyError(ValueError):
    """The private key could not be loaded. The message never contains key material."""


def load_private_key(pem: str | bytes, pass_phrase: str | None = None) -> RSAPrivateKey:
    """Load an RSA private key from PEM (PKCS#1 or PKCS#8, optionally encrypted)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    data = pem.encode() if isinstance(pem, str) else pem
    if b"-----BEGIN" not in data or b"PRIVATE KEY-----" not in data:
        raise PrivateKeyError("is not a PEM private key (expected '-----BEGIN ... PRIVATE KEY-----')")
    password = pass_phrase.encode() if pass_phrase else None
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError:
        # cryptography: "Password was not given but private key is encrypted" or the reverse.
        if password is None:
            raise PrivateKeyError("is encrypted: set its passphrase (extra passphrase)") from None
        raise PrivateKeyError("is not encrypted but a passphrase was given: remove extra passphrase") from None
    except ValueError:
        if password is not None:
            raise PrivateKeyError("could not be decrypted: check extra passphrase, or the PEM is damaged") from None
        raise PrivateKeyError("is not a valid PEM private key (damaged or unsupported format)") from None
    except Exception:
        raise PrivateKeyError("could not be loaded (unsupported key format)") from None
    if not isinstance(key, RSAPrivateKey):
        raise PrivateKeyError(f"is a {type(key).__name__}; OCI API keys are RSA")
    return key


def key_fingerprint(key: RSAPrivateKey) -> str:
    """OCI's fingerprint of a key pair: MD5 of the DER public key, colon-separated hex."""
    from cryptography.hazmat.primitives import serialization

    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.md5(der, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def http_date(now: float | None = None) -> str:
    """RFC 7231 date, as the ``date`` header OCI checks for clock skew (5 minutes)."""
    return _http_date_of(int(time.time() if now is None else now))


@functools.lru_cache(maxsize=4)
def _http_date_of(second: int) -> str:
    """Formatted once a second, not once per request (1,000 watches sign ~1,000 a second)."""
    return email.utils.formatdate(second, usegmt=True)


def body_sha256(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def signing_string(method: str, raw_path: str, headers: httpx.Headers | dict[str, str], names: tuple[str, ...]) -> str:
    """The text that is signed: one ``name: value`` line per signed header, in order."""
    lines = []
    for name in names:
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {raw_path}")
        else:
            lines.append(f"{name}: {headers[name]}")
    return "\n".join(lines)


class OciRequestSigner(httpx.Auth):
    """Signs every request with an OCI API key.

    ``date_provider`` returns the ``date`` header value (tests pin it to a vector's date).

    ``requires_request_body`` makes httpx hand the body over before signing, so the hash
    covers exactly the bytes that go on the wire.

    An RSA signature costs about 0.3 ms of CPU, the largest part of a status poll: a triggerer
    polling thousands of runs every few seconds would spend a core signing. A read (GET, HEAD)
    signs nothing but the date, the path and the host, so one made for the same read less than
    :data:`SIGNATURE_REUSE_SECONDS` ago is sent again, with its date. Should OCI refuse one
    (a 401: a clock more than about 4 minutes off), this signer stops reusing (a clock that far
    off would be refused again each minute) and the request, marked
    (:data:`~airflow_task_runs.core.http.REUSED_AUTH_EXTENSION`), is retried by the session, signed
    afresh, as far as the connection's retry settings allow. Writes are always signed afresh.
    """

    requires_request_body = True

    def __init__(
        self,
        *,
        tenancy: str,
        user: str,
        fingerprint: str,
        private_key: RSAPrivateKey,
        date_provider: Callable[[], str] | None = None,
        reuse_seconds: float = SIGNATURE_REUSE_SECONDS,
    ) -> None:
        self.key_id = f"{tenancy}/{user}/{fingerprint}"
        self._private_key = private_key
        self._date_provider = date_provider
        self._reuse_seconds = reuse_seconds
        #: (method, path, host) -> (when signed, on the monotonic clock; date; authorization), oldest first
        self._signed: OrderedDict[tuple[str, str, str], tuple[float, str, str]] = OrderedDict()
        self._lock = threading.Lock()  # the sync client may be shared by threads

    def __repr__(self) -> str:  # never show the key
        return f"OciRequestSigner(key_id={self.key_id!r})"

    def sign(self, request: httpx.Request) -> None:
        """Add ``date``, body headers and ``authorization`` to ``request`` in place."""
        from airflow_task_runs.core.http import REUSED_AUTH_EXTENSION

        method = request.method.upper()
        host = request.headers.get("host")
        if host is None:
            host = request.headers["host"] = request.url.netloc.decode("ascii")
        raw_path = request.url.raw_path.decode("ascii")
        reusable = method in _REUSABLE_METHODS and self._reuse_seconds > 0
        # a request sent before with a reused signature is being retried: sign it afresh
        retried_after_reuse = request.extensions.pop(REUSED_AUTH_EXTENSION, False)
        fresh = not reusable or retried_after_reuse
        key = (method, raw_path, host)
        now = time.time()
        age_from = time.monotonic()  # the wall clock may step (NTP): ages count on this one
        if not fresh:
            with self._lock:
                cached = self._signed.get(key)
            if cached is not None and age_from - cached[0] < self._reuse_seconds:
                request.headers["date"], request.headers["authorization"] = cached[1], cached[2]
                request.extensions[REUSED_AUTH_EXTENSION] = True
                return
        date = request.headers["date"] = self._date_provider() if self._date_provider else http_date(now)
        names: tuple[str, ...] = GENERIC_HEADERS
        values = {"date": date, "host": host}
        if method in BODY_METHODS:
            body = request.content
            values["content-length"] = request.headers["content-length"] = str(len(body))
            values["content-type"] = request.headers.setdefault("content-type", "application/json")
            values["x-content-sha256"] = request.headers["x-content-sha256"] = body_sha256(body)
            names = GENERIC_HEADERS + BODY_HEADERS
        # the values just set, not read back from httpx's headers (a scan per name, per request)
        authorization = request.headers["authorization"] = self._authorization(
            signing_string(method, raw_path, values, names), names
        )
        if reusable:
            self._keep(key, (age_from, date, authorization))

    def _authorization(self, text: str, names: tuple[str, ...]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        signature = self._private_key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        return (
            f'Signature algorithm="rsa-sha256",headers="{" ".join(names)}",keyId="{self.key_id}",'
            f'signature="{base64.b64encode(signature).decode()}",version="1"'
        )

    def _keep(self, key: tuple[str, str, str], signed: tuple[float, str, str]) -> None:
        """Remember a read's signature; the oldest go first (expired, or over the bound)."""
        with self._lock:
            if self._reuse_seconds <= 0:  # stopped meanwhile (a refusal)
                return
            self._signed[key] = signed
            self._signed.move_to_end(key)
            while len(self._signed) > MAX_REUSABLE_SIGNATURES or (
                signed[0] - next(iter(self._signed.values()))[0] >= self._reuse_seconds
            ):
                self._signed.popitem(last=False)

    def _stop_reusing(self) -> None:
        with self._lock:
            window, self._reuse_seconds = self._reuse_seconds, 0
            self._signed.clear()
        if window > 0:
            log.warning(
                "OCI refused a request signature made less than %g s earlier (401): is this machine's "
                "clock minutes off? Signing every request afresh from now (keep NTP on)",
                window,
            )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        from airflow_task_runs.core.http import REUSED_AUTH_EXTENSION

        self.sign(request)
        response = yield request
        if response.status_code == 401 and request.extensions.get(REUSED_AUTH_EXTENSION):
            self._stop_reusing()


class _SdkRequestShim:
    """The few attributes of a ``requests.PreparedRequest`` that the OCI SDK signers read."""

    def __init__(self, request: httpx.Request) -> None:
        self.method = request.method
        self.url = str(request.url)
        self.path_url = request.url.raw_path.decode("ascii")
        self.body = request.content
        self.headers: dict[str, str] = {k.lower(): v for k, v in request.headers.items()}


class OciSdkSignerAuth(httpx.Auth):
    """Adapter: the official SDK's instance- or resource-principal signer, on the httpx session.

    The SDK refreshes its security token itself; this only asks it to sign each request and
    copies the headers it sets. Needs ``pip install 'airflow-task-runs[oci-sdk]'``.
    """

    requires_request_body = True

    def __init__(self, signer: Any) -> None:
        self._signer = signer

    def __repr__(self) -> str:
        return f"OciSdkSignerAuth({type(self._signer).__name__})"

    @classmethod
    def for_auth_type(cls, auth_type: str) -> OciSdkSignerAuth:
        try:
            from oci.auth import signers  # type: ignore[import-not-found]
        except ImportError:
            raise ImportError(
                f"auth_type {auth_type!r} needs Oracle's OCI SDK: pip install 'airflow-task-runs[oci-sdk]' "
                "(or use auth_type 'api_key' with a user API key)"
            ) from None
        if auth_type == "instance_principal":
            return cls(signers.InstancePrincipalsSecurityTokenSigner())
        if auth_type == "resource_principal":
            return cls(signers.get_resource_principals_signer())
        raise ValueError(f"unknown auth_type {auth_type!r}")

    def _apply(self, request: httpx.Request) -> None:
        shim = _SdkRequestShim(request)
        self._signer(shim)
        for name, value in shim.headers.items():
            if request.headers.get(name) != value:
                request.headers[name] = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self._apply(request)
        yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        # The SDK signer fetches and refreshes its token with blocking HTTP calls: in the
        # triggerer that must happen off the event loop.
        await asyncio.to_thread(self._apply, request)
        yield request
