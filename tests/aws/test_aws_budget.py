"""A HealthOmics call, botocore's retries included, ends within ``retry_max_elapsed + read_timeout``.

botocore's retry handler sleeps its backoff whatever is left of the budget: against a server
answering 503 again and again, a 1 s budget took 1.8-1.9 s (a backoff can be up to 20 s). The
guard now refuses a retry whose backoff would end past ``retry_max_elapsed``, so the call ends in
time, with the server's own error.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from airflow_task_runs.aws.hooks import HealthOmicsHook
from airflow_task_runs.core.errors import ApiError

#: retry_max_elapsed + read_timeout: 2 s. botocore's first backoff is at most 1 s, so the first
#: retry always fits in the retry window; its later ones (up to 2, 4, 8, 16, 20 s) soon do not.
TIGHT = {"config_kwargs": {}, "retry_max_attempts": 10, "retry_max_elapsed": 1.5, "read_timeout": 0.5}
BUDGET = 2.0
MARGIN = 0.5  # scheduling on a busy machine; far less than one of botocore's later backoffs


@pytest.fixture
def tight_conn(emu, monkeypatch) -> str:
    conn = emu.airflow_connection()
    conn["extra"].update(TIGHT)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_TIGHT", json.dumps(conn))
    return "aws_tight"


@pytest.fixture
def failing_run(emu) -> str:
    """A run whose every GetRun is answered 503 (more faults than any attempt count here)."""
    run_id = emu.add_run(lifecycle=[("RUNNING", 0)])
    emu.inject("status", times=1000, status=503, match=f"/run/{run_id}")
    return run_id


def _check_error(err: ApiError, emu, run_id: str) -> None:
    """The server's own answer, mapped: not a timeout of our making."""
    assert (err.cloud, err.status_code, err.host) == ("AWS HealthOmics", 503, emu.url), err
    assert "GetRun" in str(err) and run_id in str(err)
    assert len(emu.requests_to(f"/run/{run_id}")) >= 2  # retries that fit the budget still happen


@pytest.mark.parametrize("mode", ["standard", "legacy"])
def test_sync_retries_stop_within_the_budget(emu, tight_conn, failing_run, mode):
    config = {"retries": {"mode": mode, "total_max_attempts": 10}}
    hook = HealthOmicsHook(aws_conn_id=tight_conn, botocore_config=config)
    assert hook.budget == BUDGET
    assert hook.client  # built outside the timed call: loading the service model is not the call's time
    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        hook.get_run(failing_run)
    elapsed = time.monotonic() - started
    assert elapsed <= BUDGET + MARGIN, f"{elapsed:.2f} s for a {BUDGET} s budget"
    _check_error(caught.value, emu, failing_run)


def test_async_retries_stop_within_the_budget_with_the_servers_error(emu, tight_conn, failing_run):
    """The triggerer's client was cut at the budget (bounded), but reported a made-up timeout."""

    async def scenario() -> float:
        hook = HealthOmicsHook(aws_conn_id=tight_conn)
        try:
            await hook.aclient()
            started = time.monotonic()
            try:
                await hook.aget_run(failing_run)
            finally:
                elapsed = time.monotonic() - started
        finally:
            await hook.aclose()
        return elapsed

    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        asyncio.run(scenario())
    elapsed = time.monotonic() - started
    assert elapsed <= BUDGET + MARGIN + 1.0, f"{elapsed:.2f} s for a {BUDGET} s budget"  # + the event loop's set-up
    assert caught.value.code != "Timeout", caught.value
    _check_error(caught.value, emu, failing_run)


# -- botocore internals the guards need: checked when they are installed ----------------------
def test_a_botocore_without_the_session_internals_fails_at_install_naming_them(emu, monkeypatch):
    """A botocore that renamed what the guard reaches into must not leave calls unbounded, nor break
    them half-way: the client is refused at once, saying which botocore and what is missing."""
    import botocore
    from botocore.httpsession import URLLib3Session

    from airflow_task_runs.aws.botocore_guard import BotocoreInternalsError

    monkeypatch.delattr(URLLib3Session, "_get_connection_manager")
    with pytest.raises(BotocoreInternalsError) as caught:
        HealthOmicsHook().get_run(emu.add_run())
    message = str(caught.value)
    assert f"botocore {botocore.__version__}" in message
    assert "URLLib3Session._get_connection_manager" in message
    assert message.startswith("AWS HealthOmics: ")
    assert emu.requests == []  # refused before any call


def test_a_retry_handler_botocore_no_longer_registers_so_fails_at_install(emu):
    """Without the retry handler to wrap, botocore's retries would sleep past the budget."""
    import boto3

    from airflow_task_runs.aws import botocore_guard

    client = boto3.client(
        "omics", region_name="us-east-1", endpoint_url=emu.url, aws_access_key_id="a", aws_secret_access_key="b"
    )
    client.meta.events.unregister("needs-retry.omics", unique_id="retry-config-omics")
    with pytest.raises(botocore_guard.BotocoreInternalsError, match=r"retry handler .*'retry-config-omics'"):
        botocore_guard.install(client, cloud="AWS HealthOmics", max_bytes=1024)
