"""ApiSession retry policy and error mapping, over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import email.utils
import time

import httpx
import pytest

from airflow_task_runs.core.errors import ApiError, MalformedResponseError
from airflow_task_runs.core.http import ApiDialect, ApiSession, RetryPolicy, encode_query, parse_retry_after
from airflow_task_runs.ncp.hooks import NclueHook


def _polls(emu, run_id):
    return len(emu.requests_to(f"/api/v1/task-runs/{run_id}"))


def test_429_with_retry_after_is_retried(ncp):
    emu, run_id = ncp
    emu.inject(
        "status",
        status=429,
        headers={"Retry-After": "0"},
        match="/api/v1/task-runs/",
        body=b'{"error": {"errorCode": "400", "message": "Exceeded rate limit"}}',
    )
    status = NclueHook().get_status(run_id)
    assert status.raw_status == "in_progress"
    assert _polls(emu, run_id) == 2


def test_retry_after_is_honoured_as_the_wait(ncp):
    emu, run_id = ncp
    emu.inject("status", status=429, headers={"Retry-After": "1"}, match="/api/v1/task-runs/")
    hook = NclueHook()
    started = time.monotonic()
    hook.get_status(run_id)
    # The emulator's backoff settings are ~0.05 s; only Retry-After explains a 1 s pause.
    assert time.monotonic() - started >= 0.9
    assert _polls(emu, run_id) == 2


def test_503_burst_is_retried(ncp):
    emu, run_id = ncp
    emu.inject("status", times=3, status=503, match="/api/v1/task-runs/")
    assert NclueHook().get_status(run_id).raw_status == "in_progress"
    assert _polls(emu, run_id) == 4


def test_connection_reset_is_retried(ncp):
    emu, run_id = ncp
    emu.inject("reset", match="/api/v1/task-runs/")
    assert NclueHook().get_status(run_id).raw_status == "in_progress"
    assert _polls(emu, run_id) == 2


def test_403_fails_at_once_with_the_cloud_code(ncp):
    emu, run_id = ncp
    emu.inject(
        "status",
        status=403,
        match="/api/v1/task-runs/",
        body=b'{"error": {"errorCode": "210", "message": "Permission Denied"}}',
    )
    with pytest.raises(ApiError) as caught:
        NclueHook().get_status(run_id)
    assert caught.value.status_code == 403
    assert caught.value.code == "210"
    assert "Permission Denied" in str(caught.value)
    assert _polls(emu, run_id) == 1


def test_attempts_are_bounded(ncp, monkeypatch):
    emu, run_id = ncp
    emu.inject("status", times=50, status=502, match="/api/v1/task-runs/")
    with pytest.raises(ApiError) as caught:
        NclueHook().get_status(run_id)
    assert caught.value.status_code == 502
    assert _polls(emu, run_id) == RetryPolicy().max_attempts


def test_malformed_json_is_a_clear_error(ncp):
    emu, run_id = ncp
    emu.inject("malformed", times=10, match="/api/v1/task-runs/")
    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        NclueHook().get_status(run_id)


def test_truncated_body_is_retried(ncp):
    emu, run_id = ncp
    emu.inject("truncated", match="/api/v1/task-runs/")
    assert NclueHook().get_status(run_id).raw_status == "in_progress"
    assert _polls(emu, run_id) == 2


def test_slow_response_hits_the_read_timeout(task_runs_connections, monkeypatch):
    emu = task_runs_connections.ncp
    run_id = emu.add_run(lifecycle=[("in_progress", 0)])
    conn = emu.airflow_connection()
    conn["extra"].update({"read_timeout": 0.2, "retry_max_attempts": 1})
    import json

    monkeypatch.setenv("AIRFLOW_CONN_NCP_SLOW", json.dumps(conn))
    emu.inject("slow", delay=1.0, match="/api/v1/task-runs/")
    with pytest.raises(ApiError) as caught:
        NclueHook(ncp_conn_id="ncp_slow").get_status(run_id)
    # named once, in the session: cloud, host, call, what to check
    assert caught.value.code == "ReadTimeout"
    assert caught.value.status_code is None
    assert f"GET http://127.0.0.1:{emu.port}/api/v1/task-runs/{run_id}" in str(caught.value)
    assert "read_timeout=0.2 s" in str(caught.value)


def test_request_that_must_not_repeat_is_sent_once(ncp):
    emu, run_id = ncp
    emu.inject("status", status=503, match="/api/v1/task-runs/")
    hook = NclueHook()
    with pytest.raises(ApiError):
        hook.session.request_json("GET", f"/task-runs/{run_id}", retry_ok=False)
    assert _polls(emu, run_id) == 1


def test_parse_retry_after_seconds_and_http_date():
    assert parse_retry_after("7") == 7.0
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after("not a date") is None
    assert parse_retry_after(None) is None


def _retry_state(retry_after: float):
    import tenacity

    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    err = ApiError(cloud="x", status_code=429, code=None, message="slow down", retry_after=retry_after)
    state.set_exception((ApiError, err, None))
    return state, err


def test_retry_after_beyond_the_old_60s_cap_is_honoured_within_the_budget():
    session = ApiSession("http://127.0.0.1:1", dialect=ApiDialect(cloud="x"), retry=RetryPolicy(max_elapsed=300))
    state, _ = _retry_state(90)
    assert session.rules._wait(state) == 90
    assert session.rules._stop(state) is False


def test_retry_after_over_the_cap_stops_and_says_why():
    session = ApiSession("http://127.0.0.1:1", dialect=ApiDialect(cloud="x"), retry=RetryPolicy(max_retry_after=5))
    state, err = _retry_state(600)
    assert session.rules._stop(state) is True  # retrying sooner than the server asked is pointless
    assert "asked to retry after 600 s, more than the 5 s allowed" in str(err)
    assert RetryPolicy.from_extra({"retry_after_max": "30"}).retry_after_cap == 30


def test_encode_query_is_rfc3986():
    assert encode_query({"b": "t 1~*", "a": "x/y"}) == "b=t%201~%2A&a=x%2Fy"
    assert encode_query({"skip": None, "flag": True}) == "flag=true"


def test_error_never_carries_the_secret(ncp, captured_logs):
    emu, run_id = ncp
    emu.inject("status", times=2, status=503, match="/api/v1/task-runs/")
    NclueHook().get_status(run_id)
    text = captured_logs()
    assert "retry 2 of" in text
    assert emu.secret_key not in text


def test_tls_verification_is_on_by_default_and_shared():
    from airflow_task_runs.core.http import _ssl_context

    one = ApiSession("https://example.invalid", dialect=ApiDialect(cloud="x"))
    two = ApiSession("https://example.invalid", dialect=ApiDialect(cloud="x"))
    assert one.verify is True
    # One CA bundle load per process, however many hooks a triggerer holds.
    assert _ssl_context(one.verify) is _ssl_context(two.verify)
    import ssl

    assert _ssl_context(True).verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("raw", "setting"),
    [("false", False), ("False", False), (False, False), ("true", True), ("/etc/ca.pem", "/etc/ca.pem")],
)
def test_verify_extra_is_parsed(raw, setting):
    assert ApiSession("https://x", dialect=ApiDialect(cloud="x"), verify=raw).verify == setting


def test_the_reported_trickle_ends_within_its_budget(task_runs_connections, monkeypatch):
    """The review's case: 1 byte every 0.5 s, read_timeout=2, retry_max_elapsed=3 took 53 s; now <= 5 s."""
    import json

    emu = task_runs_connections.ncp
    run_id = emu.add_run(lifecycle=[("in_progress", 0)])
    conn = emu.airflow_connection()
    conn["extra"].update({"read_timeout": 2, "retry_max_elapsed": 3})
    monkeypatch.setenv("AIRFLOW_CONN_NCP_TRICKLED", json.dumps(conn))
    emu.inject("trickle", times=50, delay=0.5, match=f"/api/v1/task-runs/{run_id}")
    started = time.monotonic()
    try:
        with pytest.raises(ApiError, match="time budget of 5 s") as caught:
            NclueHook(ncp_conn_id="ncp_trickled").get_status(run_id)
    finally:
        emu.clear_faults()
    assert time.monotonic() - started <= 5 + 1.0
    assert caught.value.code == "Timeout" and not caught.value.retryable


