"""NCLUE task runs behind a stand-in API Gateway that checks signature v2 with its own code."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from airflow_task_runs.testing.lifecycle import Lifecycle
from airflow_task_runs.testing.s3 import S3Store
from airflow_task_runs.testing.server import EmulatorServer, Reply, Request

MAX_CLOCK_SKEW_MS = 5 * 60 * 1000


@dataclass
class _Run:
    run_id: str
    lifecycle: Lifecycle
    fields: dict[str, Any] = field(default_factory=dict)
    fail_message: str | None = None
    created_at: str = field(
        default_factory=lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")
    )

    def as_json(self, status: str) -> dict[str, Any]:
        done = status in ("completed", "complete", "failed")
        return {
            "run_id": self.run_id,
            "run_name": self.fields.get("run_name", f"run-{self.run_id}"),
            "task_id": self.fields.get("task_id", "3179664c-0000-0000-0000-af6354344018"),
            "task_name": self.fields.get("task_name", "emulated-task"),
            "feature_id": self.fields.get("feature_id", "28bd06bb-0000-0000-0000-9f2d6a9c3313"),
            "feature_name": self.fields.get("feature_name", "emulated-feature"),
            "status": status,
            "created_at": self.fields.get("created_at", self.created_at),
            "completed_at": self.fields.get("completed_at", "2024-11-22T08:55:22") if done else None,
            "result_bucket": self.fields.get("result_bucket"),
            "result_file_path": self.fields.get("result_file_path"),
            "line_count": self.fields.get("line_count"),
            "fail_message": self.fail_message if status == "failed" else None,
            **{k: v for k, v in self.fields.items() if k.startswith("x_")},
        }


def _gateway_error(status: int, code: str, message: str) -> Reply:
    return Reply.json(status, {"error": {"errorCode": code, "message": message}})


#: what NCP's "Create task run" page refuses in result_file_path (besides codes 0-31 and 128-255)
_PATH_FORBIDDEN = set("&$@=;:+,?*\\{}^%`[]<>~#|\"'")
#: deletable statuses per NCP's "Delete task run" page
_DELETABLE = ("registered", "completed", "complete", "failed")


class NclueEmulator(EmulatorServer):
    """List, get, create (``POST``) and delete task runs under ``/api/v1``, signature v2 checked.

    A created run follows :attr:`create_lifecycle` and, when it completes, its result
    (:attr:`create_result`) is in the object store under the name NCLUE's naming rule gives.
    ``created`` and ``deleted`` record the run ids of each kind of call.
    """

    name = "ncp"
    conn_id = "ncp_default"
    access_key = "NCPEMULATORACCESSKEY"
    secret_key = "ncp-emulator-secret-key-0123456789"

    def __init__(self, s3: S3Store) -> None:
        super().__init__()
        self.s3 = s3
        self.runs: dict[str, _Run] = {}
        self.clock_skew_ms = MAX_CLOCK_SKEW_MS
        self.create_lifecycle: list[tuple[str, int] | str] = [("registered", 2), ("in_progress", 2), ("completed", 0)]
        self.create_result = b"id\tscore\n1\t0.93\n2\t0.41\n"
        self.created: list[str] = []
        self.deleted: list[str] = []
        #: answer this many creates with a 504 *after* creating the run (a reply lost on the way back)
        self.lose_create_replies = 0
        #: refuse this many list calls with a 403 (to script a look-up that fails)
        self.refuse_lists = 0
        #: a list page holds at most this many runs, whatever ``limit`` asks (a server with its own page size)
        self.list_page_cap = 100
        #: once, after answering a list call, delete this many of the oldest runs (deleted while a reader pages)
        self.delete_oldest_after_list = 0

    def clear_faults(self) -> None:
        """Between tests: the scripted faults and the list's page size back to normal."""
        super().clear_faults()
        with self._lock:
            self.lose_create_replies = 0
            self.refuse_lists = 0
            self.list_page_cap = 100
            self.delete_oldest_after_list = 0

    def real_airflow_pace(self) -> dict[str, Any]:
        """The runs the example DAGs create run 8 polls too, and stay ``registered`` for 5: a cancel
        reads its run, then deletes it, and once a run has been read by id every list page
        another watch reads moves it on (see :meth:`_list`). With 2 registered reads, one list
        read between the cancel's two calls made NCLUE refuse the delete."""
        return {
            **super().real_airflow_pace(),
            "create_lifecycle": [("registered", 5), ("in_progress", 8), ("completed", 0)],
        }

    # -- scripting ---------------------------------------------------------------------------
    def add_run(
        self,
        run_id: str | None = None,
        *,
        lifecycle: list[tuple[str, int] | str] | None = None,
        fail_message: str | None = None,
        result: bytes | None = None,
        result_bucket: str = "nclue-results",
        result_file_path: str | None = None,
        **fields: Any,
    ) -> str:
        """Script a run; with ``result``, its file is put in the object store. Returns the run id."""
        run_id = run_id or str(uuid.uuid4())
        steps = lifecycle or [("registered", 1), ("in_progress", 1), ("completed", 0)]
        if result is not None:
            result_file_path = result_file_path or f"results/{run_id}/result.csv"
            self.s3.put_object(result_bucket, result_file_path, result)
            fields.setdefault("line_count", result.count(b"\n"))
        if result_file_path is not None:
            fields["result_bucket"] = result_bucket
            fields["result_file_path"] = result_file_path
        self.runs[run_id] = _Run(run_id, Lifecycle(steps), fields, fail_message)
        return run_id

    def seed_demo(self) -> None:
        """The runs the example DAG asks for by default."""
        rows = "".join(f"{i},customer-{i},{i * 7 % 100}\n" for i in range(1, 1001))
        self.add_run(
            "demo-nclue-run",
            lifecycle=[("registered", 1), ("in_progress", self.demo_running_polls), ("completed", 0)],
            result=("id,customer,score\n" + rows).encode(),
            result_file_path="results/demo-nclue-run/scores.csv",
        )

    # -- Airflow connection ------------------------------------------------------------------
    def airflow_connection(self) -> dict[str, Any]:
        return {
            "conn_type": "ncp",
            "login": self.access_key,
            "password": self.secret_key,
            "host": self.url,
            "extra": {
                "object_storage_endpoint": self.s3.url,
                "object_storage_region": "kr-standard",
                "retry_backoff_initial": 0.05,
                "retry_backoff_max": 0.2,
            },
        }

    # -- the API -----------------------------------------------------------------------------
    def verify_signature(self, request: Request) -> Reply | None:
        """The gateway's check, written from NCP's spec independently of the client's signer."""
        timestamp = request.headers.get("x-ncp-apigw-timestamp")
        access_key = request.headers.get("x-ncp-iam-access-key")
        signature = request.headers.get("x-ncp-apigw-signature-v2")
        if not (timestamp and access_key and signature):
            return _gateway_error(401, "200", "Authentication Failed: signature headers are missing")
        if access_key != self.access_key:
            return _gateway_error(401, "200", "Authentication Failed: unknown access key")
        try:
            skew = abs(int(time.time() * 1000) - int(timestamp))
        except ValueError:
            return _gateway_error(401, "200", "Authentication Failed: timestamp is not epoch milliseconds")
        if skew > self.clock_skew_ms:
            return _gateway_error(401, "200", "Authentication Failed: timestamp is outside the allowed window")
        message = f"{request.method} {request.raw_path}\n{timestamp}\n{access_key}".encode()
        expected = base64.b64encode(hmac.new(self.secret_key.encode(), message, hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, signature):
            return _gateway_error(401, "200", "Authentication Failed: signature mismatch")
        return None

    def handle(self, request: Request) -> Reply:
        denied = self.verify_signature(request)
        if denied is not None:
            return denied
        trace = {"x-ncp-trace-id": uuid.uuid4().hex}
        path = request.path
        if path == "/api/v1/task-runs" and request.method == "POST":
            return self._create(request, trace)
        if request.method not in ("GET", "DELETE"):
            return _gateway_error(405, "NCLUE-405", "method not allowed")
        if path == "/api/v1/task-runs" and request.method == "GET":
            return self._list(request, trace)
        prefix = "/api/v1/task-runs/"
        if path.startswith(prefix):
            run_id = unquote(path[len(prefix) :])
            run = self.runs.get(run_id)
            if run is None:
                return Reply.json(
                    404, {"error": {"errorCode": "NCLUE-404", "message": f"task run {run_id} not found"}}, trace
                )
            if request.method == "DELETE":
                return self._delete(run, trace)
            return Reply.json(200, run.as_json(run.lifecycle.advance()), trace)
        return _gateway_error(404, "300", "Not Found: no such API")

    def _create(self, request: Request, trace: dict[str, str]) -> Reply:
        """``POST /task-runs`` as NCP's "Create task run" page describes it (the fields it requires)."""
        try:
            body = request.json()
        except ValueError:
            body = None

        def bad(message: str) -> Reply:
            return Reply.json(400, {"error": {"errorCode": "NCLUE-400", "message": message}}, trace)

        if not isinstance(body, dict):
            return bad("body must be a JSON object")
        for key in ("name", "task_id", "feature_id", "result_bucket", "result_file_path"):
            if not isinstance(body.get(key), str) or not body[key]:
                return bad(f"{key} is required")
        if len(body["name"]) > 100:
            return bad("name is 1-100 characters")
        path = body["result_file_path"]
        if any(c in _PATH_FORBIDDEN or ord(c) < 32 or 127 < ord(c) < 256 for c in path):
            return bad("result_file_path contains a character that is not allowed")
        run_id = str(uuid.uuid4())
        # The page's naming rule: a folder gets nclue_<random>_<time>.tsv, a name gets _<random>_<time>.tsv.
        stamp = f"{uuid.uuid4().hex[:8]}_{time.strftime('%Y%m%d%H%M%S')}.tsv"
        key = f"{path}nclue_{stamp}" if path.endswith("/") else f"{path}_{stamp}"
        self.s3.put_object(body["result_bucket"], key, self.create_result)
        fields = {
            "run_name": body["name"],
            "task_id": body["task_id"],
            "feature_id": body["feature_id"],
            "result_bucket": body["result_bucket"],
            "result_file_path": key,
            "line_count": self.create_result.count(b"\n"),
            "created_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds"),
        }
        run = _Run(run_id, Lifecycle(list(self.create_lifecycle)), fields)
        with self._lock:
            self.runs[run_id] = run
            self.created.append(run_id)
            lost, self.lose_create_replies = self.lose_create_replies > 0, max(0, self.lose_create_replies - 1)
        if lost:
            return _gateway_error(504, "504", "Endpoint request timed out")
        return Reply.json(200, run.as_json(run.lifecycle.current()), trace)

    def _delete(self, run: _Run, trace: dict[str, str]) -> Reply:
        """``DELETE /task-runs/{run_id}``: only registered, completed or failed runs (NCP's "Delete task run")."""
        status = run.lifecycle.current()
        if status not in _DELETABLE:
            message = f"task run {run.run_id} is {status}: a pending or in_progress run cannot be deleted"
            return Reply.json(400, {"error": {"errorCode": "NCLUE-400", "message": message}}, trace)
        with self._lock:
            self.runs.pop(run.run_id, None)
            self.deleted.append(run.run_id)
        return Reply.json(200, {"run_id": run.run_id}, trace)

    def _list(self, request: Request, trace: dict[str, str]) -> Reply:
        with self._lock:
            refused, self.refuse_lists = self.refuse_lists > 0, max(0, self.refuse_lists - 1)
        if refused:
            return _gateway_error(403, "NCLUE-403", "listing task runs is not permitted right now")
        query = request.query
        try:
            index = int(query.get("index", 0))
            limit = int(query.get("limit", 20))
        except ValueError:
            return Reply.json(400, {"error": {"errorCode": "NCLUE-400", "message": "index and limit must be integers"}})
        if index < 0 or not 1 <= limit <= 100:
            return Reply.json(400, {"error": {"errorCode": "NCLUE-400", "message": "limit must be 1-100"}})
        runs = list(self.runs.values())
        # A listed run's status is read, as by GET /task-runs/{id}: its lifecycle moves on, once
        # somebody has asked for that run by id (a sensor's first check does): runs nobody
        # watches keep their state however often others list.
        page = [
            r.as_json(r.lifecycle.advance() if r.lifecycle.polls else r.lifecycle.current())
            for r in runs[index : index + min(limit, self.list_page_cap)]
        ]
        with self._lock:
            deleting, self.delete_oldest_after_list = self.delete_oldest_after_list, 0
            for run_id in list(self.runs)[:deleting]:
                del self.runs[run_id]
        return Reply(
            200,
            json.dumps({"index": index, "limit": limit, "total": len(runs), "runs": page}).encode(),
            {"Content-Type": "application/json", **trace},
        )
