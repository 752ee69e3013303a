"""aws.sigv4.SigV4Auth against botocore's own SigV4Auth: the same Authorization header, byte for byte.

Each request is built as the HealthOmics client builds it (httpx, the query encoded by the
session), signed by ours at a fixed time; botocore then signs the same method, URL, body and
signed headers at the same time, and the two headers must be equal.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools

import httpx
import pytest

from airflow_task_runs.aws.sigv4 import SigV4Auth, canonical_path, canonical_query
from airflow_task_runs.core.http import encode_query

WHEN = dt.datetime(2026, 12, 2, 7, 30, 5, tzinfo=dt.timezone.utc)
ACCESS, SECRET = "AKIDEXAMPLE0000000000", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+token/with+slashes=="


class Frozen:
    def __init__(self, access_key: str = ACCESS, secret_key: str = SECRET, token: str | None = None) -> None:
        self.access_key, self.secret_key, self.token = access_key, secret_key, token

    def get_frozen_credentials(self):
        return self


def _botocore_authorization(
    request: httpx.Request, token: str | None, region: str, service: str, when: dt.datetime = WHEN
) -> str:
    """botocore's SigV4Auth over the same method, URL, body and signed headers, at ``when``."""
    from botocore.auth import SigV4Auth as BotocoreSigV4
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    signed = request.headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {name: request.headers[name] for name in signed if name not in ("x-amz-date", "x-amz-security-token")}
    aws = AWSRequest(method=request.method, url=str(request.url), data=request.content, headers=headers)
    aws.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    signer = BotocoreSigV4(Credentials(ACCESS, SECRET, token), service, region)
    signer._modify_request_before_signing(aws)  # sets X-Amz-Date and X-Amz-Security-Token, as add_auth does
    string_to_sign = signer.string_to_sign(aws, signer.canonical_request(aws))
    signer._inject_signature_to_request(aws, signer.signature(string_to_sign, aws))
    return str(aws.headers["Authorization"])


def _request(method: str, base: str, path: str, params: dict | None = None, **kwargs) -> httpx.Request:
    query = encode_query(params)
    return httpx.Request(method, f"{base}{path}" + (f"?{query}" if query else ""), **kwargs)


CASES = [
    pytest.param("GET", "https://workflows-omics.us-east-1.amazonaws.com", "/run/1234567", None, id="get-run"),
    pytest.param(
        "GET", "https://workflows-omics.us-east-1.amazonaws.com", "/run/1234567/task/7654321", None, id="get-task"
    ),
    pytest.param(
        "GET",
        "https://workflows-omics.eu-west-2.amazonaws.com",
        "/run",
        {"status": "RUNNING", "maxResults": 100, "startingToken": "eyJhIjogMX0=/+x y~*!'()"},
        id="list-runs-query-special-characters",
    ),
    pytest.param(
        "GET",
        "http://127.0.0.1:4566",
        "/run/a%20b%3A%40%2B%24%2C%3B%3D%26%25%E2%9C%93/task",
        {"status": "FAILED", "b": "2", "a": "1", "A": "z", "a_b": "é ✓"},
        id="reserved-characters-in-path-and-query",
    ),
    pytest.param("GET", "http://localhost:80", "/run/..%2F..%2Fx/./task", None, id="dot-segments-default-port"),
    pytest.param("POST", "https://workflows-omics.us-east-1.amazonaws.com", "/run/42/cancel", None, id="cancel"),
]


@pytest.mark.parametrize("token", [None, TOKEN], ids=["keys", "session-token"])
@pytest.mark.parametrize(("method", "base", "path", "params"), CASES)
def test_authorization_is_botocores(method, base, path, params, token):
    region = base.split(".")[1] if "amazonaws" in base else "us-east-1"
    request = _request(method, base, path, params, content=b"" if method == "POST" else None)
    SigV4Auth(Frozen(token=token), region, "omics").sign(request, Frozen(token=token), WHEN.timestamp())
    assert request.headers["x-amz-date"] == "20261202T073005Z"
    assert request.headers.get("x-amz-security-token") == token
    # what botocore signs for these requests (the comparison below uses the list this signer chose)
    expected = "host;x-amz-date" + (";x-amz-security-token" if token else "")
    assert f"SignedHeaders={expected}," in request.headers["authorization"]
    assert request.headers["authorization"] == _botocore_authorization(request, token, region, "omics")


