"""Extra import time of a provider module over a DAG file that already imports airflow.sdk.

Runs fresh interpreters side by side (alternating) and reports medians, so machine noise
hits both sides alike:  python benchmarks/import_cost.py airflow_task_runs.ncp.sensors

``--against DIR`` also times each module as checked out in DIR (e.g. a ``git worktree`` of an
older commit), alternating with this tree in the same rounds.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

ROUNDS = 15

BASE = "import time; import airflow.sdk; t1=time.perf_counter(); {extra}; t2=time.perf_counter(); print(t2-t1)"


def _time(module: str | None, cwd: str | None = None) -> float:
    extra = f"import {module}" if module else "pass"
    out = subprocess.run(
        [sys.executable, "-c", BASE.format(extra=extra)], capture_output=True, text=True, check=True, cwd=cwd
    ).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    args = sys.argv[1:]
    against = None
    if "--against" in args:
        at = args.index("--against")
        against = args[at + 1]
        del args[at : at + 2]
    modules = args or ["airflow_task_runs.ncp.sensors"]
    for module in modules:
        extra: list[float] = []
        other: list[float] = []
        for _ in range(ROUNDS):
            extra.append(_time(module) - _time(None))
            if against:
                other.append(_time(module, against) - _time(None, against))
        line = f"{module}: extra import over airflow.sdk, median of {ROUNDS}: {statistics.median(extra) * 1000:.1f} ms"
        if against:
            line += f" (in {against}: {statistics.median(other) * 1000:.1f} ms)"
        print(line)


if __name__ == "__main__":
    main()
