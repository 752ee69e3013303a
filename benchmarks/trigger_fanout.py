"""Triggerer fan-out over TLS: this project's triggers next to dbt-cloud's trigger and bare loops.

N watches in one event loop (N = 100, 1,000, 2,000), each run ends on its 10th status read, polled
every 1 s (ideal schedule: 9 s). A local TLS server (self-signed certificate made here) runs in
its own process and answers every API with canned JSON (no signature checks: the client still
signs); each variant runs in a fresh child process, so its CPU time and peak RSS are its own.

    .venv/bin/python benchmarks/trigger_fanout.py              # all variants, N = 100 1000 2000
    .venv/bin/python benchmarks/trigger_fanout.py 1000 ncp oci  # some of them
    .venv/bin/python benchmarks/trigger_fanout.py --polls 60 1000 aws-runs  # longer watches
    .venv/bin/python benchmarks/trigger_fanout.py --spread --interval 10 1000 ncp ncp-alone  # deferred apart

A watch that ends costs a coalesced cloud its own call (HealthOmics reads the ended run with
GetRun for its event's details), so calls per watch-poll depend on how many polls a watch
lives: ``--polls`` shows it at lengths closer to real runs (10 polls at 1 s is a short run).

Reported per variant: client CPU ms per watch-poll, API calls per watch-poll (as the server
counted them), TCP connections opened, peak RSS (VmHWM), wall over the ideal schedule, the
longest event-loop stall (a 10 ms ticker's worst lateness: a whole loop iteration, what
Airflow's triggerer warns about above 0.2 s), the longest single callback in it ("block", the
garbage collector's pauses left out), the longest full garbage collection ("GC": it walks every
object of the process, Airflow's included, and stalls the loop whoever triggered it), and
whether every watch got its terminal event. dbt-cloud needs the bench-only extra (locked in constraints.txt):
.venv/bin/uv pip install --python .venv/bin/python --constraint constraints.txt -e '.[bench]'
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: status reads per watch (``--polls N`` sets it for the server and every client process)
POLLS = int(os.environ.get("FANOUT_POLLS", "10"))
#: seconds between polls (``--interval S``); ``--spread`` starts watch i of N at i/N of it, as
#: sensors deferred at different times do, where by default they all start together
INTERVAL = float(os.environ.get("FANOUT_INTERVAL", "1.0"))
SPREAD = os.environ.get("FANOUT_SPREAD") == "1"
IDEAL = (POLLS - 1) * INTERVAL
HERE = Path(__file__).resolve().parent
VARIANTS = (
    "ncp",
    "ncp-alone",
    "ncp-alone@httpx",
    "aws-tasks",
    "aws-runs",
    "aws-runs-alone",
    "oci",
    "oci@httpx",
    "ros",
    "ros@httpx",
    "dbt",
    "bare-aiohttp",
    "bare-httpx",
)
SIZES = (100, 1000, 2000)
BENCH_INSTALL = ".venv/bin/uv pip install --python .venv/bin/python --constraint constraints.txt -e '.[bench]'"


# -- certificate -------------------------------------------------------------------------------
def make_cert(folder: Path) -> tuple[Path, Path]:
    from airflow_task_runs.testing.tls import self_signed_certificate

    return self_signed_certificate(folder)


# -- server ------------------------------------------------------------------------------------
def _path_shape(path: str) -> str:
    """``/api/v1/task-runs/r5`` -> ``/api/v1/task-runs/{id}``: calls counted by what they ask for."""
    import re

    def shape(segment: str) -> str:
        keep = not any(c.isdigit() for c in segment) or re.fullmatch(r"v\d+|\d{8}", segment)
        return segment if keep else "{id}"

    return "/".join(shape(segment) for segment in path.rstrip("/").split("/")) or "/"


def serve(cert: str, key: str, port_file: str) -> None:
    import ssl

    from aiohttp import web

    reads: dict[str, int] = {}
    stats: dict[str, Any] = {"requests": 0, "peers": set(), "kinds": {}}
    extra_runs = 50  # NCLUE runs nobody watches, newest first in the list like most list APIs

    def status(key: str) -> bool:
        """Whether this read of ``key`` sees the run ended (its POLLS-th read or later)."""
        reads[key] = reads.get(key, 0) + 1
        return reads[key] >= POLLS

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/_control"):
            stats["requests"] += 1
            kind = f"{request.method} {_path_shape(request.path)}"
            stats["kinds"][kind] = stats["kinds"].get(kind, 0) + 1
            stats["peers"].add(request.transport.get_extra_info("peername") if request.transport else None)
        return await handler(request)

    def ncp_run(run_id: str, done: bool) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "run_name": f"bench-{run_id}",
            "task_id": "task-1",
            "status": "completed" if done else "in_progress",
            "created_at": "2026-11-23T00:00:00",
            "result_bucket": "bench",
            "result_file_path": f"results/{run_id}.csv",
        }

    ncp_ids: list[str] = []

    async def control_reset(request: web.Request) -> web.Response:
        body = await request.json()
        reads.clear()
        stats["requests"] = 0
        stats["peers"] = set()
        stats["kinds"] = {}
        ncp_ids[:] = [f"u{i}" for i in range(extra_runs)] + list(body.get("ncp_runs", []))
        omics_ids[:] = list(body.get("omics_runs", []))
        return web.json_response({})

    async def control_stats(request: web.Request) -> web.Response:
        return web.json_response(
            {"requests": stats["requests"], "connections": len(stats["peers"]), "kinds": stats["kinds"]}
        )

    async def ncp_get(request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        return web.json_response(ncp_run(run_id, status(f"ncp/{run_id}")))

    async def ncp_list(request: web.Request) -> web.Response:
        index, limit = int(request.query.get("index", 0)), int(request.query.get("limit", 20))
        newest_first = ncp_ids[::-1]
        page = [ncp_run(r, status(f"ncp/{r}")) for r in newest_first[index : index + limit]]
        return web.json_response({"index": index, "limit": limit, "total": len(ncp_ids), "runs": page})

    async def oci_get(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        done = status(f"oci/{key}")
        return web.json_response(
            {"key": key, "outputKey": "out", "state": {"status": "SUCCESS" if done else "RUNNING"}},
            headers={"opc-request-id": "bench"},
        )

    async def ros(request: web.Request) -> web.Response:
        task_id = request.query["TaskId"]
        done = status(f"ros/{task_id}")
        return web.json_response(
            {
                "RequestId": "bench",
                "TaskId": task_id,
                "TaskType": "GenerateTemplate",
                "Status": "SUCCESS" if done else "RUNNING",
            }
        )

    def omics_task(task_id: str, done: bool, listing: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "taskId": task_id,
            "status": "COMPLETED" if done else "RUNNING",
            "name": f"task-{task_id}",
            "cpus": 2,
            "memory": 4,
            "creationTime": "2026-11-23T00:00:00Z",
        }
        if not listing:
            body["logStream"] = f"run/x/task/{task_id}"
        return body

    async def omics_run(request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        done = status(f"omics-run/{run_id}")
        return web.json_response(
            {"id": run_id, "status": "COMPLETED" if done else "RUNNING", "uuid": f"uuid-{run_id}", "name": "bench"}
        )

    omics_ids: list[str] = []

    async def omics_list_runs(request: web.Request) -> web.Response:
        """ListRuns: every watched run is RUNNING until its POLLS-th read (a listing reads it)."""
        size = int(request.query.get("maxResults", 100))
        start = int(request.query.get("startingToken", 0) or 0)
        if request.query.get("status") != "RUNNING":
            return web.json_response({"items": []})
        going = [r for r in omics_ids if reads.get(f"omics-run/{r}", 0) < POLLS]
        items = [
            {"id": r, "status": "COMPLETED" if status(f"omics-run/{r}") else "RUNNING", "name": "bench"}
            for r in going[start : start + size]
        ]
        body: dict[str, Any] = {"items": items}
        if start + size < len(going):
            body["nextToken"] = str(start + size)
        return web.json_response(body)

    async def omics_tasks(request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        size = int(request.query.get("maxResults", 100))
        start = int(request.query.get("startingToken", 0) or 0)
        count = int(run_id.split("-")[-1])
        ids = [f"{run_id}-t{i}" for i in range(count)][start : start + size]
        body: dict[str, Any] = {"items": [omics_task(t, status(f"omics-task/{t}"), listing=True) for t in ids]}
        if start + size < count:
            body["nextToken"] = str(start + size)
        return web.json_response(body)

    async def omics_task_get(request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        return web.json_response(omics_task(task_id, status(f"omics-task/{task_id}")))

    async def dbt_run(request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        done = status(f"dbt/{run_id}")
        return web.json_response({"data": {"id": int(run_id), "status": 10 if done else 3}})

    async def bare(request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        return web.json_response({"id": run_id, "status": "done" if status(f"bare/{run_id}") else "running"})

    app = web.Application(middlewares=[count])
    app.add_routes(
        [
            web.post("/_control/reset", control_reset),
            web.get("/_control/stats", control_stats),
            web.get("/api/v1/task-runs/{run_id}", ncp_get),
            web.get("/api/v1/task-runs", ncp_list),
            web.get("/20260430/aiDataPlatforms/{p}/workspaces/{w}/taskRuns/{key}", oci_get),
            web.post("/", ros),
            web.get("/run", omics_list_runs),
            web.get("/run/{run_id}", omics_run),
            web.get("/run/{run_id}/task", omics_tasks),
            web.get("/run/{run_id}/task/{task_id}", omics_task_get),
            web.get("/api/v2/accounts/{account}/runs/{run_id}/", dbt_run),
            web.get("/bare/{run_id}", bare),
        ]
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context, backlog=4096)
        await site.start()
        port = runner.addresses[0][1]
        Path(port_file).write_text(str(port))
        await asyncio.Event().wait()

    asyncio.run(main())


# -- client variants (each in its own process) --------------------------------------------------
def _alone(hook_path: str) -> Any:
    """The hook class at ``hook_path`` with coalescing off: every watch polls its run by id."""
    from airflow.sdk._shared.module_loading import import_string

    class Alone(import_string(hook_path)):  # type: ignore[misc]
        def batch_key(self, kind: str, ref: Any) -> None:
            return None

    return Alone


def NclueAlone(**kwargs: Any) -> Any:
    """NCLUE polled run by run (no list coalescing): what every watch cost before."""
    return _alone("airflow_task_runs.ncp.hooks.NclueHook")(**kwargs)


def HealthOmicsAlone(**kwargs: Any) -> Any:
    """HealthOmics runs polled run by run with GetRun (no ListRuns coalescing)."""
    return _alone("airflow_task_runs.aws.hooks.HealthOmicsHook")(**kwargs)


def _connections(base: str, cert: str) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    no_limit = {"verify": cert, "max_requests_per_second": 0, "read_timeout": 60, "retry_max_elapsed": 60}
    conns = {
        "ncp_bench": {"conn_type": "ncp", "host": base, "login": "AK", "password": "SK", "extra": no_limit},
        "oci_bench": {
            "conn_type": "oci",
            "login": "ocid1.user.oc1..bench",
            "password": pem,
            "extra": {
                **no_limit,
                "tenancy": "ocid1.tenancy.oc1..bench",
                "fingerprint": ":".join(["ab"] * 16),
                "region": "us-ashburn-1",
                "endpoint": base,
            },
        },
        "ros_bench": {
            "conn_type": "alibaba_ros",
            "login": "LTAIbench",
            "password": "secret",
            "extra": {**no_limit, "region_id": "cn-hangzhou", "endpoint": base},
        },
        "aws_bench": {
            "conn_type": "aws",
            "login": "AKIABENCH",
            "password": "secret",
            "extra": {"region_name": "us-east-1", "endpoint_url": base, "verify": cert},
        },
        "dbt_bench": {"conn_type": "dbt_cloud", "host": base.removeprefix("https://"), "password": "token"},
    }
    return {f"AIRFLOW_CONN_{k.upper()}": json.dumps(v) for k, v in conns.items()}


def _triggers(variant: str, n: int) -> tuple[list[Any], dict[str, Any]]:
    """The variant's N watches, and what the server must know to answer them."""
    from airflow_task_runs.core.triggers import TaskRunTrigger

    deadline = time.time() + 3600

    def ours(hook: str, kwargs: dict[str, Any], kind: str, ref: dict[str, Any]) -> TaskRunTrigger:
        return TaskRunTrigger(
            hook_path=hook, hook_kwargs=kwargs, status_kind=kind, run_ref=ref, poll_interval=INTERVAL, deadline=deadline
        )

    if variant in ("ncp", "ncp-alone"):
        hook = "airflow_task_runs.ncp.hooks.NclueHook" if variant == "ncp" else "trigger_fanout.NclueAlone"
        ids = [f"r{i}" for i in range(n)]
        kw = {"ncp_conn_id": "ncp_bench"}
        return [ours(hook, kw, "task_run", {"run_id": r}) for r in ids], {"ncp_runs": ids}
    if variant == "oci":
        kw = {"oci_conn_id": "oci_bench"}
        ref = {"ai_data_platform_id": "ocid1.aidataplatform.oc1..bench", "workspace_key": "w"}
        return [ours(_HOOKS["oci"], kw, "task_run", {**ref, "task_run_key": f"k{i}"}) for i in range(n)], {}
    if variant == "ros":
        kw = {"alibaba_ros_conn_id": "ros_bench"}
        return [ours(_HOOKS["ros"], kw, "ai_task", {"ai_task_id": f"t-{i}"}) for i in range(n)], {}
    if variant in ("aws-runs", "aws-runs-alone"):
        kw = {"aws_conn_id": "aws_bench"}
        hook = _HOOKS["aws"] if variant == "aws-runs" else "trigger_fanout.HealthOmicsAlone"
        ids = [f"{i}" for i in range(n)]
        return [ours(hook, kw, "run", {"run_id": r}) for r in ids], {"omics_runs": ids}
    if variant == "aws-tasks":
        kw = {"aws_conn_id": "aws_bench"}
        per_run = 100
        refs = [
            {
                "run_id": f"run{r}-{min(per_run, n - r * per_run)}",
                "run_task_id": f"run{r}-{min(per_run, n - r * per_run)}-t{t}",
            }
            for r in range((n + per_run - 1) // per_run)
            for t in range(min(per_run, n - r * per_run))
        ]
        return [ours(_HOOKS["aws"], kw, "task", ref) for ref in refs], {}
    if variant == "dbt":
        from airflow.providers.dbt.cloud.triggers.dbt import DbtCloudRunJobTrigger

        return [
            DbtCloudRunJobTrigger(
                conn_id="dbt_bench", run_id=i + 1, end_time=deadline, poll_interval=INTERVAL, account_id=1
            )
            for i in range(n)
        ], {}
    raise ValueError(variant)


_HOOKS = {
    "oci": "airflow_task_runs.oci.hooks.OciAiDataPlatformHook",
    "ros": "airflow_task_runs.alibaba.hooks.RosHook",
    "aws": "airflow_task_runs.aws.hooks.HealthOmicsHook",
}


async def _bare_aiohttp(n: int, base: str, cert: str) -> list[Any]:
    import ssl

    import aiohttp

    context = ssl.create_default_context(cafile=cert)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=100)) as session:

        async def watch(i: int) -> str:
            while True:
                async with session.get(f"{base}/bare/b{i}") as response:
                    body = await response.json()
                if body["status"] == "done":
                    return "terminal"
                await asyncio.sleep(INTERVAL)

        return await asyncio.gather(*(watch(i) for i in range(n)))


