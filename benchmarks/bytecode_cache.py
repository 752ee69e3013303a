"""What a bytecode cache saves each Python process of the project's commands.

This environment sets PYTHONDONTWRITEBYTECODE=1: without a cache, every process (each pytest
run, each Airflow component, the demo) compiles Airflow from source. The Makefile keeps one
cache under .venv (PYTHONPYCACHEPREFIX). Runs the same commands both ways, alternating, and
reports medians and the ratio:  python benchmarks/bytecode_cache.py [rounds]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

COMMANDS = {
    "airflow version (core + providers imported)": [str(BIN / "airflow"), "version"],
    "import the provider's sensors and operators": [
        sys.executable,
        "-c",
        "import airflow.sdk, airflow_task_runs.ncp.operators, airflow_task_runs.oci.operators, "
        "airflow_task_runs.aws.operators, airflow_task_runs.alibaba.operators",
    ],
}


def environment(cached: bool, home: str, empty_cache: str) -> dict[str, str]:
    """With the .venv cache, or as a fresh venv under PYTHONDONTWRITEBYTECODE=1 (nothing compiled yet).

    The "no cache" side points PYTHONPYCACHEPREFIX at an empty folder it may not write to, so
    stray ``__pycache__`` files next to the sources (left by any earlier tool) do not count.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE")}
    env["AIRFLOW_HOME"] = home
    if cached:
        env["PYTHONPYCACHEPREFIX"] = str(BIN.parent / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = empty_cache
    return env


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=ROOT, capture_output=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as empty:
        for name, command in COMMANDS.items():
            timed(command, environment(True, home, empty))  # fill the cache once, as the first make run does
            without, with_cache = [], []
            for _ in range(rounds):
                without.append(timed(command, environment(False, home, empty)))
                with_cache.append(timed(command, environment(True, home, empty)))
            a, b = statistics.median(without), statistics.median(with_cache)
            print(f"{name}: no cache {a:.2f} s, cache {b:.2f} s (median of {rounds}), {a / b:.1f}x")


if __name__ == "__main__":
    main()
