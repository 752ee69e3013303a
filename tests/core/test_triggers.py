"""The core TaskRunTrigger on its own: shared hooks, the deadline mid-request, the shared rate limit.

Against the emulator over real HTTP; the rate-limit test counts requests as the server saw them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import sys
import threading
import time
import types

import pytest

from airflow_task_runs.core.shared import shared_hooks
from airflow_task_runs.core.triggers import TaskRunTrigger
from airflow_task_runs.testing.sensors import run_trigger
from airflow_task_runs.testing.server import Reply

ROS = "airflow_task_runs.alibaba.hooks.RosHook"
NCLUE = "airflow_task_runs.ncp.hooks.NclueHook"


@pytest.fixture
def emu(task_runs_connections):
    return task_runs_connections


def _trigger(hook_path, hook_kwargs, kind, ref, *, deadline=30.0, poll=0.02, **kwargs):
    return TaskRunTrigger(
        hook_path=hook_path,
        hook_kwargs=hook_kwargs,
        status_kind=kind,
        run_ref=ref,
        poll_interval=poll,
        deadline=time.time() + deadline,
        description=f"run {ref}",
        **kwargs,
    )


async def _first_events(triggers):
    async def first(trigger):
        gen = trigger.run()
        try:
            async for event in gen:
                return event.payload
        finally:
            await gen.aclose()
        raise AssertionError("no event")

    return await asyncio.gather(*(first(t) for t in triggers))


def _ros_connection(emu, monkeypatch, conn_id, **extra):
    conn = emu.alibaba.airflow_connection()
    conn["extra"] = {**conn["extra"], **extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def test_triggers_on_one_connection_share_one_hook_closed_with_the_last(emu):
    ids = [emu.alibaba.add_task(lifecycle=[("RUNNING", n), ("SUCCESS", 0)]) for n in (1, 3, 6)]
    triggers = [
        _trigger(ROS, {"alibaba_ros_conn_id": "alibaba_ros_default"}, "ai_task", {"ai_task_id": i}) for i in ids
    ]
    seen: list[int] = []

    async def main():
        async def watch_registry():
            while True:
                seen.append(len(shared_hooks))
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch_registry())
        events = await _first_events(triggers)
        watcher.cancel()
        return events, len(shared_hooks)

    events, left = asyncio.run(main())
    assert [e["status"]["raw_status"] for e in events] == ["SUCCESS"] * 3
    assert max(seen) == 1  # three triggers, one shared hook (one client, pool and signer)
    assert left == 0  # released and closed when the last trigger ended


def test_a_hook_is_never_shared_across_event_loops(emu):
    """A trigger left open in one loop (its generator never closed) must not lend its client to the next loop."""
    task_id = emu.alibaba.add_task(lifecycle=[("RUNNING", 1), ("SUCCESS", 0)])
    first = _trigger(ROS, {}, "ai_task", {"ai_task_id": task_id})

    async def leave_open():
        gen = first.run()
        await gen.__anext__()  # the event; the generator is left suspended, its hook still held
        return gen

    kept = asyncio.run(leave_open())
    second = run_trigger(_trigger(ROS, {}, "ai_task", {"ai_task_id": task_id}))
    assert second["event"] == "terminal", second
    del kept


def test_the_status_kind_must_be_one_the_hook_knows(emu):
    task_id = emu.alibaba.add_task(lifecycle=[("SUCCESS", 0)])
    event = run_trigger(_trigger(ROS, {}, "task_run", {"ai_task_id": task_id}))
    assert event["event"] == "error"
    assert "RosHook has no status kind 'task_run'; it knows ai_task" in event["message"]


def test_a_trigger_serialized_with_a_status_method_still_runs(emu):
    task_id = emu.alibaba.add_task(lifecycle=[("RUNNING", 1), ("SUCCESS", 0)])
    trigger = TaskRunTrigger(
        hook_path=ROS,
        hook_kwargs={},
        status_method="aget_status",
        run_ref={"ai_task_id": task_id},
        poll_interval=0.02,
        deadline=time.time() + 30,
    )
    _, kwargs = trigger.serialize()
    assert kwargs["status_method"] == "aget_status" and "status_kind" not in kwargs
    event = run_trigger(TaskRunTrigger(**kwargs))
    assert event["event"] == "terminal"
    assert event["status"]["raw_status"] == "SUCCESS"


def test_a_trigger_needs_exactly_one_way_to_poll():
    with pytest.raises(ValueError, match="exactly one of status_kind or status_method"):
        TaskRunTrigger(hook_path=ROS, hook_kwargs={}, run_ref={}, poll_interval=1, deadline=0)


def test_the_deadline_fires_on_time_while_a_request_is_in_flight(emu):
    """A server that answers after 5 s cannot hold a trigger whose deadline is 0.5 s away."""
    task_id = emu.alibaba.add_task(lifecycle=[("RUNNING", 0)])
    emu.alibaba.inject("slow", times=1, delay=5.0)
    trigger = _trigger(ROS, {}, "ai_task", {"ai_task_id": task_id}, deadline=0.5)
    started = time.monotonic()
    event = run_trigger(trigger)
    elapsed = time.monotonic() - started
    assert event["event"] == "timeout"
    assert "had not answered its first status call at the deadline" in event["message"]
    assert elapsed < 3.0, f"the deadline waited for the slow answer ({elapsed:.1f}s)"


def test_the_deadline_reports_the_last_status_seen(emu):
    task_id = emu.alibaba.add_task(lifecycle=[("RUNNING", 0)])
    event = run_trigger(_trigger(ROS, {}, "ai_task", {"ai_task_id": task_id}, deadline=2.0, poll=0.05))
    assert event["event"] == "timeout"
    assert event["raw_status"] == "RUNNING"
    assert "was still RUNNING at the deadline" in event["message"]


def test_1000_watches_on_one_connection_never_exceed_its_rate_and_one_429_pauses_them_all(emu, monkeypatch):
    """R requests per second at most, in every 1 s window the server saw; one 429 holds back everyone once."""
    rate = 100
    conn_id = _ros_connection(emu, monkeypatch, "ros_limited", max_requests_per_second=rate)
    ros = emu.alibaba
    ids = [ros.add_task(lifecycle=[("SUCCESS", 0)]) for _ in range(1000)]
    arrivals: list[tuple[float, int]] = []
    lock = threading.Lock()
    original = ros.handle
    watched = set(ids)

    def timed(request):
        """The emulator's answer, timed; the 400th request is answered 429 + Retry-After: 1."""
        if request.query.get("TaskId") not in watched:  # a straggler of an earlier test
            return original(request)
        with lock:
            arrivals.append((time.monotonic(), 0))
            index = len(arrivals) - 1
        if index == 300:
            reply = Reply.json(429, {"Code": "Throttling", "Message": "slow down"}, {"Retry-After": "1"})
        else:
            reply = original(request)
        arrivals[index] = (arrivals[index][0], reply.status)
        return reply

    monkeypatch.setattr(ros, "handle", timed)
    triggers = [
        _trigger(ROS, {"alibaba_ros_conn_id": conn_id}, "ai_task", {"ai_task_id": i}, poll=0.5, deadline=60)
        for i in ids
    ]

    async def main():
        return await _first_events(triggers)

    events = asyncio.run(main())
    assert all(e["event"] == "terminal" for e in events), [e for e in events if e["event"] != "terminal"][:2]
    times = sorted(t for t, _ in arrivals)
    assert len(times) == 1001  # one poll per task, and the one retried after the 429
    # No R+1 requests inside one second. The stamps are taken by the emulator's handler threads,
    # which share this process's GIL with 1,000 triggers (and a busy machine): they lag the wire
    # unevenly, by up to ~0.1 s, which is allowed here (the limiter spaces the wire writes
    # exactly 1/R apart); over the whole run the rate is at most R.
    tightest = min(times[i + rate] - times[i] for i in range(len(times) - rate))
    assert tightest >= 1.0 - 0.1, f"{rate + 1} requests within {tightest:.3f}s"
    assert (len(times) - 1) / (times[-1] - times[0]) <= rate
    throttled = [t for t, status in arrivals if status == 429]
    assert len(throttled) == 1
    # Every trigger paused: once the requests already on the wire when the 429 was answered
    # have landed, the server hears nothing for the Retry-After second.
    around = [throttled[0], *(t for t in times if throttled[0] < t < throttled[0] + 1.5)]
    silence = max(b - a for a, b in itertools.pairwise(around))
    assert silence >= 0.8, f"the longest silence after the 429 was {silence:.2f}s"
    assert len([t for t in around if t < throttled[0] + 0.1]) <= 1 + rate * 0.1  # stragglers only