async def _bare_httpx(n: int, base: str, cert: str) -> list[Any]:
    import httpx

    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    # no pool timeout: 1,000 waiters on 100 connections would hit the 5 s default (PoolTimeout)
    async with httpx.AsyncClient(verify=cert, limits=limits, timeout=httpx.Timeout(60, pool=None)) as client:

        async def watch(i: int) -> str:
            while True:
                body = (await client.get(f"{base}/bare/x{i}")).json()
                if body["status"] == "done":
                    return "terminal"
                await asyncio.sleep(INTERVAL)

        return await asyncio.gather(*(watch(i) for i in range(n)))


def _time_callbacks() -> list[Any]:
    """Time every event-loop callback: ``[longest seconds, what it was, longest GC pause]``.

    The ticker's lateness is a whole loop iteration (every callback that was ready: the stall
    a triggerer warns about); this finds the longest single callback in it, the one that
    blocked. The garbage collector's pauses are counted apart and left out of the callback
    that happened to trigger them: a full collection walks every object the process holds
    (Airflow's included: 0.1-0.25 s for ~180,000 objects), whoever allocated last.
    """
    import gc

    handle_run = asyncio.events.Handle._run
    slowest: list[Any] = [0.0, "", 0.0]
    in_gc = [0.0, 0.0]  # total GC seconds so far, start of the current collection
    clock = time.perf_counter

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            in_gc[1] = clock()
        else:
            pause = clock() - in_gc[1]
            in_gc[0] += pause  # every generation's pause is left out of the callback's time
            if info.get("generation") == 2:
                slowest[2] = max(slowest[2], pause)

    def timed(handle: asyncio.events.Handle) -> None:
        started, gc_before = clock(), in_gc[0]
        handle_run(handle)
        took = clock() - started - (in_gc[0] - gc_before)
        if took > slowest[0]:
            slowest[:2] = [took, repr(handle)[:200]]

    gc.callbacks.append(on_gc)
    asyncio.events.Handle._run = timed  # type: ignore[method-assign,assignment]
    return slowest


