"""Triggerer fan-out: many TaskRunTriggers polling NCLUE runs concurrently in one event loop.

Side by side in one process: N = 1, 10, 100 and 300 triggers, each watching its own run
through 5 polls to completion (poll interval 0.05 s). Reports wall time, the emulator's
request count, and the median of ROUNDS. A trigger holds one async client, reused across
its polls.

    python benchmarks/trigger_fanout.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time

ROUNDS = 3
POLLS = 5


async def _run_all(triggers: list) -> list[dict]:
    async def first(trigger) -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    return await asyncio.gather(*(first(t) for t in triggers))


def main() -> None:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp())
    from airflow_task_runs.core.triggers import TaskRunTrigger
    from airflow_task_runs.testing import Emulator

    with Emulator() as emu:
        os.environ.update(emu.connection_env())
        print(f"{'triggers':>8} {'wall s (median)':>16} {'requests':>9} {'ms per poll per trigger':>24}")
        for n in (1, 10, 100, 300):
            walls = []
            for _ in range(ROUNDS):
                ids = [emu.ncp.add_run(lifecycle=[("in_progress", POLLS - 1), ("completed", 0)]) for _ in range(n)]
                triggers = [
                    TaskRunTrigger(
                        hook_path="airflow_task_runs.ncp.hooks.NclueHook",
                        hook_kwargs={"ncp_conn_id": "ncp_default"},
                        status_method="aget_status",
                        run_ref={"run_id": run_id},
                        poll_interval=0.05,
                        deadline=time.time() + 600,
                    )
                    for run_id in ids
                ]
                emu.ncp.reset_log()
                started = time.perf_counter()
                events = asyncio.run(_run_all(triggers))
                walls.append(time.perf_counter() - started)
                assert all(e["event"] == "terminal" for e in events), [e for e in events if e["event"] != "terminal"][
                    :2
                ]
                requests = len(emu.ncp.requests)
            wall = statistics.median(walls)
            print(f"{n:>8} {wall:>16.2f} {requests:>9} {wall / POLLS / n * 1000:>24.2f}")


if __name__ == "__main__":
    main()
