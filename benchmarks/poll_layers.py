"""Where a status poll's CPU goes, layer by layer, over TLS to the fan-out bench's server.

N concurrent watchers each read their run P times back to back (no interval: the loop is busy
throughout, so CPU per request is the cost of the layer, not of waiting). Each layer runs in a
fresh process; layers alternate for ``--rounds`` rounds and the median is reported, with the
difference each layer adds to the one below it:

- ``aiohttp``: ``session.get`` + ``read`` + ``json.loads`` (the floor: one shared session)
- ``transport``: an ``httpx.Request`` through ``core.aio_transport.AiohttpTransport`` + ``aread``
- ``asend``: the NCLUE-signed request through ``ApiSession._asend`` (auth flow, event hooks)
- ``request_json``: ``ApiSession.arequest_json`` (build, retry wrapper, admission, bounded read,
  error mapping, JSON)
- ``hook``: ``NclueHook.aget_status`` (path, model, status table)

    .venv/bin/python benchmarks/poll_layers.py [--rounds 3] [N] [P]
    LAYERS_ONLY=aiohttp,transport LAYERS_PROFILE=/tmp/l.prof .venv/bin/python benchmarks/poll_layers.py --rounds 1
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LAYERS = ("aiohttp", "transport", "asend", "request_json", "hook")


async def _json_of(response: Any) -> Any:
    try:
        return json.loads(await response.aread())
    finally:
        await response.aclose()


async def _layer(layer: str, n: int, polls: int, base: str, cert: str) -> float:
    """CPU seconds per request of ``layer`` (after one warm-up read per watcher)."""
    import ssl

    import aiohttp
    import httpx

    from airflow_task_runs.ncp.hooks import NclueHook

    hook = NclueHook(ncp_conn_id="ncp_bench")
    session = await hook.asession()
    ids = [f"r{i}" for i in range(n)]

    if layer == "aiohttp":
        context = ssl.create_default_context(cafile=cert)
        client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=100))

        async def read(run_id: str) -> Any:
            async with client.get(f"{base}/api/v1/task-runs/{run_id}") as response:
                return json.loads(await response.read())

    elif layer == "transport":
        from airflow_task_runs.core.aio_transport import AiohttpTransport

        transport = AiohttpTransport(ssl_context=ssl.create_default_context(cafile=cert), limit=100)

        urls = {r: httpx.URL(f"{base}/api/v1/task-runs/{r}") for r in ids}  # parsed once, as the session does

        async def read(run_id: str) -> Any:
            request = httpx.Request("GET", urls[run_id])
            return await _json_of(await transport.handle_async_request(request))

    elif layer == "asend":

        async def read(run_id: str) -> Any:
            request = session._build(session.aclient, "GET", f"/task-runs/{run_id}", None, None, None, None)
            return await _json_of(await session._asend(request))

    elif layer == "request_json":

        async def read(run_id: str) -> Any:
            return (await session.arequest_json("GET", f"/task-runs/{run_id}"))[0]

    else:

        async def read(run_id: str) -> Any:
            return await hook.aget_status(run_id)

    async def watcher(run_id: str) -> None:
        for _ in range(polls):
            await read(run_id)

    await asyncio.gather(*(read(r) for r in ids))  # connections open, caches warm
    started = time.process_time()
    await asyncio.gather(*(watcher(r) for r in ids))
    cpu = time.process_time() - started
    if layer == "aiohttp":
        await client.close()
    elif layer == "transport":
        await transport.aclose()
    await hook.aclose()
    return cpu / (n * polls)


def _child(layer: str, n: int, polls: int, base: str, cert: str) -> None:
    os.environ["AIRFLOW_CONN_NCP_BENCH"] = json.dumps(
        {
            "conn_type": "ncp",
            "host": base,
            "login": "AK",
            "password": "SK",
            "extra": {"verify": cert, "max_requests_per_second": 0, "read_timeout": 60, "retry_max_elapsed": 60},
        }
    )
    import importlib

    for module in ("airflow_task_runs.ncp.hooks", "airflow.sdk.execution_time.supervisor", "aiohttp"):
        importlib.import_module(module)
    profile_to = os.environ.get("LAYERS_PROFILE")
    if profile_to:  # where a layer's CPU goes: LAYERS_PROFILE=out.prof (then pstats)
        import cProfile

        with cProfile.Profile(time.thread_time) as profiler:
            ms = asyncio.run(_layer(layer, n, polls, base, cert)) * 1000
        profiler.dump_stats(f"{profile_to}.{layer}")
    else:
        ms = asyncio.run(_layer(layer, n, polls, base, cert)) * 1000
    print(json.dumps({"layer": layer, "ms": ms}))


def main() -> None:
    args = sys.argv[1:]
    rounds = 3
    if args[:1] == ["--rounds"]:
        rounds, args = int(args[1]), args[2:]
    n = int(args[0]) if args else 1000
    polls = int(args[1]) if len(args) > 1 else 10
    sys.path.insert(0, str(HERE))
    import trigger_fanout

    with tempfile.TemporaryDirectory(prefix="layers-") as folder:
        cert, key = trigger_fanout.make_cert(Path(folder))
        port_file = Path(folder) / "port"
        server = subprocess.Popen(
            [sys.executable, str(HERE / "trigger_fanout.py"), "--serve", str(cert), str(key), str(port_file)]
        )
        try:
            while not port_file.exists() or not port_file.read_text():
                time.sleep(0.05)
            base = f"https://127.0.0.1:{port_file.read_text()}"
            layers = [x for x in os.environ.get("LAYERS_ONLY", ",".join(LAYERS)).split(",") if x]
            results: dict[str, list[float]] = {layer: [] for layer in layers}
            for _ in range(rounds):
                for layer in layers:
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", layer, str(n), str(polls), base, str(cert)],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    line = next(x for x in out.stdout.splitlines() if x.startswith("{"))
                    results[layer].append(json.loads(line)["ms"])
        finally:
            server.terminate()
            server.wait()
    print(f"N = {n}, {polls} reads each, median of {rounds} (ms CPU per request)")
    below = None
    for layer in layers:
        median = statistics.median(results[layer])
        added = "" if below is None else f"  +{median - below:.3f}"
        runs = " ".join(f"{v:.3f}" for v in results[layer])
        print(f"{layer:<13} {median:.3f}{added:<10} ({runs})")
        below = median


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6])
    else:
        main()