def test_a_json_body_and_its_content_type_are_signed_like_botocore():
    body = b'{"requestId":"r-1","outputUri":"s3://bucket/out/","parameters":{"a":[1,2,"\\u00e9"]}}'
    request = _request(
        "POST", "https://workflows-omics.us-east-1.amazonaws.com", "/run", content=body,
        headers={"Content-Type": "application/json", "X-Amz-Target": "ignored-but-signed", "Accept": "*/*"},
    )  # fmt: skip
    SigV4Auth(Frozen(), "us-east-1", "omics").sign(request, Frozen(), WHEN.timestamp())
    signed = request.headers["authorization"].split("SignedHeaders=")[1].split(",")[0]
    assert signed == "content-type;host;x-amz-date;x-amz-target"  # accept and user-agent may change on the way
    assert request.headers["authorization"] == _botocore_authorization(request, None, "us-east-1", "omics")


def test_a_retry_is_signed_afresh_without_the_old_headers():
    auth = SigV4Auth(Frozen(token=TOKEN), "us-east-1", "omics")
    request = _request("GET", "https://omics.us-east-1.amazonaws.com", "/run/1")
    auth.sign(request, Frozen(token=TOKEN), WHEN.timestamp())
    first = request.headers["authorization"]
    later = WHEN + dt.timedelta(days=1, seconds=61)  # a new day: a new signing key too
    auth.sign(request, Frozen(token=None), later.timestamp())
    assert "x-amz-security-token" not in request.headers
    assert len(request.headers.get_list("authorization")) == len(request.headers.get_list("x-amz-date")) == 1
    assert request.headers["authorization"] != first
    assert request.headers["authorization"] == _botocore_authorization(request, None, "us-east-1", "omics", later)


def test_canonical_parts():
    assert canonical_path("/run/a%2Fb") == "/run/a%252Fb"  # encoded twice, as SigV4 wants outside S3
    assert canonical_path("") == "/"
    assert canonical_path("//run//1/") == "/run/1/"
    assert canonical_query("b=2&a=x%20y&a=%7E&c") == "a=x%20y&a=~&b=2&c="  # "~" is unreserved: not encoded
    assert canonical_query("k=a+b") == "k=a%2Bb"  # '+' is a plus, not a space, in SigV4


def test_the_async_flow_signs_with_the_credentials_of_the_moment_and_reports_a_refresh():
    """aiobotocore's refreshable credentials renew themselves; each send signs with what they hold."""
    from aiobotocore.credentials import AioRefreshableCredentials

    refreshes = itertools.count()

    async def refresh():  # each refresh brings new keys that expire within the refresh window
        n = next(refreshes)
        expiry = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=60)
        return {
            "access_key": f"AKIA{n}",
            "secret_key": f"secret-{n}",
            "token": f"token-{n}",
            "expiry_time": expiry.isoformat(),
        }

    async def scenario():
        credentials = AioRefreshableCredentials.create_from_metadata(await refresh(), refresh, "test")
        seen = []

        async def on_credentials(frozen):
            seen.append(frozen.secret_key)

        auth = SigV4Auth(credentials, "us-east-1", "omics", on_credentials=on_credentials)
        client = httpx.AsyncClient(auth=auth, transport=httpx.MockTransport(lambda r: httpx.Response(200)))
        sent = []
        async with client:
            for _ in range(2):
                response = await client.get("https://omics.us-east-1.amazonaws.com/run/1")
                sent.append(response.request.headers)
        return sent, seen

    sent, seen = asyncio.run(scenario())
    used = [h["authorization"].split("Credential=")[1].split("/")[0] for h in sent]
    assert used[0] != used[1] and all(key.startswith("AKIA") for key in used)  # refreshed between the two sends
    assert [h["x-amz-security-token"] for h in sent] == [key.replace("AKIA", "token-") for key in used]
    assert seen == [key.replace("AKIA", "secret-") for key in used]  # each new secret reported once, for the masker


def test_async_credentials_refuse_a_sync_client():
    from aiobotocore.credentials import AioCredentials

    client = httpx.Client(auth=SigV4Auth(AioCredentials("a", "b"), "us-east-1", "omics"))
    with pytest.raises(TypeError, match="AsyncClient"):
        client.get("http://127.0.0.1:9/run/1")


def test_repr_shows_no_secret():
    assert SECRET not in repr(SigV4Auth(Frozen(), "us-east-1", "omics"))
