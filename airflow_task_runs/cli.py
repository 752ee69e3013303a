"""``airflow-task-runs``: the example DAGs against the bundled emulator, or the emulator for your own Airflow.

``demo`` runs every example DAG with ``dag.test()`` in a throwaway Airflow home and says what
happens as it happens. ``emulator`` serves every cloud's API and an S3 store until stopped and
prints the ``AIRFLOW_CONN_*`` lines that point a real Airflow (``airflow standalone``) at it.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from airflow_task_runs.testing.emulator import Emulator
    from airflow_task_runs.testing.lifecycle import Lifecycle

#: ``airflow-task-runs emulator``'s default ports: one per cloud, then the S3 store
DEFAULT_PORT_BASE = 18470

#: marks Airflow listener hooks (Airflow's own marker lives in a private module)
listener_hook = pluggy.HookimplMarker("airflow")


def _say(text: str) -> None:
    print(text, flush=True)


# -- the Airflow home ------------------------------------------------------------------------
def _configure_airflow(home: Path, dags_folder: Path, verbose: bool) -> None:
    """Airflow reads its configuration on first import: set everything before importing it."""
    import warnings

    from airflow_task_runs.testing.airflow_home import airflow_home_environment

    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    os.environ.update(airflow_home_environment(home, dags_folder))
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO" if verbose else "WARNING"
    if not verbose:
        # dag.test() has no dag-processor to register a DAG's outlets, so the asset manager
        # warns twice per output the demo writes ("AssetModel ... not found", "inactive
        # AssetModel"); a real deployment registers them. --verbose shows them.
        os.environ["AIRFLOW__LOGGING__NAMESPACE_LEVELS"] = "airflow.assets.manager=ERROR"


# -- what the demo says ----------------------------------------------------------------------
def dependency_order(dag: Any) -> list[str]:
    """Task ids upstream first (ties alphabetical): the order a reader expects them."""
    remaining = {task.task_id: set(task.upstream_task_ids) for task in dag.tasks}
    order: list[str] = []
    while remaining:
        ready = sorted(t for t, upstream in remaining.items() if not upstream - set(order))
        if not ready:  # a cycle cannot be parsed by Airflow; keep the rest as it is
            ready = sorted(remaining)
        for task_id in ready:
            order.append(task_id)
            del remaining[task_id]
    return order


class Narrator:
    """Prints one line per state change: each task's, and each emulated cloud run's."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._started: set[tuple[str, str, str]] = set()
        self._rescheduled: set[str] = set()

    def line(self, text: str) -> None:
        with self._lock:
            _say(f"  {time.monotonic() - self.started:6.1f}s  {text}")

    # Airflow listener hooks (the task runner calls them in this process under dag.test())
    @listener_hook
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        key = (task_instance.dag_id, task_instance.run_id, task_instance.task_id)
        again = key in self._started
        self._started.add(key)
        self._rescheduled.discard(task_instance.task_id)
        self.line(f"{task_instance.task_id}: {'resumed' if again else 'running'}")

    @listener_hook
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self.line(f"{task_instance.task_id}: success")

    @listener_hook
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        reason = f" ({str(error).splitlines()[0][:200]})" if error else ""
        self.line(f"{task_instance.task_id}: FAILED{reason}")

    @listener_hook
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        self.line(f"{task_instance.task_id}: skipped")

    def reschedule_waits(self, record: logging.LogRecord) -> bool:
        """``dag.test()`` warns "No tasks to run" every second while a sensor waits for its
        reschedule: say it once per wait, as a line of the story (a logging filter)."""
        message = record.getMessage()
        if not message.startswith("No tasks to run"):
            return True
        for task_id in re.findall(r"<TaskInstance: \S+?\.([\w.-]+) \S+ \[up_for_reschedule\]", message):
            if task_id not in self._rescheduled:
                self._rescheduled.add(task_id)
                self.line(f"{task_id}: up for reschedule")
        return False

    def cloud_run_changed(self, lifecycle: Lifecycle, previous: str | None, status: str) -> None:
        if lifecycle.label:
            self.line(f"    {lifecycle.label}: {f'{previous} -> ' if previous else ''}{status}")

    def register(self) -> None:
        from airflow.sdk.listener import get_listener_manager

        from airflow_task_runs.testing.lifecycle import Lifecycle

        get_listener_manager().add_listener(self)
        Lifecycle.observer = self.cloud_run_changed


