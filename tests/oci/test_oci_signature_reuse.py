"""A read's RSA signature is reused for a minute (the largest CPU cost of a status poll), and a
refused reuse is retried signed afresh: over real HTTP against the emulator, and on the signer."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx
import pytest
from oci_vectors import FINGERPRINT, PRIVATE_KEY_PEM, TENANCY, USER

from airflow_task_runs.core.errors import ApiError
from airflow_task_runs.core.http import RetryPolicy
from airflow_task_runs.oci import auth
from airflow_task_runs.oci.auth import OciRequestSigner, load_private_key
from airflow_task_runs.oci.hooks import OciAiDataPlatformHook
from airflow_task_runs.testing.oci import PLATFORM_ID, WORKSPACE_KEY


@pytest.fixture
def emu(task_runs_connections):
    oci = task_runs_connections.oci
    oci.reset_log()
    yield oci
    oci.clock_skew_seconds = 300


def _reads(emu, key: str) -> list[Any]:
    return [r for r in emu.requests if r.method == "GET" and r.path.endswith(f"/taskRuns/{key}")]


def test_a_second_read_within_the_minute_sends_the_first_signature_and_is_accepted(emu):
    emu.add_task_run("reuse-run", lifecycle=["RUNNING"])
    emu.add_task_run("other-run", lifecycle=["RUNNING"])
    hook = OciAiDataPlatformHook()
    hook.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "reuse-run")
    time.sleep(1.1)  # a new second: a fresh signature would carry a new date
    assert hook.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "reuse-run").state.status == "RUNNING"
    hook.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "other-run")
    first, second = _reads(emu, "reuse-run")
    assert (second.headers["date"], second.headers["authorization"]) == (
        first.headers["date"],
        first.headers["authorization"],
    )
    other = _reads(emu, "other-run")[0]
    assert other.headers["date"] != first.headers["date"], "another path is signed afresh, now"


async def test_the_triggerers_reads_reuse_too(emu):
    emu.add_task_run("async-reuse", lifecycle=["RUNNING"])
    hook = OciAiDataPlatformHook()
    try:
        await hook.aget_task_run_status(PLATFORM_ID, WORKSPACE_KEY, "async-reuse")
        time.sleep(1.1)
        await hook.aget_task_run_status(PLATFORM_ID, WORKSPACE_KEY, "async-reuse")
    finally:
        await hook.aclose()
    first, second = _reads(emu, "async-reuse")
    assert second.headers["authorization"] == first.headers["authorization"]
    assert second.headers["date"] == first.headers["date"]


def _dated(seconds_ago: float):
    return lambda now=None: email.utils.formatdate(time.time() - seconds_ago, usegmt=True)


def test_a_refused_reused_signature_is_retried_once_signed_afresh(monkeypatch, emu):
    """A clock skewed by nearly 5 minutes: the reused (older) date is refused; the retry passes."""
    emu.add_task_run("skew-run", lifecycle=["RUNNING"])
    hook = OciAiDataPlatformHook()
    monkeypatch.setattr(auth, "http_date", _dated(250))
    hook.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "skew-run")  # accepted: 250 s is within 5 minutes
    monkeypatch.setattr(auth, "http_date", _dated(0))
    emu.clock_skew_seconds = 100  # now the first signature's date is too old
    assert hook.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "skew-run").state.status == "RUNNING"
    first, reused, fresh = _reads(emu, "skew-run")
    assert reused.headers["authorization"] == first.headers["authorization"]
    assert fresh.headers["authorization"] != first.headers["authorization"]
    assert abs(email.utils.parsedate_to_datetime(fresh.headers["date"]).timestamp() - time.time()) < 5


def test_after_a_refused_reused_signature_reads_are_signed_afresh_even_without_retries(monkeypatch, emu, caplog):
    """Retries off: the refused read fails, but the refused signature is not sent again (it was,
    for the rest of its minute), and the signer says once what happened."""
    emu.add_task_run("skew-noretry", lifecycle=["RUNNING"])
    hook = OciAiDataPlatformHook()
    hook.session.retry = RetryPolicy(max_attempts=1)
    monkeypatch.setattr(auth, "http_date", _dated(250))
    hook.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "skew-noretry")
    monkeypatch.setattr(auth, "http_date", _dated(0))
    emu.clock_skew_seconds = 100
    with pytest.raises(ApiError) as caught:
        hook.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "skew-noretry")
    assert caught.value.status_code == 401
    for _ in range(3):
        assert hook.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "skew-noretry").state.status == "RUNNING"
    warnings = [r.getMessage() for r in caplog.records if "Signing every request afresh" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "clock" in warnings[0]


def test_a_fresh_signature_refused_after_a_reused_one_is_not_retried_again(monkeypatch, emu):
    emu.add_task_run("skew-run-2", lifecycle=["RUNNING"])
    hook = OciAiDataPlatformHook()
    monkeypatch.setattr(auth, "http_date", _dated(250))
    hook.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "skew-run-2")
    emu.clock_skew_seconds = 100  # the clock stays skewed: the fresh signature is refused too
    with pytest.raises(ApiError, match="clock skew") as caught:
        hook.get_task_run(PLATFORM_ID, WORKSPACE_KEY, "skew-run-2")
    assert caught.value.status_code == 401
    assert len(_reads(emu, "skew-run-2")) == 3, "first read, the reused signature, one fresh retry"


# -- the signer alone -------------------------------------------------------------------------
class _CountingKey:
    """The RSA key, counting its signatures."""

    def __init__(self) -> None:
        self.key = load_private_key(PRIVATE_KEY_PEM)
        self.signed = 0

    def sign(self, *args: Any) -> bytes:
        self.signed += 1
        return self.key.sign(*args)


def _send(signer: OciRequestSigner, method: str, url: str, body: bytes | None = None) -> httpx.Request:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    with httpx.Client(transport=httpx.MockTransport(handler), auth=signer) as client:
        client.request(method, url, content=body, headers={"content-type": "application/json"})
    return seen[0]


def _counting_signer(**kwargs: Any) -> tuple[OciRequestSigner, _CountingKey]:
    key = _CountingKey()
    signer = OciRequestSigner(tenancy=TENANCY, user=USER, fingerprint=FINGERPRINT, private_key=key, **kwargs)  # type: ignore[arg-type]
    return signer, key


def test_reads_of_one_resource_are_signed_once_writes_every_time():
    signer, key = _counting_signer()
    for _ in range(3):
        _send(signer, "GET", "https://oci.test/20260430/a/taskRuns/k1")
    assert key.signed == 1
    _send(signer, "GET", "https://oci.test/20260430/a/taskRuns/k1?x=1")  # another request target
    _send(signer, "GET", "https://other.test/20260430/a/taskRuns/k1")  # another host
    assert key.signed == 3
    for _ in range(2):
        _send(signer, "POST", "https://oci.test/20260430/a/taskRuns/k1/actions/fetchOutput", b"{}")
    _send(signer, "DELETE", "https://oci.test/20260430/a/taskRuns/k1")
    _send(signer, "DELETE", "https://oci.test/20260430/a/taskRuns/k1")
    assert key.signed == 7


def test_a_signature_older_than_the_window_is_not_reused():
    signer, key = _counting_signer(reuse_seconds=0.2)
    _send(signer, "GET", "https://oci.test/a")
    _send(signer, "GET", "https://oci.test/a")
    time.sleep(0.25)
    _send(signer, "GET", "https://oci.test/a")
    assert key.signed == 2
    off, off_key = _counting_signer(reuse_seconds=0)
    _send(off, "GET", "https://oci.test/a")
    _send(off, "GET", "https://oci.test/a")
    assert off_key.signed == 2


def test_the_kept_signatures_are_bounded_oldest_first(monkeypatch):
    monkeypatch.setattr(auth, "MAX_REUSABLE_SIGNATURES", 3)
    signer, key = _counting_signer()
    for i in range(5):
        _send(signer, "GET", f"https://oci.test/r{i}")
    assert key.signed == 5
    _send(signer, "GET", "https://oci.test/r4")  # among the newest three: reused
    assert key.signed == 5
    _send(signer, "GET", "https://oci.test/r0")  # the oldest, dropped: signed again
    assert key.signed == 6


def test_a_refusal_of_a_reused_signature_stops_the_reuse():
    """A clock minutes off would be refused again each minute: after one refusal, every read is signed."""
    signer, key = _counting_signer()
    answers = iter([200, 401, 200, 200, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers), json={})

    with httpx.Client(transport=httpx.MockTransport(handler), auth=signer) as client:
        statuses = [client.get("https://oci.test/20260430/a/taskRuns/k1").status_code for _ in range(5)]
    assert statuses == [200, 401, 200, 200, 200]
    assert key.signed == 4, "signed, reused (refused), then signed every time"