def test_polls_start_a_few_per_loop_iteration():
    """1,000 triggers waking together must not all build their requests in one loop iteration."""
    from airflow_task_runs.core.shared import PollPacer

    pacer = PollPacer(per_iteration=16)

    async def main():
        iteration = 0
        started_in: list[int] = []

        def count():  # runs once per loop iteration while the test is on
            nonlocal iteration
            iteration += 1
            if len(started_in) < 1000:
                asyncio.get_running_loop().call_soon(count)

        async def poll():
            await pacer.turn()
            started_in.append(iteration)

        asyncio.get_running_loop().call_soon(count)
        await asyncio.gather(*(poll() for _ in range(1000)))
        return started_in

    started_in = asyncio.run(main())
    per_iteration = [len(list(group)) for _, group in itertools.groupby(sorted(started_in))]
    assert len(started_in) == 1000
    assert max(per_iteration) <= 16, max(per_iteration)
    assert len(per_iteration) >= 1000 // 16


def test_polls_keep_their_cadence_whatever_an_answer_takes(emu):
    """The next poll comes one interval after the last was asked, not interval + answer time."""
    ncp = emu.ncp
    run_id = ncp.add_run(lifecycle=[("in_progress", 6), ("completed", 0)])
    ncp.inject("slow", times=100, delay=0.15, match=f"/api/v1/task-runs/{run_id}")
    trigger = _trigger(NCLUE, {}, "task_run", {"run_id": run_id}, poll=0.3)
    trigger_alone = TaskRunTrigger(**{**trigger.serialize()[1], "hook_path": f"{__name__}.NclueAlone"})
    (event,) = asyncio.run(_first_events([trigger_alone]))
    assert event["event"] == "terminal"
    asked = [r.at for r in ncp.requests_to(f"/api/v1/task-runs/{run_id}")]
    gaps = [b - a for a, b in itertools.pairwise(asked)]
    # with a 0.15 s answer, "interval after the answer" would space them 0.45 s apart
    assert len(gaps) >= 5 and statistics.median(gaps) < 0.4, gaps


