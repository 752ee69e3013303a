"""The ACS3-HMAC-SHA256 signer: Alibaba's own vectors byte for byte, and the emulator's independent check."""

from __future__ import annotations

import time

import httpx
import pytest
from alibaba_vectors import ACCESS_KEY_ID, ACCESS_KEY_SECRET, CASES, DATE, EPOCH, NONCE

from airflow_task_runs.alibaba.auth import AcsV3Auth, canonical_query
from airflow_task_runs.core.http import encode_query


def _vector_auth(**kwargs) -> AcsV3Auth:
    return AcsV3Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET, clock=lambda: EPOCH, nonce=lambda: NONCE, **kwargs)


def _request(case: dict) -> httpx.Request:
    """The request as the hook builds it: query RFC 3986 encoded, x-acs-action/version set by the caller."""
    headers = {k: v for k, v in case["headers"].items() if k in ("x-acs-action", "x-acs-version", "content-type")}
    query = encode_query(dict(sorted(case["query"].items())))
    url = f"https://{case['headers']['host']}{case['path']}?{query}"
    return httpx.Request(case["method"], url, headers=headers, content=case["body"].encode())


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_every_vector_signs_byte_for_byte(case):
    signed = next(_vector_auth().auth_flow(_request(case)))
    assert signed.headers["authorization"] == case["authorization"]
    for name, value in case["headers"].items():
        assert signed.headers[name] == value, name


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_canonical_query_is_sorted_and_rfc3986_encoded(case):
    wire = encode_query(case["query"])  # the caller's order, not sorted
    assert canonical_query(wire) == case["canonical_query"]


def test_query_needing_encoding_is_signed_as_sent():
    case = CASES[3]
    signed = next(_vector_auth().auth_flow(_request(case)))
    assert signed.url.query == b"OutputOption=Disabled&TaskId=t%201~%2A"
    assert signed.headers["authorization"] == case["authorization"]


def test_date_is_iso8601_utc():
    signed = next(_vector_auth().auth_flow(_request(CASES[0])))
    assert signed.headers["x-acs-date"] == DATE


def test_sts_token_is_sent_and_signed():
    signed = next(_vector_auth(security_token="sts-token-value").auth_flow(_request(CASES[0])))
    assert signed.headers["x-acs-security-token"] == "sts-token-value"
    assert "x-acs-security-token" in signed.headers["authorization"].split("SignedHeaders=")[1].split(",")[0]
    assert signed.headers["authorization"] != CASES[0]["authorization"]


def test_every_send_gets_a_new_nonce_and_signature():
    """httpx runs the auth flow per send: a retried request is re-signed, never replayed."""
    nonces: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        nonces.append(request.headers["x-acs-signature-nonce"])  # read now: httpx reuses the request object
        return httpx.Response(200, json={})

    auth = AcsV3Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        request = client.build_request(
            "POST", "https://ros.aliyuncs.com/?TaskId=t-1", headers=dict(CASES[0]["headers"])
        )
        del request.headers["x-acs-date"], request.headers["x-acs-signature-nonce"]
        client.send(request)
        client.send(request)
    assert len(set(nonces)) == 2 and all(len(n) == 32 for n in nonces)


def test_missing_action_is_a_clear_error():
    with pytest.raises(ValueError, match="x-acs-action"):
        next(_vector_auth().auth_flow(httpx.Request("POST", "https://ros.aliyuncs.com/")))


def test_repr_hides_the_secret_and_token():
    text = repr(AcsV3Auth("AKID", "TOPSECRET", "STSTOKEN"))
    assert "TOPSECRET" not in text and "STSTOKEN" not in text and "AKID" in text


# -- the emulator's own check, over real HTTP -------------------------------------------------
@pytest.fixture
def emu(task_runs_connections):
    return task_runs_connections.alibaba


def _send(emu, auth: httpx.Auth | None, task_id: str, **headers: str) -> httpx.Response:
    with httpx.Client(auth=auth) as client:
        return client.post(
            f"{emu.url}/?OutputOption=Disabled&TaskId={task_id}",
            headers={"x-acs-action": "GetAITask", "x-acs-version": "2019-09-10", **headers},
            content=b"",
        )