def client(variant: str, n: int, base: str, cert: str, control: str) -> None:
    """One variant in this process; ``<variant>@httpx`` runs it on httpx's own async transport
    (the sessions' default is aiohttp's, core/aio_transport.py), to compare the two."""
    os.environ.update(_connections(base, cert))
    label = variant
    variant, _, transport = variant.partition("@")
    if transport:
        os.environ["AIRFLOW_TASK_RUNS_ASYNC_TRANSPORT"] = transport
    os.environ["SSL_CERT_FILE"] = cert  # dbt-cloud's aiohttp session trusts the default store
    sys.path.insert(0, str(HERE))
    import httpx

    triggers, setup = ([], {}) if variant.startswith("bare") else _triggers(variant, n)
    httpx.post(f"{control}/_control/reset", json=setup, verify=cert)
    # One-time imports are not a watch-poll's cost (and a triggerer makes them off its loop):
    # load every cloud's hook module before measuring.
    import importlib

    for path in (*_HOOKS.values(), "airflow_task_runs.ncp.hooks.NclueHook"):
        importlib.import_module(path.rpartition(".")[0])
    # and what a triggerer process has loaded before any trigger runs (its runner imports the
    # task SDK's supervisor, which the first connection lookup would import here, on the loop)
    importlib.import_module("airflow.sdk.execution_time.supervisor")
    importlib.import_module("aiohttp")  # the bare loop's too: its import is no watch-poll's cost

    lags: list[float] = []
    slowest = _time_callbacks()

    async def ticker() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)

    async def first(trigger: Any, start: float) -> str:
        if start:  # a sleep(0) here would change how the together case interleaves
            await asyncio.sleep(start)
        async for event in trigger.run():
            return str(event.payload.get("event") or event.payload.get("status"))
        return "none"

    async def main() -> list[Any]:
        tick = asyncio.create_task(ticker())
        try:
            if variant == "bare-aiohttp":
                return await _bare_aiohttp(n, base, cert)
            if variant == "bare-httpx":
                return await _bare_httpx(n, base, cert)
            # spread: the newest run's watch starts first, as a run's sensor defers when it starts
            # (all runs exist from the start here, and a list shows the newest first)
            starts = [(n - 1 - i) * INTERVAL / n if SPREAD else 0.0 for i in range(len(triggers))]
            return await asyncio.gather(*(first(t, start) for t, start in zip(triggers, starts, strict=True)))
        finally:
            tick.cancel()

    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    profile_to = os.environ.get("FANOUT_PROFILE")
    if profile_to:  # where a watch-poll's CPU goes: FANOUT_PROFILE=out.prof (then pstats)
        import cProfile

        with cProfile.Profile() as profiler:
            events = asyncio.run(main())
        profiler.dump_stats(f"{profile_to}.{label}")
    else:
        events = asyncio.run(main())
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu0
    stats = httpx.get(f"{control}/_control/stats", verify=cert).json()
    hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
    ok = sum(1 for e in events if e in ("terminal", "success"))
    print(
        json.dumps(
            {
                "variant": label,
                "n": n,
                "cpu_ms_per_watch_poll": cpu * 1000 / (n * POLLS),
                "calls_per_watch_poll": stats["requests"] / (n * POLLS),
                "connections": stats["connections"],
                "peak_rss_mib": int(hwm.split()[1]) / 1024,
                "wall_over_ideal": wall / IDEAL - 1,
                "max_stall_s": max(lags, default=0.0),
                "max_callback_s": slowest[0],
                "slowest_callback": slowest[1],
                "max_gc_pause_s": slowest[2],
                "ok": f"{ok}/{n}",
                "calls_by_kind": stats["kinds"],
            }
        )
    )