class NclueAlone:
    """A user's subclass of a cloud hook, defined outside the package (here: polled run by run)."""

    def __new__(cls, **kwargs):
        from airflow_task_runs.ncp.hooks import NclueHook

        class _Alone(NclueHook):
            def batch_key(self, kind, ref):
                return None

        return _Alone(**kwargs)


def test_a_hook_subclass_from_a_user_module_runs_in_a_trigger(emu):
    run_id = emu.ncp.add_run(lifecycle=[("in_progress", 1), ("completed", 0)])
    (event,) = asyncio.run(_first_events([_trigger(f"{__name__}.NclueAlone", {}, "task_run", {"run_id": run_id})]))
    assert event["event"] == "terminal", event
    assert event["status"]["raw_status"] == "completed"


class NclueTimingOut:
    """A hook whose status call fails with a TimeoutError of its own, long before the deadline."""

    def __new__(cls, **kwargs):
        from airflow_task_runs.ncp.hooks import NclueHook

        class _TimingOut(NclueHook):
            def batch_key(self, kind, ref):
                return None

            async def arun_status(self, kind, ref):
                raise TimeoutError("the cloud's own gateway timed out")

        return _TimingOut(**kwargs)


def test_a_timeout_the_status_call_raises_itself_is_an_error_not_the_deadline(emu):
    """Only the watch's deadline makes a timeout event; the run may well still be going."""
    trigger = _trigger(f"{__name__}.NclueTimingOut", {}, "task_run", {"run_id": "r"}, deadline=30)
    (event,) = asyncio.run(_first_events([trigger]))
    assert event["event"] == "error", event
    assert "the cloud's own gateway timed out" in event["message"]