def test_emulator_accepts_a_good_signature_with_content_type(emu):
    task_id = emu.add_task(lifecycle=[("RUNNING", 0)])
    auth = AcsV3Auth(emu.access_key_id, emu.access_key_secret)
    response = _send(emu, auth, task_id, **{"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200, response.text
    assert response.json()["Status"] == "RUNNING"
    assert "content-type;host;" in emu.requests_for(task_id)[-1].headers["authorization"]


def _assert_alibaba_error(response: httpx.Response, status: int, code: str) -> None:
    body = response.json()
    assert response.status_code == status, body
    assert body["Code"] == code
    assert body["Message"] and body["RequestId"]


def test_emulator_rejects_a_wrong_secret(emu):
    task_id = emu.add_task()
    response = _send(emu, AcsV3Auth(emu.access_key_id, "not-the-secret"), task_id)
    _assert_alibaba_error(response, 400, "SignatureDoesNotMatch")


def test_emulator_rejects_an_unknown_access_key(emu):
    response = _send(emu, AcsV3Auth("LTAIUNKNOWN", emu.access_key_secret), emu.add_task())
    _assert_alibaba_error(response, 404, "InvalidAccessKeyId.NotFound")


def test_emulator_rejects_a_reused_nonce(emu):
    task_id = emu.add_task()
    auth = AcsV3Auth(emu.access_key_id, emu.access_key_secret, nonce=lambda: f"fixed-nonce-{task_id}")
    assert _send(emu, auth, task_id).status_code == 200
    _assert_alibaba_error(_send(emu, auth, task_id), 400, "SignatureNonceUsed")


@pytest.mark.parametrize("offset", [-16 * 60, 16 * 60])
def test_emulator_rejects_a_stale_or_future_date(emu, offset):
    auth = AcsV3Auth(emu.access_key_id, emu.access_key_secret, clock=lambda: time.time() + offset)
    _assert_alibaba_error(_send(emu, auth, emu.add_task()), 400, "InvalidTimeStamp.Expired")


def test_emulator_accepts_a_date_within_fifteen_minutes(emu):
    auth = AcsV3Auth(emu.access_key_id, emu.access_key_secret, clock=lambda: time.time() - 14 * 60)
    assert _send(emu, auth, emu.add_task()).status_code == 200


def test_emulator_rejects_a_header_added_after_signing(emu):
    task_id = emu.add_task()
    auth = AcsV3Auth(emu.access_key_id, emu.access_key_secret)
    with httpx.Client() as client:
        request = client.build_request(
            "POST",
            f"{emu.url}/?OutputOption=Disabled&TaskId={task_id}",
            headers={"x-acs-action": "GetAITask", "x-acs-version": "2019-09-10"},
            content=b"",
        )
        auth.sign(request)
        request.headers["x-acs-extra"] = "smuggled"
        _assert_alibaba_error(client.send(request), 400, "IncompleteSignature")


def test_emulator_rejects_a_tampered_query(emu):
    task_id, other = emu.add_task(), emu.add_task()
    auth = AcsV3Auth(emu.access_key_id, emu.access_key_secret)
    with httpx.Client() as client:
        request = client.build_request(
            "POST",
            f"{emu.url}/?OutputOption=Disabled&TaskId={task_id}",
            headers={"x-acs-action": "GetAITask", "x-acs-version": "2019-09-10"},
            content=b"",
        )
        auth.sign(request)
        tampered = client.build_request(
            "POST", f"{emu.url}/?OutputOption=Enabled&TaskId={other}", headers=request.headers, content=b""
        )
        _assert_alibaba_error(client.send(tampered), 400, "SignatureDoesNotMatch")


def test_emulator_requires_the_sts_token_for_sts_keys(emu):
    task_id = emu.add_task()
    without = AcsV3Auth(emu.sts_access_key_id, emu.sts_access_key_secret)
    _assert_alibaba_error(_send(emu, without, task_id), 400, "MissingSecurityToken")
    with_token = AcsV3Auth(emu.sts_access_key_id, emu.sts_access_key_secret, emu.sts_token)
    assert _send(emu, with_token, task_id).status_code == 200


def test_emulator_rejects_an_unsigned_request(emu):
    _assert_alibaba_error(_send(emu, None, emu.add_task()), 400, "IncompleteSignature")
