"""``airflow-task-runs demo``: the example DAGs, end to end, against the bundled emulator.

Starts the emulator (every cloud plus an S3-compatible store on 127.0.0.1), points the
default connections at it, creates a throwaway SQLite Airflow home, and runs each example
DAG with ``dag.test()``. No cloud account needed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def _configure_airflow(home: Path, dags_folder: Path, verbose: bool) -> None:
    # Airflow reads its configuration on first import: set everything before importing it.
    import warnings

    from cryptography.fernet import Fernet

    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO" if verbose else "WARNING",
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )


def _run_dag(dag: Any, output: Path) -> tuple[str, dict[str, str]]:
    conf = {"output_uri": f"file://{output}/{dag.dag_id}/"} if "output_uri" in dag.params else None
    dagrun = dag.test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in dagrun.get_task_instances()}
    return str(dagrun.state), states


def demo(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airflow-task-runs demo", description=__doc__)
    parser.add_argument("--dags-folder", type=Path, default=Path("example_dags"), help="folder of example DAGs")
    parser.add_argument("--output", type=Path, default=Path("demo-output"), help="where DAG outputs are written")
    parser.add_argument("--dag", action="append", default=[], help="run only this dag_id (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="show Airflow's task logs")
    args = parser.parse_args(argv)

    dags_folder = args.dags_folder.resolve()
    if not dags_folder.is_dir():
        parser.error(f"--dags-folder {dags_folder} does not exist; run from the repository root or pass it")
    output = args.output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="airflow-task-runs-demo-"))
    _configure_airflow(home, dags_folder, args.verbose)

    from airflow_task_runs.testing import Emulator

    print(f"Starting the emulator; Airflow home {home}")
    with Emulator() as emulator:
        for cloud in emulator.clouds.values():
            cloud.seed_demo()  # type: ignore[attr-defined]
        os.environ.update(emulator.environment())
        for name, cloud in emulator.clouds.items():
            print(f"  {name:8s} emulator at {cloud.url}")
        print(f"  s3       store    at {emulator.s3.url}")

        from airflow.dag_processing.dagbag import DagBag
        from airflow.utils import db

        db.resetdb(skip_init=False)
        bag = DagBag(dag_folder=str(dags_folder))
        if bag.import_errors:
            for path, error in bag.import_errors.items():
                print(f"IMPORT ERROR {path}: {error}", file=sys.stderr)
            return 1
        dag_ids = sorted(args.dag or bag.dag_ids)
        results: dict[str, tuple[str, dict[str, str]]] = {}
        for dag_id in dag_ids:
            print(f"\n=== {dag_id} ===")
            results[dag_id] = _run_dag(bag.get_dag(dag_id), output)
            state, tasks = results[dag_id]
            for task_id, task_state in tasks.items():
                print(f"  {task_state:10s} {task_id}")
            print(f"  -> DAG run {state}")

    print("\nSummary")
    failed = [d for d, (state, _) in results.items() if state != "success"]
    for dag_id, (state, _) in results.items():
        print(f"  {state:10s} {dag_id}")
    written = sorted(p for p in output.rglob("*") if p.is_file())
    print(f"\n{len(written)} file(s) written under {output}:")
    for path in written:
        print(f"  {path.relative_to(output)} ({path.stat().st_size} bytes)")
    if failed:
        print(f"\nFAILED: {', '.join(failed)} (rerun with --verbose for the task logs)", file=sys.stderr)
        return 1
    print("\nAll example DAGs succeeded.")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: airflow-task-runs demo [--dags-folder DIR] [--output DIR] [--dag DAG_ID] [--verbose]")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        return demo(rest)
    print(f"unknown command {command!r}; try: airflow-task-runs demo", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
