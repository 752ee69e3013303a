"""Extra import time of a provider module over a DAG file that already imports airflow.sdk.

Runs fresh interpreters side by side (alternating) and reports medians, so machine noise
hits both sides alike:  python benchmarks/import_cost.py airflow_task_runs.ncp.sensors
"""

from __future__ import annotations

import statistics
import subprocess
import sys

ROUNDS = 15

BASE = "import time; import airflow.sdk; t1=time.perf_counter(); {extra}; t2=time.perf_counter(); print(t2-t1)"


def _time(module: str | None) -> float:
    extra = f"import {module}" if module else "pass"
    out = subprocess.run(
        [sys.executable, "-c", BASE.format(extra=extra)], capture_output=True, text=True, check=True
    ).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    modules = sys.argv[1:] or ["airflow_task_runs.ncp.sensors"]
    for module in modules:
        extra = []
        for _ in range(ROUNDS):
            extra.append(_time(module) - _time(None))
        print(f"{module}: extra import over airflow.sdk, median of {ROUNDS}: {statistics.median(extra) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
