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
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

GENERIC_HEADERS = ("date", "(request-target)", "host")
BODY_HEADERS = ("content-length", "content-type", "x-content-sha256")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


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
    """Signs every request (each retry afresh, with a new ``date``) with an OCI API key.

    ``date_provider`` returns the ``date`` header value (tests pin it to a vector's date).

    ``requires_request_body`` makes httpx hand the body over before signing, so the hash
    covers exactly the bytes that go on the wire.
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
    ) -> None:
        self.key_id = f"{tenancy}/{user}/{fingerprint}"
        self._private_key = private_key
        self._date_provider = date_provider

    def __repr__(self) -> str:  # never show the key
        return f"OciRequestSigner(key_id={self.key_id!r})"

    def sign(self, request: httpx.Request) -> None:
        """Add ``date``, body headers and ``authorization`` to ``request`` in place."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        method = request.method.upper()
        date = request.headers["date"] = self._date_provider() if self._date_provider else http_date()
        host = request.headers.get("host")
        if host is None:
            host = request.headers["host"] = request.url.netloc.decode("ascii")
        names: tuple[str, ...] = GENERIC_HEADERS
        values = {"date": date, "host": host}
        if method in BODY_METHODS:
            body = request.content
            values["content-length"] = request.headers["content-length"] = str(len(body))
            values["content-type"] = request.headers.setdefault("content-type", "application/json")
            values["x-content-sha256"] = request.headers["x-content-sha256"] = body_sha256(body)
            names = GENERIC_HEADERS + BODY_HEADERS
        # the values just set, not read back from httpx's headers (a scan per name, per request)
        text = signing_string(method, request.url.raw_path.decode("ascii"), values, names)
        signature = self._private_key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        request.headers["authorization"] = (
            f'Signature algorithm="rsa-sha256",headers="{" ".join(names)}",keyId="{self.key_id}",'
            f'signature="{base64.b64encode(signature).decode()}",version="1"'
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request


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
