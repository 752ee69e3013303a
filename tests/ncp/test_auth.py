from __future__ import annotations

import httpx

from airflow_task_runs.core.http import encode_query
from airflow_task_runs.ncp.auth import NcpApiGatewayAuth, sign_v2

# Computed with NAVER's own generated SDK (ncloud-vserver make_signature).
VECTOR = {
    "access_key": "ACCESSKEYEXAMPLE",
    "secret_key": "SECRETKEYEXAMPLE",
    "timestamp": "1700000000000",
    "method": "GET",
    "path": "/api/v1/task-runs?index=0&limit=20",
    "signature": "KbStgUAFby3p4I69u8xf9nEnI2yEHSfyfS8Q/b2Xq78=",
}


def test_signature_matches_the_published_vector():
    assert (
        sign_v2(VECTOR["secret_key"], VECTOR["method"], VECTOR["path"], VECTOR["timestamp"], VECTOR["access_key"])
        == VECTOR["signature"]
    )


def _signed(url: str) -> httpx.Request:
    auth = NcpApiGatewayAuth(VECTOR["access_key"], VECTOR["secret_key"], clock=lambda: 1_700_000_000.0)
    request = httpx.Request("GET", url)
    return next(auth.auth_flow(request))


def test_auth_signs_the_bytes_on_the_wire():
    request = _signed("https://nclue.apigw.ntruss.com/api/v1/task-runs?index=0&limit=20")
    assert request.headers["X-NCP-APIGW-TIMESTAMP"] == VECTOR["timestamp"]
    assert request.headers["X-NCP-IAM-ACCESS-KEY"] == VECTOR["access_key"]
    assert request.headers["X-NCP-APIGW-SIGNATURE-V2"] == VECTOR["signature"]


def test_auth_signs_rfc3986_encoded_query_as_sent():
    query = encode_query({"name": "a b~*"})
    request = _signed(f"https://nclue.apigw.ntruss.com/api/v1/task-runs?{query}")
    wire = request.url.raw_path.decode()
    assert wire == "/api/v1/task-runs?name=a%20b~%2A"
    expected = sign_v2(VECTOR["secret_key"], "GET", wire, VECTOR["timestamp"], VECTOR["access_key"])
    assert request.headers["X-NCP-APIGW-SIGNATURE-V2"] == expected


def test_repr_hides_the_secret():
    assert "SECRETKEYEXAMPLE" not in repr(NcpApiGatewayAuth("AK", "SECRETKEYEXAMPLE"))