async def _own_asyncio_timeout() -> None:
    await asyncio.sleep(0)
    raise asyncio.TimeoutError("the call's own wait_for timed out")


@pytest.mark.parametrize("python", [(3, 10, 13), sys.version_info], ids=["3.10-branch", "this-python"])
def test_within_tells_the_deadline_from_a_calls_own_timeout(monkeypatch, python):
    """On 3.10 (wait_for, no asyncio.timeout) a call's own asyncio.TimeoutError was taken for the deadline."""
    from airflow_task_runs.core import triggers
    from airflow_task_runs.core.triggers import DeadlineReached, within

    monkeypatch.setattr(triggers, "sys", types.SimpleNamespace(version_info=python))
    with pytest.raises(asyncio.TimeoutError) as caught:
        asyncio.run(within(_own_asyncio_timeout(), 3600))
    assert not isinstance(caught.value, DeadlineReached)
    started = time.monotonic()
    with pytest.raises(DeadlineReached):
        asyncio.run(within(asyncio.sleep(10), 0.05))
    assert time.monotonic() - started < 2


_FIRST_POLL = """
import json, sys, threading, time
on_loop = {}

ours_on_loop = []

class Spy:  # notes the thread each watched module is first imported in
    def find_spec(self, name, path=None, target=None):
        if name == "aiohttp" and name not in on_loop:
            on_loop[name] = threading.current_thread() is threading.main_thread()
        if name.startswith("airflow_task_runs.") and threading.current_thread() is threading.main_thread():
            ours_on_loop.append(name)
        return None

sys.meta_path.insert(0, Spy())
from airflow_task_runs.core import http
from airflow_task_runs.core.triggers import TaskRunTrigger
from airflow_task_runs.testing.sensors import run_trigger

loaded_before = "aiohttp" in sys.modules
built = http._ssl_context

def ssl_context(verify):
    on_loop.setdefault("ssl context", threading.current_thread() is threading.main_thread())
    return built(verify)

http._ssl_context = ssl_context
ours_on_loop.clear()  # from here on, the trigger runs: nothing of ours is imported on its loop
trigger = TaskRunTrigger(hook_path=sys.argv[1], hook_kwargs={}, status_kind=sys.argv[2],
                         run_ref=json.loads(sys.argv[3]), poll_interval=0.05, deadline=time.time() + 60)
event = run_trigger(trigger)
print(json.dumps({"loaded_before": loaded_before, "on_loop": on_loop, "ours": ours_on_loop, "event": event["event"]}))
"""


@pytest.mark.parametrize("cloud", ["ncp", "aws", "oci", "ros"])
def test_a_triggers_first_poll_imports_nothing_on_the_event_loop(emu, cloud):
    """Importing aiohttp (it builds TLS contexts as it loads), a cloud's pydantic models or the
    HealthOmics client on its first poll held a fresh triggerer's loop 0.1-0.5 s."""
    import subprocess

    from airflow_task_runs.testing.oci import PLATFORM_ID, WORKSPACE_KEY

    if cloud == "ncp":
        hook, kind, ref = NCLUE, "task_run", {"run_id": emu.ncp.add_run(lifecycle=[("completed", 0)])}
    elif cloud == "aws":
        run_id = emu.aws.add_run(lifecycle=[("COMPLETED", 0)])
        hook, kind, ref = "airflow_task_runs.aws.hooks.HealthOmicsHook", "run", {"run_id": run_id}
    elif cloud == "oci":
        key = emu.oci.add_task_run(lifecycle=["SUCCESS"])
        hook, kind = "airflow_task_runs.oci.hooks.OciAiDataPlatformHook", "task_run"
        ref = {"ai_data_platform_id": PLATFORM_ID, "workspace_key": WORKSPACE_KEY, "task_run_key": key}
    else:
        hook, kind, ref = ROS, "ai_task", {"ai_task_id": emu.alibaba.add_task(lifecycle=[("SUCCESS", 0)])}
    args = [sys.executable, "-c", _FIRST_POLL, hook, kind, json.dumps(ref)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["event"] == "terminal" and not seen["loaded_before"], seen
    assert seen["on_loop"] == {"aiohttp": False, "ssl context": False}, seen
    assert seen["ours"] == [], seen
