"""A real Airflow deployment on this machine: api-server, scheduler, dag-processor and triggerer.

Each component is its own process (LocalExecutor, SQLite), all with the same environment:
one ``[api_auth] jwt_secret``, the execution API's URL, the ``AIRFLOW_CONN_*`` of the
emulator (the api-server needs them too, for the connection **Test** button) and a short
heartbeat so a killed triggerer's work moves to a new one within seconds. Used by the
deployment and browser tests; ``airflow-task-runs emulator`` prints the same connection lines
for an Airflow you run yourself.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from airflow_task_runs.testing.airflow_home import airflow_home_environment

T = TypeVar("T")

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.25) -> T:
    """Poll ``check`` until it returns something other than None/False; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as exc:  # a server still starting refuses connections
            last_error = exc
        else:
            if result is not None and result is not False:
                return result
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what} (last error: {last_error})")


class AirflowDeployment:
    """``with AirflowDeployment(home, dags, connections) as af: af.trigger(...)``."""

    def __init__(
        self,
        home: Path,
        dag_files: Iterable[Path],
        extra_env: Mapping[str, str] | None = None,
        *,
        parallelism: int = 8,
    ) -> None:
        self.home = home
        self.dags_folder = home / "dags"
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        for dag_file in dag_files:
            shutil.copy(dag_file, self.dags_folder / dag_file.name)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        # Each component would compile Airflow from source again: share the Makefile's bytecode cache.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.setdefault("PYTHONPYCACHEPREFIX", str(Path(sys.prefix) / "pycache"))
        env.update(airflow_home_environment(home, self.dags_folder))
        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(parallelism),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "4",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                # the log servers default to fixed ports 8793/8794: two deployments would collide
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            }
        )
        env.update(extra_env or {})
        self.env = env
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._client: Any = None

    # -- processes ---------------------------------------------------------------------------
    def airflow(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run an ``airflow`` CLI command in this deployment's environment."""
        done = subprocess.run(
            [self._airflow_bin(), *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    @staticmethod
    def _airflow_bin() -> str:
        return str(Path(sys.executable).parent / "airflow")

    def log_path(self, component: str) -> Path:
        return self.home / f"{component}.out"

    def start(self, component: str) -> subprocess.Popen[bytes]:
        args = [self._airflow_bin(), component]
        if component == "api-server":
            args += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        env = self.env
        if component == "triggerer":
            # DEBUG: the libraries' own records (botocore's canonical requests, every request's
            # headers) reach the trigger logs, which tests/deployment greps for secrets (Airflow's
            # handler drops stdlib records under this level; namespace_levels cannot lift it).
            # Not the scheduler and its task processes: at DEBUG they write ~17,000 lines per run
            # of the example DAGs, and a slower scheduler loop makes an Airflow race more likely
            # (a deferred try's exit event handled after its resumed try started: marked failed)
            env = {**env, "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG"}
        log = self.log_path(component).open("ab")
        process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.processes[component] = process
        return process

    def kill(self, component: str, sig: int = signal.SIGKILL) -> None:
        """Signal a component's whole process group (SIGKILL: no clean-up, as a crash or OOM kill)."""
        process = self.processes.pop(component)
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)

    def start_all(self) -> None:
        self.airflow("db", "migrate")
        for component in COMPONENTS:
            self.start(component)
        wait_for("the api-server", lambda: self.get("/api/v2/monitor/health"), timeout=120)

    def stop(self) -> None:
        for component in list(self.processes):
            process = self.processes[component]
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 20
        for component in list(self.processes):
            process = self.processes.pop(component)
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=10)
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> AirflowDeployment:
        try:
            self.start_all()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def logs(self, component: str, tail: int = 60) -> str:
        path = self.log_path(component)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-tail:])

    # -- REST API ----------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            import httpx

            self._client = httpx.Client(base_url=self.url, timeout=30)
        return self._client

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params or None)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any) -> Any:
        response = self.client.post(path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"POST {path} -> {response.status_code}: {response.text}")
        return response.json()

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 120) -> None:
        wanted = set(dag_ids)

        def parsed() -> bool:
            dags = self.get("/api/v2/dags", limit=100)["dags"]
            return wanted <= {d["dag_id"] for d in dags}

        wait_for(f"the dag-processor to parse {sorted(wanted)}", parsed, timeout)

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, logical_date: datetime | None = None) -> str:
        """Trigger a DAG run through the REST API; returns its run id.

        No logical date unless given, as ``airflow dags trigger`` and API clients sending
        ``null`` do: such a run has no ``ds`` or ``ts``, so a template that needs one fails
        (the UI's form sends the current time).
        """
        run = self.post(
            f"/api/v2/dags/{dag_id}/dagRuns",
            {"logical_date": logical_date.isoformat() if logical_date else None, "conf": dict(conf or {})},
        )
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        tis = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: str(ti["state"]) for ti in tis}