def label_cloud_runs(emulator: Emulator) -> None:
    """Name each scripted lifecycle after its cloud and run (``ncp demo-nclue-run``) for the narrator."""
    from airflow_task_runs.testing.lifecycle import Lifecycle

    def scripted(holder: Any, prefix: str) -> Iterator[tuple[str, Any]]:
        for value in vars(holder).values():
            if isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(getattr(item, "lifecycle", None), Lifecycle):
                        name = key[-1] if isinstance(key, tuple) else key
                        yield f"{prefix} {name}", item
                        yield from scripted(item, f"{prefix} {name}")

    for cloud in emulator.clouds.values():
        for label, item in scripted(cloud, cloud.name):
            item.lifecycle.label = label


def _run_dag(dag: Any, run_output: Path | None) -> tuple[str, dict[str, str]]:
    conf = {"output_uri": f"file://{run_output}/"} if run_output is not None else None
    dagrun = dag.test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in dagrun.get_task_instances()}
    return str(dagrun.state), states


def _store_objects(emulator: Emulator) -> list[tuple[str, int]]:
    """``(s3://bucket/key, size)`` of every object in the emulator's store, to show where s3:// outputs went."""
    client = emulator.s3.client()
    found = []
    for bucket in client.list_buckets().get("Buckets", []):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            found += [(f"s3://{bucket['Name']}/{obj['Key']}", int(obj["Size"])) for obj in page.get("Contents", [])]
    return sorted(found)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def demo(args: argparse.Namespace) -> int:
    dags_folder = args.dags_folder.resolve()
    if not dags_folder.is_dir():
        _say(f"--dags-folder {dags_folder} does not exist; run from the repository root or pass it")
        return 2
    output = args.output.resolve()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
    with tempfile.TemporaryDirectory(prefix="airflow-task-runs-demo-") as tmp:
        home = Path(tmp)
        _configure_airflow(home, dags_folder, args.verbose)
        _say(f"Throwaway Airflow home {home} (removed at the end)")
        from airflow_task_runs.testing import Emulator

        _say("Starting the emulator ...")
        with Emulator() as emulator:
            for cloud in emulator.clouds.values():
                cloud.seed_demo()  # type: ignore[attr-defined]
            label_cloud_runs(emulator)
            os.environ.update(emulator.environment())
            for name, cloud in emulator.clouds.items():
                _say(f"  {name:8s} emulator at {cloud.url}")
            _say(f"  s3       store    at {emulator.s3.url}")
            _say("Creating the Airflow database (SQLite) and parsing the example DAGs ...")
            from airflow.dag_processing.dagbag import DagBag
            from airflow.utils import db

            db.resetdb(skip_init=False)
            bag = DagBag(dag_folder=str(dags_folder))
            if bag.import_errors:
                for path, error in bag.import_errors.items():
                    print(f"IMPORT ERROR {path}: {error}", file=sys.stderr)
                return 1
            narrator = Narrator()
            narrator.register()
            if not args.verbose:
                logging.getLogger("airflow.sdk.definitions.dag").addFilter(narrator.reschedule_waits)
            results: dict[str, tuple[str, dict[str, str], list[Path]]] = {}
            for dag_id in sorted(args.dag or bag.dag_ids):
                dag = bag.get_dag(dag_id)
                _say(f"\n=== {dag_id} ===")
                run_output = output / dag_id / stamp if "output_uri" in dag.params else None
                state, tasks = _run_dag(dag, run_output)
                results[dag_id] = (state, tasks, _files(run_output) if run_output else [])
                for task_id in dependency_order(dag):
                    _say(f"  {tasks.get(task_id, 'none'):10s} {task_id}")
                _say(f"  -> DAG run {state}")
            stored = _store_objects(emulator)
    _say("\nSummary")
    for dag_id, (state, _, written) in results.items():
        where = f"{len(written)} file(s) in {output / dag_id / stamp}" if written else "nothing written"
        _say(f"  {state:10s} {dag_id}: {where}")
        for file in written:
            _say(f"             {file.relative_to(output / dag_id / stamp)} ({file.stat().st_size} bytes)")
    _say(f"\n{len(stored)} object(s) in the emulator's S3 store at {emulator.s3.url} (gone with the demo):")
    for uri, size in stored:
        _say(f"  {uri} ({size} bytes)")
    failed = [dag_id for dag_id, (state, _, _) in results.items() if state != "success"]
    if failed:
        print(f"\nFAILED: {', '.join(failed)} (rerun with --verbose for the task logs)", file=sys.stderr)
        return 1
    _say("\nAll example DAGs succeeded.")
    return 0


