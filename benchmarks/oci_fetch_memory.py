"""Peak memory of fetching the emulator's 64 MiB OCI task run output to a file:// destination.

Runs fresh interpreters side by side: "baseline" starts the emulator and builds the 64 MiB
output (so both sides hold the emulator's copy of the ~85 MiB JSON answer) but does not fetch;
"fetch" also runs OciFetchTaskRunOutputOperator. The difference of peak RSS (median of ROUNDS)
is what the fetch costs in the client.

    python benchmarks/oci_fetch_memory.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

ROUNDS = 3


def _child(mode: str) -> None:
    import resource

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp())
    from airflow_task_runs.testing import Emulator
    from airflow_task_runs.testing.oci import BIG_SIZE, PLATFORM_ID, WORKSPACE_KEY

    with Emulator() as emu, tempfile.TemporaryDirectory() as out:
        os.environ.update(emu.connection_env())
        emu.oci.seed_demo()
        emu.oci._build_big()
        if mode == "fetch":
            from airflow_task_runs.oci.operators import OciFetchTaskRunOutputOperator

            result = OciFetchTaskRunOutputOperator(
                task_id="f",
                ai_data_platform_id=PLATFORM_ID,
                workspace_key=WORKSPACE_KEY,
                task_run_key="big-task-run",
                destination=f"file://{out}/",
            ).execute({})
            assert result["items"][0]["size"] == BIG_SIZE
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        _child(sys.argv[2])
        return
    peaks: dict[str, list[int]] = {"baseline": [], "fetch": []}
    for _ in range(ROUNDS):
        for mode in peaks:
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode], capture_output=True, text=True, check=True
            ).stdout
            peaks[mode].append(int(out.strip().splitlines()[-1]))
    base, fetch = statistics.median(peaks["baseline"]), statistics.median(peaks["fetch"])
    print(f"64 MiB OCI output -> file://, peak RSS median of {ROUNDS}: baseline {base:.0f} MiB, fetch {fetch:.0f} MiB")
    print(f"extra peak memory of the fetch: {fetch - base:.0f} MiB ({(fetch - base) / 64:.2f} x the object size)")


if __name__ == "__main__":
    main()
