"""Peak memory of fetching the emulator's 64 MiB OCI task run output to a file:// destination.

The emulator (and its ~85 MiB JSON answer) lives in this process; the fetch runs in fresh
child interpreters so their peak RSS is the client's alone. Side by side, alternating:
"baseline" imports the operator and builds the hook and its signed session but fetches
nothing; "fetch" runs OciFetchTaskRunOutputOperator to file://. The difference of the
medians is what the fetch costs.

    python benchmarks/oci_fetch_memory.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

ROUNDS = 5

CHILD = """
import sys, tempfile
from airflow_task_runs.oci.operators import OciFetchTaskRunOutputOperator
from airflow_task_runs.testing.oci import PLATFORM_ID, WORKSPACE_KEY
op = OciFetchTaskRunOutputOperator(
    task_id="f",
    ai_data_platform_id=PLATFORM_ID,
    workspace_key=WORKSPACE_KEY,
    task_run_key="big-task-run",
    output_key="big",
    destination=f"file://{tempfile.mkdtemp()}/",
)
hook = op.hook
hook.session
if sys.argv[1] == "fetch":
    assert op.execute({})["items"][0]["size"] == int(sys.argv[2])
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (large) parent across fork+exec.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(int(hwm.split()[1]) // 1024)
"""


def main() -> None:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp())
    from airflow_task_runs.testing import Emulator
    from airflow_task_runs.testing.oci import BIG_SIZE

    with Emulator() as emu:
        env = {**os.environ, **emu.connection_env()}
        emu.oci.seed_demo()
        emu.oci._build_big()
        peaks: dict[str, list[int]] = {"baseline": [], "fetch": []}
        for _ in range(ROUNDS):
            for mode in peaks:
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, mode, str(BIG_SIZE)],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=env,
                ).stdout
                peaks[mode].append(int(out.strip().splitlines()[-1]))
    base, fetch = statistics.median(peaks["baseline"]), statistics.median(peaks["fetch"])
    size_mib = BIG_SIZE // (1024 * 1024)
    print(f"{size_mib} MiB OCI output -> file://, client peak RSS (VmHWM), median of {ROUNDS}:")
    print(
        f"  baseline (no fetch) {base:.0f} MiB, fetch {fetch:.0f} MiB, "
        f"extra {fetch - base:.0f} MiB ({(fetch - base) / size_mib:.2f} x the object size)"
    )


if __name__ == "__main__":
    main()