# -- driver ------------------------------------------------------------------------------------
def _option(args: list[str], name: str) -> str | None:
    """The value after ``name`` in ``args`` ("" when it has none), both taken out; None when absent."""
    if name not in args:
        return None
    at = args.index(name)
    value = args[at + 1] if at + 1 < len(args) else ""
    del args[at : at + 2]
    return value


def main() -> None:
    args = sys.argv[1:]
    if "--spread" in args:  # bare loops and dbt-cloud start together whatever this says
        args.remove("--spread")
        os.environ["FANOUT_SPREAD"] = "1"
    interval = _option(args, "--interval")
    if interval is not None:
        try:
            seconds = float(interval)
        except ValueError:
            seconds = 0.0
        if not seconds > 0:
            sys.exit(f"--interval takes the seconds between polls, above 0 (got {interval!r})")
        os.environ["FANOUT_INTERVAL"] = interval  # the server and each client read it at import
    polls = _option(args, "--polls")
    if polls is not None:
        if not polls.isdigit() or int(polls) < 2:
            sys.exit(f"--polls takes a whole number of status reads per watch, 2 or more (got {polls!r})")
        os.environ["FANOUT_POLLS"] = polls
    sizes = [int(a) for a in args if a.isdigit()] or list(SIZES)
    variants = [a for a in args if not a.isdigit()] or list(VARIANTS)
    folder = Path(tempfile.mkdtemp(prefix="fanout-"))
    cert, key = make_cert(folder)
    port_file = folder / "port"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(cert), str(key), str(port_file)])
    try:
        while not port_file.exists() or not port_file.read_text():
            time.sleep(0.05)
        base = f"https://127.0.0.1:{port_file.read_text()}"
        env = {**os.environ, "AIRFLOW_HOME": str(folder), "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
        print(
            f"{'variant':<16} {'N':>5} {'CPU ms/wp':>9} {'calls/wp':>8} {'TCP':>5} {'RSS MiB':>8} {'wall/ideal':>10} "
            f"{'stall s':>7} {'block s':>7} {'GC s':>5} {'ok':>9}"
        )
        for n in sizes:
            for variant in variants:
                if variant == "dbt" and importlib.util.find_spec("airflow.providers.dbt") is None:
                    print(f"{variant:<16} {n:>5} skipped: needs the bench extra ({BENCH_INSTALL})")
                    continue
                out = subprocess.run(
                    [sys.executable, __file__, "--client", variant, str(n), base, str(cert)],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=600,
                )
                lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
                if out.returncode or not lines:
                    print(f"{variant:<16} {n:>5} failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
                    continue
                r = json.loads(lines[-1])
                print(
                    f"{variant:<16} {n:>5} {r['cpu_ms_per_watch_poll']:>9.3f} {r['calls_per_watch_poll']:>8.3f} "
                    f"{r['connections']:>5} {r['peak_rss_mib']:>8.0f} {r['wall_over_ideal']:>+10.1%} "
                    f"{r['max_stall_s']:>7.3f} {r['max_callback_s']:>7.3f} {r['max_gc_pause_s']:>5.3f} {r['ok']:>9}",
                    flush=True,
                )
                if os.environ.get("FANOUT_KINDS"):  # the calls the server counted, by method and path
                    print(f"{'':<16} calls: {r['calls_by_kind']}", flush=True)
                if r["max_callback_s"] > 0.1:  # name what blocked the loop
                    print(f"{'':<16} longest callback: {r['slowest_callback']}", flush=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(*sys.argv[2:5])
    elif sys.argv[1:2] == ["--client"]:
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[4])
    else:
        main()
