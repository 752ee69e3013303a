"""The triggerer's longest event-loop stall when 300 triggers of one cloud start together.

Each cloud in a fresh child process (against the emulator, in a process of its own, with real
signing and signature checks):
300 ``TaskRunTrigger``s on one connection start at once and poll their runs to the end (5
polls, 0.2 s apart) while a 10 ms ticker measures how late the loop wakes it. Side by side:
``shared`` (triggers share one hook per connection: one client, key, TLS context) and
``per-trigger`` (each trigger builds its own hook, as before; same code otherwise). Airflow
warns when a trigger blocks the loop for more than 0.2 s.

    .venv/bin/python benchmarks/triggerer_stall.py            # all four clouds, both ways, median of 3
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

N = 300
ROUNDS = 3
CLOUDS = ("oci", "aws", "ncp", "alibaba")


HOOKS = {
    "oci": ("airflow_task_runs.oci.hooks.OciAiDataPlatformHook", "task_run"),
    "aws": ("airflow_task_runs.aws.hooks.HealthOmicsHook", "task"),
    "ncp": ("airflow_task_runs.ncp.hooks.NclueHook", "task_run"),
    "alibaba": ("airflow_task_runs.alibaba.hooks.RosHook", "ai_task"),
}


def serve_emulator(cloud: str, pipe: Any) -> None:
    """The emulator in a process of its own (its server threads must not take the GIL from the
    loop being measured): scripts N runs, sends the connection env and run references, serves
    until told to stop."""
    from airflow_task_runs.testing import Emulator

    with Emulator() as emu:
        steps = {"oci": "RUNNING", "aws": "RUNNING", "ncp": "in_progress", "alibaba": "RUNNING"}
        end = {"oci": "SUCCESS", "aws": "COMPLETED", "ncp": "completed", "alibaba": "SUCCESS"}
        lifecycle = [(steps[cloud], 5), (end[cloud], 0)]
        refs: list[dict[str, Any]]
        if cloud == "oci":
            from airflow_task_runs.testing import oci as oci_emulator

            refs = [
                {
                    "ai_data_platform_id": oci_emulator.PLATFORM_ID,
                    "workspace_key": oci_emulator.WORKSPACE_KEY,
                    "task_run_key": emu.oci.add_task_run(lifecycle=lifecycle),
                }
                for _ in range(N)
            ]
        elif cloud == "aws":
            run_id = emu.aws.add_run(lifecycle=[("RUNNING", 10**6)])
            refs = [{"run_id": run_id, "run_task_id": emu.aws.add_task(run_id, lifecycle=lifecycle)} for _ in range(N)]
        elif cloud == "ncp":
            refs = [{"run_id": emu.ncp.add_run(lifecycle=lifecycle)} for _ in range(N)]
        else:
            refs = [{"ai_task_id": emu.alibaba.add_task(lifecycle=lifecycle)} for _ in range(N)]
        pipe.send((emu.connection_env(), refs))
        pipe.recv()  # the triggers are done


def child(cloud: str, mode: str) -> None:
    import asyncio
    import multiprocessing

    from airflow_task_runs.core.triggers import TaskRunTrigger

    spawn = multiprocessing.get_context("spawn")
    pipe, theirs = spawn.Pipe()
    emulator = spawn.Process(target=serve_emulator, args=(cloud, theirs), daemon=True)
    emulator.start()
    try:
        env, refs = pipe.recv()
        os.environ.update(env)
        deadline = time.time() + 600
        count = iter(range(10**9))
        hook, kind = HOOKS[cloud]

        def trigger(ref: dict[str, Any]) -> TaskRunTrigger:
            kwargs: dict[str, Any] = {}
            if mode == "per-trigger":  # kwargs that change nothing but make each trigger's hook its own
                n = next(count)
                kwargs = (
                    {"botocore_config": {"user_agent_extra": f"t{n}"}} if cloud == "aws" else {"logger_name": f"t{n}"}
                )
            return TaskRunTrigger(
                hook_path=hook, hook_kwargs=kwargs, status_kind=kind, run_ref=ref, poll_interval=0.2, deadline=deadline
            )

        triggers = [trigger(ref) for ref in refs]
        # what each deferrable sensor does in the worker before deferring: one read of its run
        for t in triggers:
            t._hook().run_status(t.status_kind, t.run_ref)
        lags: list[float] = []

        async def ticker() -> None:
            while True:
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - before - 0.01)

        async def first(t: TaskRunTrigger) -> str:
            async for event in t.run():
                return str(event.payload["event"])
            return "none"

        async def main() -> list[str]:
            tick = asyncio.create_task(ticker())
            await asyncio.sleep(0.05)
            try:
                return await asyncio.gather(*(first(t) for t in triggers))
            finally:
                tick.cancel()

        started = time.perf_counter()
        events = asyncio.run(main())
        wall = time.perf_counter() - started
        ok = sum(1 for e in events if e == "terminal")
        print(json.dumps({"max_stall": max(lags), "wall": wall, "ok": ok}))
    finally:
        pipe.send("done")
        emulator.join(timeout=30)


def main() -> None:
    clouds = [a for a in sys.argv[1:] if a in CLOUDS] or list(CLOUDS)
    env = {**os.environ, "AIRFLOW_HOME": tempfile.mkdtemp(), "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
    print(f"{N} triggers per cloud, median of {ROUNDS}; longest loop stall (goal <= 0.2 s) and wall")
    print(
        f"{'cloud':<8} {'per-trigger stall s':>20} {'shared stall s':>15} "
        f"{'per-trigger wall s':>19} {'shared wall s':>14}"
    )
    for cloud in clouds:
        results: dict[str, list[dict[str, Any]]] = {"per-trigger": [], "shared": []}
        for _ in range(ROUNDS):
            for mode in results:  # alternating, so noise hits both alike
                out = subprocess.run(
                    [sys.executable, __file__, "--child", cloud, mode],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=900,
                )
                lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
                if out.returncode or not lines:
                    raise SystemExit(f"{cloud} {mode} failed:\n{out.stderr[-3000:]}")
                result = json.loads(lines[-1])
                if result["ok"] != N:
                    raise SystemExit(f"{cloud} {mode}: only {result['ok']} of {N} triggers ended terminal")
                results[mode].append(result)
        med = {
            mode: {k: statistics.median(r[k] for r in rs) for k in ("max_stall", "wall")}
            for mode, rs in results.items()
        }
        print(
            f"{cloud:<8} {med['per-trigger']['max_stall']:>20.3f} {med['shared']['max_stall']:>15.3f} "
            f"{med['per-trigger']['wall']:>19.2f} {med['shared']['wall']:>14.2f}",
            flush=True,
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3])
    else:
        main()