# -- the emulator on its own -----------------------------------------------------------------
def environment_lines(env: dict[str, str]) -> list[str]:
    """``export NAME='value'`` lines a shell can source (``set -a; . file`` works too)."""
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]


def emulator_environment(emulator: Emulator) -> dict[str, str]:
    """What an Airflow (every component) needs to use the running emulator."""
    env: dict[str, str] = {}
    env.update(emulator.environment())
    env.update(
        {
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    return env


def serve_emulator(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    from airflow_task_runs.testing import Emulator

    stop = stop or threading.Event()
    emulator = Emulator()
    try:
        emulator.start(host=args.host, port_base=args.port_base)
    except OSError as exc:
        print(
            f"cannot serve on {args.host} from port {args.port_base}: {exc}; "
            "pass --port-base N (N..N+4 must be free) or --port-base 0 for any free ports",
            file=sys.stderr,
        )
        emulator.stop()
        return 1
    try:
        emulator.pace_for_real_airflow()  # a real scheduler needs runs that outlast a deferral by seconds
        if not args.no_seed:
            for cloud in emulator.clouds.values():
                cloud.seed_demo()  # type: ignore[attr-defined]
        lines = environment_lines(emulator_environment(emulator))
        if args.env_file:
            args.env_file.write_text("\n".join(lines) + "\n")
            args.env_file.chmod(0o600)  # it holds the emulator's (made-up) keys
        else:
            _say("\n".join(lines))
        for name, cloud in emulator.clouds.items():
            print(f"{name:8s} emulator at {cloud.url}", file=sys.stderr)
        print(f"s3       store    at {emulator.s3.url}", file=sys.stderr)
        where = f"written to {args.env_file}" if args.env_file else "above"
        print(f"Environment for Airflow {where}. Serving until Ctrl-C.", file=sys.stderr, flush=True)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
        stop.wait()
    finally:
        emulator.stop()
    print("Emulator stopped.", file=sys.stderr)
    return 0


# -- the command line ------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airflow-task-runs",
        description="Tools of the airflow-task-runs provider; no cloud account needed for either command.",
        epilog="Run 'airflow-task-runs COMMAND --help' for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo_parser = commands.add_parser(
        "demo",
        help="run every example DAG end to end (dag.test()) against the bundled emulator",
        description="Start the emulator, create a throwaway SQLite Airflow home (removed at the end), run "
        "each example DAG with dag.test() and print each task's and each cloud run's state changes. "
        "Outputs go to OUTPUT/<dag_id>/<timestamp>/, one folder per run.",
    )
    demo_parser.add_argument("--dags-folder", type=Path, default=Path("example_dags"), help="folder of the DAGs")
    demo_parser.add_argument(
        "--output", type=Path, default=Path("demo-output"), help="where outputs go (default demo-output)"
    )
    demo_parser.add_argument("--dag", action="append", default=[], help="run only this dag_id (repeatable)")
    demo_parser.add_argument("--verbose", action="store_true", help="also show Airflow's task logs")
    demo_parser.set_defaults(handler=demo)

    emu_parser = commands.add_parser(
        "emulator",
        help="serve every cloud's emulator and an S3 store until stopped, for your own Airflow",
        description="Serve the NCP, OCI, Alibaba and AWS emulators and an S3-compatible store on HOST, "
        "ports PORT_BASE .. PORT_BASE+4, seeded with the runs the example DAGs ask for, until Ctrl-C. "
        "Prints (or writes to --env-file) the AIRFLOW_CONN_* and other environment lines every "
        "Airflow component needs to use it.",
    )
    emu_parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    emu_parser.add_argument(
        "--port-base",
        type=int,
        default=DEFAULT_PORT_BASE,
        help=f"first of five ports: ncp, oci, alibaba, aws, s3 (default {DEFAULT_PORT_BASE}; 0 = any free ports)",
    )
    emu_parser.add_argument("--env-file", type=Path, help="write the environment lines here instead of stdout")
    emu_parser.add_argument("--no-seed", action="store_true", help="do not create the example DAGs' runs")
    emu_parser.set_defaults(handler=serve_emulator)
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