class _AskAgainOn401(httpx.Auth):
    """Signs with ``inner``; answered 401, signs the request afresh and sends it once more."""

    def __init__(self, inner: httpx.Auth) -> None:
        self.inner = inner

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        response = yield next(self.inner.auth_flow(request))
        if response.status_code == 401:
            request.headers["x-asked-again"] = "yes"
            yield next(self.inner.auth_flow(request))


def test_the_async_send_follows_an_auth_flow_that_asks_again_and_runs_the_event_hooks(ncp):
    """The async path sends without httpx's client pipeline: an auth flow answering a response
    with a new request, and the session's event hooks (the rate limit), must still work."""
    emu, run_id = ncp
    emu.inject("status", status=401, match=f"/api/v1/task-runs/{run_id}")
    seen: list[str] = []

    async def main() -> tuple[object, object]:
        hook = NclueHook()
        signed = await hook.asession()
        session = ApiSession(
            signed.base_url, dialect=signed.dialect, auth=_AskAgainOn401(signed.auth), retry=RetryPolicy(max_attempts=1)
        )

        async def on_request(request: httpx.Request) -> None:
            seen.append(f"request {request.headers.get('x-asked-again', 'first')}")

        async def on_response(response: httpx.Response) -> None:
            seen.append(f"response {response.status_code}")

        session.aclient.event_hooks = {"request": [on_request], "response": [on_response]}
        try:
            return await session.arequest_json("GET", f"/task-runs/{run_id}")
        finally:
            await session.aclose()
            await hook.aclose()

    body, response = asyncio.run(main())
    assert response.status_code == 200 and body["status"] == "in_progress"  # type: ignore[attr-defined,index]
    sent = emu.requests_to(f"/api/v1/task-runs/{run_id}")
    assert [r.headers.get("x-asked-again") for r in sent] == [None, "yes"]
    assert seen == ["request first", "response 401", "request yes", "response 200"]


def test_the_async_send_refuses_a_client_closed_under_it_and_sends_nothing(ncp):
    """As httpx's own send: a closed client's transport would open a new pool that nothing closes."""
    emu, run_id = ncp

    async def main() -> None:
        hook = NclueHook()
        signed = await hook.asession()
        session = ApiSession(
            signed.base_url, dialect=signed.dialect, auth=signed.auth, retry=RetryPolicy(max_attempts=1)
        )
        client = session.aclient
        await client.aclose()
        try:
            with pytest.raises(RuntimeError, match="client has been closed"):
                await session.arequest_json("GET", f"/task-runs/{run_id}")
        finally:
            await session.aclose()
            await hook.aclose()

    emu.reset_log()
    asyncio.run(main())
    assert emu.requests_to(f"/api/v1/task-runs/{run_id}") == []
