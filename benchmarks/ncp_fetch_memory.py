"""Peak memory of streaming a large NCLUE result file to a file:// destination.

The emulator runs in this process; the fetch runs in fresh child interpreters so their peak
RSS is the client's alone. Side by side, alternating: "baseline" imports the operator and
builds the hook and S3 client but fetches nothing; "fetch" streams the file to file://.
The difference of the medians is what the fetch costs.

    python benchmarks/ncp_fetch_memory.py [SIZE_MIB]
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
from airflow_task_runs.ncp.operators import NclueFetchTaskRunResultOperator
op = NclueFetchTaskRunResultOperator(task_id="f", run_id=sys.argv[2], destination=f"file://{tempfile.mkdtemp()}/")
hook = op.hook
hook.object_storage_client()
hook.object_storage_session()  # the fetch reads through this one (httpx); both built before timing
if sys.argv[1] == "fetch":
    assert op.execute({})["size"] == int(sys.argv[3])
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (large) parent across fork+exec.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(int(hwm.split()[1]) // 1024)
"""


def main() -> None:
    size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    size = size_mib * 1024 * 1024
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp())
    from airflow_task_runs.testing import Emulator

    with Emulator() as emu:
        env = {**os.environ, **emu.connection_env()}
        run_id = emu.ncp.add_run(lifecycle=[("completed", 0)], result=os.urandom(size))
        peaks: dict[str, list[int]] = {"baseline": [], "fetch": []}
        for _ in range(ROUNDS):
            for mode in peaks:
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, mode, run_id, str(size)],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=env,
                ).stdout
                peaks[mode].append(int(out.strip().splitlines()[-1]))
    base, fetch = statistics.median(peaks["baseline"]), statistics.median(peaks["fetch"])
    print(f"{size_mib} MiB NCLUE result -> file://, client peak RSS, median of {ROUNDS}:")
    print(f"  baseline (no fetch) {base:.0f} MiB, fetch {fetch:.0f} MiB, extra {fetch - base:.0f} MiB")


if __name__ == "__main__":
    main()
