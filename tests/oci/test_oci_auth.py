"""The OCI request signer: byte-exact against Oracle's official signer, key loading, the SDK adapter."""

from __future__ import annotations

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from oci_vectors import CASES, DATE, FINGERPRINT, PRIVATE_KEY_PEM, TENANCY, USER

from airflow_task_runs.oci.auth import (
    OciRequestSigner,
    OciSdkSignerAuth,
    PrivateKeyError,
    key_fingerprint,
    load_private_key,
)


def _signer(**kwargs):
    return OciRequestSigner(
        tenancy=TENANCY,
        user=USER,
        fingerprint=FINGERPRINT,
        private_key=load_private_key(PRIVATE_KEY_PEM),
        date_provider=lambda: DATE,
        **kwargs,
    )


@pytest.mark.parametrize("case", CASES, ids=[f"{c['method']}-{c['url'].rsplit('/', 1)[-1]}" for c in CASES])
def test_signature_matches_oracles_signer_byte_for_byte(case):
    body = case["body"].encode() if case["body"] is not None else None
    request = httpx.Request(case["method"], case["url"], content=body, headers={"content-type": "application/json"})
    _signer().sign(request)
    assert request.headers["authorization"] == case["authorization"]
    for name, value in case["headers_sent"].items():
        assert request.headers[name] == value, name


def test_post_signs_the_bytes_httpx_sends_through_the_auth_flow():
    """Through a real httpx client (json= body), the signature still matches the vector."""
    case = CASES[2]
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers["authorization"]
        seen["body"] = request.content
        return httpx.Response(200, json={})

    with httpx.Client(transport=httpx.MockTransport(handler), auth=_signer()) as client:
        client.post(case["url"], content=case["body"].encode(), headers={"content-type": "application/json"})
    assert seen["body"] == case["body"].encode()
    assert seen["auth"] == case["authorization"]


def test_fingerprint_of_the_vector_key():
    assert key_fingerprint(load_private_key(PRIVATE_KEY_PEM)) == FINGERPRINT


def test_repr_shows_no_key_material():
    text = repr(_signer())
    assert "PRIVATE" not in text and "MII" not in text
    assert TENANCY in text


def _encrypted_pem(pass_phrase: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(pass_phrase.encode()),
    ).decode()


def test_encrypted_key_needs_the_right_pass_phrase():
    pem = _encrypted_pem("open sesame")
    assert load_private_key(pem, "open sesame").key_size == 2048
    with pytest.raises(PrivateKeyError, match=r"set its passphrase \(extra passphrase\)") as missing:
        load_private_key(pem)
    with pytest.raises(PrivateKeyError, match="check extra passphrase") as wrong:
        load_private_key(pem, "wrong phrase")
    for exc in (missing.value, wrong.value):
        assert "open sesame" not in str(exc) and "BEGIN" not in str(exc)


@pytest.mark.parametrize(
    ("pem", "problem"),
    [
        ("not a key at all", "not a PEM private key"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a valid PEM private key"),
    ],
)
def test_bad_pem_is_refused_without_echoing_it(pem, problem):
    with pytest.raises(PrivateKeyError, match=problem) as caught:
        load_private_key(pem)
    assert "AAAA" not in str(caught.value)


def test_sdk_adapter_copies_the_sdk_signers_headers():
    """The SDK signer gets a PreparedRequest-like object; what it sets lands on the httpx request."""
    calls = []

    def fake_sdk_signer(request):
        calls.append((request.method, request.path_url, request.body, dict(request.headers)))
        request.headers["authorization"] = 'Signature keyId="ST$token"'
        request.headers["x-content-sha256"] = "digest"

    auth = OciSdkSignerAuth(fake_sdk_signer)
    request = httpx.Request("POST", "https://aidp.example/20260430/a?b=c", content=b'{"outputKey":"o"}')
    flow = auth.auth_flow(request)
    signed = next(flow)
    assert signed.headers["authorization"] == 'Signature keyId="ST$token"'
    assert signed.headers["x-content-sha256"] == "digest"
    assert calls[0][:3] == ("POST", "/20260430/a?b=c", b'{"outputKey":"o"}')


def test_sdk_auth_types_explain_the_missing_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "oci", None)
    with pytest.raises(ImportError, match=r"airflow-task-runs\[oci-sdk\]"):
        OciSdkSignerAuth.for_auth_type("instance_principal")


async def test_sdk_signer_runs_off_the_event_loop():
    """Instance/resource-principal signers make blocking HTTP calls: never on the triggerer's loop."""
    import threading

    import httpx

    from airflow_task_runs.oci.auth import OciSdkSignerAuth

    seen: list[str] = []

    def fake_signer(shim):
        seen.append(threading.current_thread().name)
        shim.headers["authorization"] = 'Signature keyId="ST$token"'

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"auth": request.headers["authorization"]})

    async with httpx.AsyncClient(auth=OciSdkSignerAuth(fake_signer), transport=httpx.MockTransport(handler)) as client:
        response = await client.get("https://aidp.example/20260430/x")
    assert response.json()["auth"] == 'Signature keyId="ST$token"'
    assert seen and seen[0] != threading.main_thread().name
