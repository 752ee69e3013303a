"""What the fault matrix needs of each cloud: a finished run, its fetch, its status poll, where faults go."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from airflow_task_runs.testing.sensors import task_context

#: every matrix connection: quick retries, a small answer cap (so a huge body is refused early)
BASE_EXTRA: dict[str, Any] = {
    "retry_max_attempts": 4,
    "retry_backoff_initial": 0.02,
    "retry_backoff_max": 0.05,
    "read_timeout": 5,
    "max_response_bytes": 1024 * 1024,
}


class CloudCase:
    name = ""
    cloud_name = ""

    def server(self, emu: Any) -> Any:
        return emu.clouds[self.name]

    def connection(self, emu: Any, monkeypatch: Any, **extra: Any) -> str:
        """A connection to the emulator with the matrix's settings (and ``extra``); its id."""
        conn = self.server(emu).airflow_connection()
        conn["extra"] = {**conn.get("extra", {}), **BASE_EXTRA, **self.own_extra, **extra}
        conn_id = f"faults_{self.name}"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    own_extra: dict[str, Any] = {}
    #: (mode, fault name) pairs this cloud cannot bound (said in the README)
    unbounded: set[tuple[str, str]] = set()
    #: seconds a call spends before any request (building clients), outside the request's budget
    setup_seconds = 0.0

    def adapt(self, options: dict[str, Any]) -> dict[str, Any]:
        """The fault's options as this cloud's servers would send them."""
        return options

    def prepare(self, emu: Any) -> dict[str, Any]:
        raise NotImplementedError

    def fetch(self, conn_id: str, ref: dict[str, Any], folder: Path) -> None:
        raise NotImplementedError

    def expected_files(self, ref: dict[str, Any]) -> dict[str, bytes]:
        raise NotImplementedError

    def file_names(self, ref: dict[str, Any]) -> list[str]:
        """Every file a fetch writes, sorted."""
        return sorted(self.expected_files(ref))

    def check_healthy(self, files: dict[str, bytes], ref: dict[str, Any]) -> None:
        """A fetch wrote the cloud's content, byte for byte."""
        for name, data in self.expected_files(ref).items():
            assert files.get(name) == data, name

    def status(self, conn_id: str, ref: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def astatus(self, conn_id: str, ref: dict[str, Any]) -> Any:
        raise NotImplementedError

    def fetch_fault_target(self, ref: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def status_fault_target(self, ref: dict[str, Any]) -> dict[str, Any]:
        return self.fetch_fault_target(ref)

    def faulted_requests(self, server: Any, ref: dict[str, Any], status: bool = False) -> list[Any]:
        target = self.status_fault_target(ref) if status else self.fetch_fault_target(ref)
        return server.requests_to(target["match"])  # type: ignore[no-any-return]


class NcpCase(CloudCase):
    name = "ncp"
    cloud_name = "NCP NCLUE"

    def prepare(self, emu: Any) -> dict[str, Any]:
        data = os.urandom(200_000) + b"\nend\n"
        name = f"result-{uuid.uuid4().hex[:8]}.bin"
        run_id = emu.ncp.add_run(lifecycle=[("completed", 0)], result=data, result_file_path=f"out/{name}")
        return {"run_id": run_id, "data": data, "name": name}

    def fetch(self, conn_id: str, ref: dict[str, Any], folder: Path) -> None:
        from airflow_task_runs.ncp.operators import NclueFetchTaskRunResultOperator

        op = NclueFetchTaskRunResultOperator(
            task_id="fetch", run_id=ref["run_id"], destination=f"file://{folder}/", ncp_conn_id=conn_id
        )
        op.execute(task_context())

    def expected_files(self, ref: dict[str, Any]) -> dict[str, bytes]:
        return {ref["name"]: ref["data"]}

    def status(self, conn_id: str, ref: dict[str, Any]) -> Any:
        from airflow_task_runs.ncp.hooks import NclueHook

        return NclueHook(ncp_conn_id=conn_id).get_status(ref["run_id"])

    async def astatus(self, conn_id: str, ref: dict[str, Any]) -> Any:
        from airflow_task_runs.ncp.hooks import NclueHook

        hook = NclueHook(ncp_conn_id=conn_id)
        try:
            return await hook.aget_status(ref["run_id"])
        finally:
            await hook.aclose()

    def fetch_fault_target(self, ref: dict[str, Any]) -> dict[str, Any]:
        return {"match": f"/api/v1/task-runs/{ref['run_id']}"}


class OciCase(CloudCase):
    name = "oci"
    cloud_name = "OCI AI Data Platform"
    setup_seconds = 1.0  # each new hook loads and checks the RSA key before its first request

    def _ids(self) -> tuple[str, str]:
        from airflow_task_runs.testing.oci import PLATFORM_ID, WORKSPACE_KEY

        return PLATFORM_ID, WORKSPACE_KEY

    def prepare(self, emu: Any) -> dict[str, Any]:
        from airflow_task_runs.testing.oci import encode_item

        text = ("accuracy 0.93 · Grüße · 東京\n" * 3000).encode()
        binary = os.urandom(150_000)
        key = emu.oci.add_task_run(lifecycle=["SUCCESS"], output_key="out")
        items = [
            encode_item(text, "TEXT_PLAIN", charset="UTF_8", compression="GZIP"),
            encode_item(binary, "IMAGE_PNG"),
        ]
        emu.oci.set_output(key, "out", items, parameters={"rows": 3000})
        return {"key": key, "files": {"000_text_plain.txt": text, "001_image_png.png": binary}}

    def fetch(self, conn_id: str, ref: dict[str, Any], folder: Path) -> None:
        from airflow_task_runs.oci.operators import OciFetchTaskRunOutputOperator

        platform, workspace = self._ids()
        op = OciFetchTaskRunOutputOperator(
            task_id="fetch",
            ai_data_platform_id=platform,
            workspace_key=workspace,
            task_run_key=ref["key"],
            output_key="out",
            destination=f"file://{folder}/",
            oci_conn_id=conn_id,
        )
        op.execute(task_context())

    def expected_files(self, ref: dict[str, Any]) -> dict[str, bytes]:
        return dict(ref["files"])

    def file_names(self, ref: dict[str, Any]) -> list[str]:
        return sorted([*ref["files"], "output_parameters.json"])

    def status(self, conn_id: str, ref: dict[str, Any]) -> Any:
        from airflow_task_runs.oci.hooks import OciAiDataPlatformHook

        return OciAiDataPlatformHook(oci_conn_id=conn_id).get_task_run_status(*self._ids(), ref["key"])

    async def astatus(self, conn_id: str, ref: dict[str, Any]) -> Any:
        from airflow_task_runs.oci.hooks import OciAiDataPlatformHook

        hook = OciAiDataPlatformHook(oci_conn_id=conn_id)
        try:
            return await hook.aget_task_run_status(*self._ids(), ref["key"])
        finally:
            await hook.aclose()

    def _run_path(self, ref: dict[str, Any]) -> str:
        platform, workspace = self._ids()
        return f"/20260430/aiDataPlatforms/{platform}/workspaces/{workspace}/taskRuns/{ref['key']}"

    def fetch_fault_target(self, ref: dict[str, Any]) -> dict[str, Any]:
        return {"match": self._run_path(ref) + "/actions/fetchOutput"}

    def status_fault_target(self, ref: dict[str, Any]) -> dict[str, Any]:
        return {"match": self._run_path(ref)}


class RosCase(CloudCase):
    name = "alibaba"
    cloud_name = "Alibaba Cloud ROS"
    own_extra = {"max_output_bytes": 2 * 1024 * 1024}

    def prepare(self, emu: Any) -> dict[str, Any]:
        output = {"Result": {"ROSTemplateFormatVersion": "2015-09-01", "Description": "ü" * 20_000}}
        task_id = emu.alibaba.add_task(lifecycle=[("SUCCESS", 0)], output=output)
        return {"task_id": task_id, "output": output}

    def fetch(self, conn_id: str, ref: dict[str, Any], folder: Path) -> None:
        from airflow_task_runs.alibaba.operators import RosFetchAITaskOutputOperator

        op = RosFetchAITaskOutputOperator(
            task_id="fetch",
            ai_task_id=ref["task_id"],
            destination=f"file://{folder}/out.json",
            alibaba_ros_conn_id=conn_id,
        )
        op.execute(task_context())

    def file_names(self, ref: dict[str, Any]) -> list[str]:
        return ["out.json"]

    def check_healthy(self, files: dict[str, bytes], ref: dict[str, Any]) -> None:
        assert json.loads(files["out.json"]) == ref["output"]

    def status(self, conn_id: str, ref: dict[str, Any]) -> Any:
        from airflow_task_runs.alibaba.hooks import RosHook

        return RosHook(alibaba_ros_conn_id=conn_id).get_status(ref["task_id"])

    async def astatus(self, conn_id: str, ref: dict[str, Any]) -> Any:
        from airflow_task_runs.alibaba.hooks import RosHook

        hook = RosHook(alibaba_ros_conn_id=conn_id)
        try:
            return await hook.aget_status(ref["task_id"])
        finally:
            await hook.aclose()

    def fetch_fault_target(self, ref: dict[str, Any]) -> dict[str, Any]:
        return {"match": "/"}

    def faulted_requests(self, server: Any, ref: dict[str, Any], status: bool = False) -> list[Any]:
        return server.requests_for(ref["task_id"])  # type: ignore[no-any-return]


class AwsCase(CloudCase):
    """HealthOmics: the log fetch (GetLogEvents, paged, through the emulator to moto) and GetRun."""

    name = "aws"
    cloud_name = "AWS"
    #: the policy drives botocore (the emulator's own connection pins retries in config_kwargs);
    #: botocore waits seconds between retries of a cut connection, so here it retries once
    own_extra = {"config_kwargs": {}, "retry_max_attempts": 2}
    setup_seconds = 1.5  # a fresh boto3 session loads the service models for each client it builds

    def prepare(self, emu: Any) -> dict[str, Any]:
        run_id = emu.aws.add_run(lifecycle=[("COMPLETED", 0)])
        lines = [f"[align] chunk {i:05d} ü ✓ " + "x" * (i % 50) for i in range(2500)]
        task_id = emu.aws.add_task(run_id, lifecycle=[("COMPLETED", 0)], log_lines=lines)
        name = f"healthomics-run-{run_id}-task-{task_id}.log"
        return {"run_id": run_id, "task_id": task_id, "name": name, "data": ("\n".join(lines) + "\n").encode()}

    def fetch(self, conn_id: str, ref: dict[str, Any], folder: Path) -> None:
        from airflow_task_runs.aws.operators import HealthOmicsFetchTaskLogOperator

        op = HealthOmicsFetchTaskLogOperator(
            task_id="fetch",
            run_id=ref["run_id"],
            run_task_id=ref["task_id"],
            destination=f"file://{folder}/",
            page_size=1000,
            aws_conn_id=conn_id,
        )
        op.execute(task_context())

    def expected_files(self, ref: dict[str, Any]) -> dict[str, bytes]:
        return {ref["name"]: ref["data"]}

    def status(self, conn_id: str, ref: dict[str, Any]) -> Any:
        from airflow_task_runs.aws.hooks import HealthOmicsHook

        return HealthOmicsHook(aws_conn_id=conn_id).get_run_status(ref["run_id"])

    async def astatus(self, conn_id: str, ref: dict[str, Any]) -> Any:
        from airflow_task_runs.aws.hooks import HealthOmicsHook

        hook = HealthOmicsHook(aws_conn_id=conn_id)
        try:
            return await hook.aget_run_status(ref["run_id"])
        finally:
            await hook.aclose()

    def adapt(self, options: dict[str, Any]) -> dict[str, Any]:
        """AWS throttles with an error type, not a bare 429 (botocore retries by that type)."""
        if options.get("times") == 3:  # a burst, within the one retry this connection allows
            options = {**options, "times": 1}
        if options.get("status") == 429:
            return {
                **options,
                "headers": {**options.get("headers", {}), "x-amzn-ErrorType": "ThrottlingException"},
                "body": b'{"__type": "ThrottlingException", "message": "Rate exceeded"}',
            }
        return options

    def fetch_fault_target(self, ref: dict[str, Any]) -> dict[str, Any]:
        return {"target": "GetLogEvents"}

    def status_fault_target(self, ref: dict[str, Any]) -> dict[str, Any]:
        return {"match": f"/run/{ref['run_id']}"}

    def faulted_requests(self, server: Any, ref: dict[str, Any], status: bool = False) -> list[Any]:
        if status:
            return server.requests_to(f"/run/{ref['run_id']}")  # type: ignore[no-any-return]
        return [r for r in server.requests if "GetLogEvents" in r.headers.get("x-amz-target", "")]


CLOUDS: list[CloudCase] = [NcpCase(), OciCase(), RosCase(), AwsCase()]


# -- SIGKILL mid-fetch: how each cloud's fetch is caught in the middle --------------------------
def slow_down(cloud: CloudCase, emu: Any, ref: dict[str, Any]) -> dict[str, Any]:
    """Make ``ref``'s fetch take seconds at its data source; the ref to fetch (maybe a new one).

    OCI's items, HealthOmics' log pages and ROS's answer are trickled by the emulator; an NCLUE
    result comes from the object store (moto, no faults there), so it is made large instead.
    """
    if cloud.name == "ncp":
        data = os.urandom(48 * 1024 * 1024)
        run_id = emu.ncp.add_run(lifecycle=[("completed", 0)], result=data, result_file_path=f"out/{ref['name']}")
        return {**ref, "run_id": run_id, "data": data}
    # ROS's ~60 KB answer over ~3 s (a kill lands well inside it); the others' larger bodies as fast
    trickle = {"times": 1, "delay": 0.02, "trickle_bytes": 512 if cloud.name == "alibaba" else 2048}
    cloud.server(emu).inject("trickle", **cloud.fetch_fault_target(ref), **trickle)
    return ref


#: ROS reads its one answer whole before writing: killed mid-answer, there is no partial yet
WRITES_WHILE_READING = {"ncp", "oci", "aws"}
