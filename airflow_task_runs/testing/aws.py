"""AWS HealthOmics runs and run tasks (rest-json, as botocore speaks it), SigV4 checked with botocore.

Task logs and run outputs live in the shared moto server (CloudWatch Logs and S3), so the
operators read them over the real wire protocol too; the connection points ``logs`` and
``s3`` there through the amazon provider's ``service_config`` extra.
"""

from __future__ import annotations

import datetime as dt
import hmac
import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from airflow_task_runs.testing.lifecycle import Lifecycle
from airflow_task_runs.testing.s3 import S3Store
from airflow_task_runs.testing.server import EmulatorServer, Reply, Request

REGION = "us-east-1"
ACCOUNT = "123456789012"
LOG_GROUP = "/aws/omics/WorkflowLog"
MAX_SKEW = dt.timedelta(minutes=5)
DEMO_RUN_ID = "1234567"
DEMO_TASK_ID = "7654321"
DEMO_OUTPUT_URI = "s3://omics-demo-outputs/runs/"
DEMO_WORKFLOW_ID = "9876543"
DEMO_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/OmicsWorkflowRole"
_DONE = ("COMPLETED", "FAILED", "CANCELLED", "DELETED")
_ids = itertools.count(2_000_001)
_ids_lock = threading.Lock()


def _next_id() -> str:
    with _ids_lock:
        return str(next(_ids))


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Task:
    task_id: str
    lifecycle: Lifecycle
    name: str
    log_stream: str
    failure_reason: str | None = None
    status_message: str | None = None
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))

    def as_json(self, status: str, *, listing: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "taskId": self.task_id,
            "status": status,
            "name": self.name,
            "cpus": 2,
            "memory": 4,
            "gpus": 0,
            "instanceType": "omics.c.large",
            "cacheHit": False,
            "creationTime": _iso(self.created),
            "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"omics-task/{self.task_id}")),
        }
        if status not in ("PENDING", "STARTING"):
            body["startTime"] = _iso(self.created + dt.timedelta(seconds=5))
        if status in _DONE:
            body["stopTime"] = _iso(self.created + dt.timedelta(seconds=60))
        if listing:
            return body
        body["logStream"] = self.log_stream
        body["imageDetails"] = {"image": "public.ecr.aws/emulator/align:1", "imageDigest": "sha256:" + "0" * 64}
        if status in ("FAILED", "CANCELLED"):
            body["failureReason"] = self.failure_reason or ("TASK_FAILED" if status == "FAILED" else "CANCELLED")
            body["statusMessage"] = self.status_message or "Essential container in task exited with code 1"
        return body


@dataclass
class _Run:
    run_id: str
    lifecycle: Lifecycle
    output_uri: str
    run_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    failure_reason: str | None = None
    status_message: str | None = None
    tasks: dict[str, _Task] = field(default_factory=dict)
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    #: the StartRun body of a run started through the API (its fields show in GetRun)
    request: dict[str, Any] = field(default_factory=dict)

    @property
    def prefix_mode(self) -> str:
        return str(self.request.get("outputUriPrefixMode") or "SERVICE_DEFINED")

    @property
    def run_output_uri(self) -> str:
        if self.prefix_mode == "NONE_WITH_OVERWRITE":
            return self.output_uri
        return f"{self.output_uri.rstrip('/')}/{self.run_id}"

    def as_json(self, status: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "arn": f"arn:aws:omics:{REGION}:{ACCOUNT}:run/{self.run_id}",
            "id": self.run_id,
            "uuid": self.run_uuid,
            "status": status,
            "name": f"run-{self.run_id}",
            "workflowId": "9876543",
            "workflowType": "PRIVATE",
            "roleArn": f"arn:aws:iam::{ACCOUNT}:role/OmicsWorkflowRole",
            "priority": 100,
            "storageCapacity": 1200,
            "storageType": "STATIC",
            "outputUri": self.output_uri,
            "runOutputUri": self.run_output_uri,
            "outputUriPrefixMode": self.prefix_mode,
            "logLevel": "ALL",
            "startedBy": f"arn:aws:iam::{ACCOUNT}:user/emulator",
            "creationTime": _iso(self.created),
            "logLocation": {
                "runLogStream": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{LOG_GROUP}:log-stream:run/{self.run_id}"
            },
            "tags": {"project": "emulator"},
        }
        for key in _ECHOED:
            if key in self.request:
                body[key] = self.request[key]
        if status not in ("PENDING", "STARTING"):
            body["startTime"] = _iso(self.created + dt.timedelta(seconds=5))
        if status in _DONE:
            body["stopTime"] = _iso(self.created + dt.timedelta(seconds=120))
        if status in ("FAILED", "CANCELLED", "DELETED"):
            body["failureReason"] = self.failure_reason or "WORKFLOW_RUN_FAILED"
            body["statusMessage"] = self.status_message or "A task of the run failed"
        return body


_RUN_LIST_FIELDS = (
    "arn",
    "id",
    "status",
    "name",
    "workflowId",
    "priority",
    "storageCapacity",
    "storageType",
    "creationTime",
    "startTime",
    "stopTime",
)


def _run_list_item(run: dict[str, Any]) -> dict[str, Any]:
    """What ``ListRuns`` shows of a run (GetRun says more: failure reason, output URI...)."""
    return {key: run[key] for key in _RUN_LIST_FIELDS if key in run}


#: StartRun fields GetRun reports back as they were given
_ECHOED = (
    "workflowId",
    "workflowType",
    "roleArn",
    "name",
    "priority",
    "storageCapacity",
    "storageType",
    "runGroupId",
    "parameters",
    "tags",
)


_HOP_BY_HOP = ("connection", "content-length", "transfer-encoding", "keep-alive", "server", "date")


def _page(query: dict[str, str]) -> tuple[int, int] | Reply:
    """A list call's (start, size) from ``startingToken`` / ``maxResults``, or its 400 answer."""
    try:
        size = int(query.get("maxResults", 100))
        start = int(query.get("startingToken", 0) or 0)
    except ValueError:
        return _error(400, "ValidationException", "maxResults and startingToken must be integers")
    if not 1 <= size <= 100:
        return _error(400, "ValidationException", "maxResults must be between 1 and 100")
    return start, size


def _error(status: int, name: str, message: str) -> Reply:
    """A rest-json error as AWS sends it: the name in ``x-amzn-ErrorType``, the words in ``message``."""
    return Reply.json(status, {"message": message}, {"x-amzn-ErrorType": name, "x-amzn-RequestId": str(uuid.uuid4())})


def throttling_fault() -> dict[str, Any]:
    """Keyword arguments of ``inject("status", ...)`` for a HealthOmics ``ThrottlingException``."""
    return {
        "status": 429,
        "headers": {"x-amzn-ErrorType": "ThrottlingException", "x-amzn-RequestId": "throttled-request"},
        "body": b'{"message": "Rate exceeded"}',
    }


class HealthOmicsEmulator(EmulatorServer):
    """``GetRun``, ``GetRunTask`` and ``ListRunTasks``, SigV4 recomputed with botocore's signer.

    CloudWatch Logs calls (``x-amz-target: Logs_...``) are passed on to moto, so
    ``inject(kind, target="GetLogEvents")`` puts a fault on the log fetch.

        Every read of a run or task advances its scripted :class:`Lifecycle`; listing does not.
        ``hosts`` records the Host header of each request (a custom endpoint must not get the
        ``workflows-`` prefix).
    """

    name = "aws"
    conn_id = "aws_default"
    access_key = "AKIAEMULATOR0000OMIC"
    secret_key = "omics/emulator/Secret+Key/0123456789ABCDEF"

    def __init__(self, s3: S3Store) -> None:
        super().__init__()
        self.s3 = s3
        self.runs: dict[str, _Run] = {}
        self.hosts: list[str] = []
        #: workflow ids StartRun accepts (any other is ResourceNotFoundException)
        self.workflows: set[str] = {DEMO_WORKFLOW_ID}
        #: the lifecycle and output files (keys under the run's output location) of started runs
        self.start_lifecycle: list[tuple[str, int] | str] = [
            ("PENDING", 1),
            ("STARTING", 1),
            ("RUNNING", 2),
            ("COMPLETED", 0),
        ]
        self.start_outputs: dict[str, bytes] = {
            "out/sample.bam": b"BAM\x01" + bytes(range(256)),
            "out/variants.vcf": b"##fileformat=VCFv4.2\n",
        }
        self.started: list[str] = []  # run ids StartRun created (a repeated requestId adds none)
        self.cancelled: list[str] = []  # run ids CancelRun cancelled
        self._run_of_request: dict[str, str] = {}
        #: answer this many StartRuns with a 500 *after* starting the run (a reply lost on the way back)
        self.lose_start_replies = 0

    def real_airflow_pace(self) -> dict[str, Any]:
        """Runs the example DAGs start run 8 polls too."""
        return {
            **super().real_airflow_pace(),
            "start_lifecycle": [("PENDING", 1), ("STARTING", 1), ("RUNNING", 8), ("COMPLETED", 0)],
        }

    # -- scripting ---------------------------------------------------------------------------
    def add_run(
        self,
        run_id: str | None = None,
        *,
        lifecycle: list[tuple[str, int] | str] | None = None,
        failure_reason: str | None = None,
        status_message: str | None = None,
        outputs: dict[str, bytes] | None = None,
        output_uri: str = DEMO_OUTPUT_URI,
        run_uuid: str | None = None,
    ) -> str:
        """Script a run (replacing one with the same id, as AWS reuses ids); ``outputs`` land under its outputUri."""
        run_id = run_id or _next_id()
        run = _Run(
            run_id,
            Lifecycle(lifecycle or [("PENDING", 1), ("RUNNING", 1), ("COMPLETED", 0)]),
            output_uri,
            failure_reason=failure_reason,
            status_message=status_message,
        )
        if run_uuid:
            run.run_uuid = run_uuid
        self.runs[run_id] = run
        if outputs:
            bucket, _, prefix = output_uri[len("s3://") :].partition("/")
            for key, data in outputs.items():
                self.s3.put_object(bucket, f"{prefix.rstrip('/')}/{run_id}/{key}".lstrip("/"), data)
        return run_id

    def add_task(
        self,
        run_id: str,
        run_task_id: str | None = None,
        *,
        lifecycle: list[tuple[str, int] | str] | None = None,
        failure_reason: str | None = None,
        status_message: str | None = None,
        log_lines: list[str] | None = None,
        log_stream_as_arn: bool = True,
        name: str = "align",
    ) -> str:
        """Script a task of ``run_id``; ``log_lines`` go to CloudWatch Logs (moto) in its stream."""
        run_task_id = run_task_id or _next_id()
        stream = f"run/{run_id}/task/{run_task_id}"
        log_stream = (
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{LOG_GROUP}:log-stream:{stream}"
            if log_stream_as_arn
            else stream
        )
        self.runs[run_id].tasks[run_task_id] = _Task(
            run_task_id,
            Lifecycle(lifecycle or [("PENDING", 1), ("RUNNING", 1), ("COMPLETED", 0)]),
            name,
            log_stream,
            failure_reason,
            status_message,
        )
        if log_lines is not None:
            self.put_log(stream, log_lines)
        return run_task_id

    def put_log(self, stream: str, lines: list[str], group: str = LOG_GROUP) -> None:
        """Write ``lines`` as events of ``group``/``stream`` in moto's CloudWatch Logs (a fresh stream)."""
        logs = self.s3.client("logs", REGION)
        try:
            logs.create_log_group(logGroupName=group)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        try:
            logs.delete_log_stream(logGroupName=group, logStreamName=stream)
        except logs.exceptions.ResourceNotFoundException:
            pass
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        start = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
        for offset in range(0, len(lines), 1000):
            batch = lines[offset : offset + 1000]
            logs.put_log_events(
                logGroupName=group,
                logStreamName=stream,
                logEvents=[{"timestamp": start + offset + i, "message": line} for i, line in enumerate(batch)],
            )

    def seed_demo(self) -> None:
        """The run and task the example DAG asks for by default (250 log lines: 3 pages of 100)."""
        self.add_run(
            DEMO_RUN_ID,
            lifecycle=[("STARTING", 1), ("RUNNING", self.demo_running_polls), ("COMPLETED", 0)],
            outputs={
                "out/sample.bam": b"BAM\x01" + bytes(range(256)) * 64,
                "out/variants.vcf": b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n",
                "manifest.json": b'{"tasks": 1}\n',
            },
        )
        self.add_task(
            DEMO_RUN_ID,
            DEMO_TASK_ID,
            lifecycle=[("PENDING", 1), ("RUNNING", self.demo_running_polls), ("COMPLETED", 0)],
            log_lines=[f"[align] processed chunk {i:04d} of 0250" for i in range(250)],
        )

    # -- Airflow connection ------------------------------------------------------------------
    def airflow_connection(self) -> dict[str, Any]:
        """An amazon-provider ``aws`` connection: omics here, logs, S3 and STS at moto (``service_config``)."""
        return {
            "conn_type": "aws",
            "login": self.access_key,
            "password": self.secret_key,
            "extra": {
                "region_name": REGION,
                "endpoint_url": self.url,
                # logs pass through this server (to moto), so faults can be injected on GetLogEvents;
                # STS is moto's, so the connection's Test (GetCallerIdentity) works against it
                "service_config": {
                    "logs": {"endpoint_url": self.url},
                    "s3": {"endpoint_url": self.s3.url},
                    "sts": {"endpoint_url": self.s3.url},
                },
                "config_kwargs": {"retries": {"mode": "standard", "max_attempts": 4}},
                "retry_backoff_initial": 0.05,
                "retry_backoff_max": 0.2,
            },
        }

    # -- the API -----------------------------------------------------------------------------
    def verify_signature(self, request: Request) -> Reply | None:
        """Recompute SigV4 over the received request with botocore's own signer and compare."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        header = request.headers.get("authorization", "")
        amz_date = request.headers.get("x-amz-date", "")
        prefix = "AWS4-HMAC-SHA256 "
        if not header.startswith(prefix) or not amz_date:
            return _error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        try:
            parts = dict(p.strip().split("=", 1) for p in header[len(prefix) :].split(","))
            access_key, scope_date, region, service, terminator = parts["Credential"].split("/")
            signed = parts["SignedHeaders"].split(";")
            signature = parts["Signature"]
        except (KeyError, ValueError):
            return _error(403, "IncompleteSignatureException", "Authorization header is malformed")
        unsigned = [name for name in ("host", "x-amz-date") if name not in signed]
        if "x-amz-security-token" in request.headers and "x-amz-security-token" not in signed:
            unsigned.append("x-amz-security-token")
        if unsigned:  # AWS refuses a signature that leaves these out, whatever the client chose to sign
            return _error(403, "IncompleteSignatureException", f"'{', '.join(unsigned)}' must be signed")
        if access_key != self.access_key:
            return _error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        if terminator != "aws4_request" or service != "omics" or region != REGION:
            return _error(403, "InvalidSignatureException", f"Credential should be scoped to {REGION}/omics")
        try:
            when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            return _error(403, "IncompleteSignatureException", "X-Amz-Date is malformed")
        if abs(dt.datetime.now(dt.timezone.utc) - when) > MAX_SKEW or scope_date != amz_date[:8]:
            return _error(403, "InvalidSignatureException", "Signature expired: the request date is too far from now")
        aws_request = AWSRequest(
            method=request.method,
            url=f"http://{request.headers.get('host', '')}{request.raw_path}",
            data=request.body,
            headers={name: request.headers.get(name, "") for name in signed},
        )
        aws_request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(self.access_key, self.secret_key), service, region)
        expected = signer.signature(
            signer.string_to_sign(aws_request, signer.canonical_request(aws_request)), aws_request
        )
        if not hmac.compare_digest(expected, signature):
            return _error(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided.",
            )
        return None

    def _forward_to_logs(self, request: Request) -> Reply:
        """CloudWatch Logs calls pass through here to moto, so faults can be injected on them too."""
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", int(self.s3.url.rsplit(":", 1)[1]), timeout=30)
        try:
            headers = {k: v for k, v in request.headers.items() if k not in ("host", "connection", "content-length")}
            connection.request(request.method, request.raw_path, body=request.body, headers=headers)
            answer = connection.getresponse()
            body = answer.read()
            kept = {k: v for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP}
            return Reply(answer.status, body, kept)
        finally:
            connection.close()

    def handle(self, request: Request) -> Reply:
        if request.headers.get("x-amz-target", "").startswith("Logs_"):
            return self._forward_to_logs(request)
        with self._lock:
            self.hosts.append(request.headers.get("host", ""))
        denied = self.verify_signature(request)
        if denied is not None:
            return denied
        segments = [unquote(s) for s in request.path.strip("/").split("/")]
        headers = {"x-amzn-RequestId": str(uuid.uuid4())}
        if request.method == "POST" and segments == ["run"]:
            return self._start_run(request, headers)
        if request.method == "POST" and len(segments) == 3 and segments[0] == "run" and segments[2] == "cancel":
            return self._cancel_run(segments[1], headers)
        if request.method != "GET":
            return _error(405, "ValidationException", f"{request.method} is not supported here")
        if segments == ["run"]:
            return self._list_runs(request, headers)
        if len(segments) < 2 or segments[0] != "run":
            return _error(404, "ResourceNotFoundException", f"no such API: {request.path}")
        run = self.runs.get(segments[1])
        if run is None:
            return _error(404, "ResourceNotFoundException", f"The requested run {segments[1]} was not found")
        if len(segments) == 2:
            return Reply.json(200, run.as_json(run.lifecycle.advance()), headers)
        if len(segments) == 3 and segments[2] == "task":
            return self._list_tasks(run, request, headers)
        if len(segments) == 4 and segments[2] == "task":
            task = run.tasks.get(segments[3])
            if task is None:
                return _error(404, "ResourceNotFoundException", f"The requested task {segments[3]} was not found")
            return Reply.json(200, task.as_json(task.lifecycle.advance()), headers)
        return _error(404, "ResourceNotFoundException", f"no such API: {request.path}")

    def _list_runs(self, request: Request, headers: dict[str, str]) -> Reply:
        """``ListRuns``: newest first, filtered by ``status`` / ``name``, pages of ``maxResults``.

        The filter applies to a run's status before this read; a listed run's status is then read
        as by GetRun (its lifecycle moves on, once somebody asked for it by id), so an item may
        already show the next status, as a real list can when a run moves on meanwhile.
        """
        query = request.query
        page = _page(query)
        if isinstance(page, Reply):
            return page
        start, size = page
        with self._lock:
            runs = sorted(self.runs.values(), key=lambda r: r.created, reverse=True)
        shown = []
        for run in runs:
            if query.get("name") and run.as_json("PENDING")["name"] != query["name"]:
                continue
            if query.get("status") and run.lifecycle.current() != query["status"]:
                continue
            shown.append((run, run.lifecycle.advance() if run.lifecycle.polls else run.lifecycle.current()))
        body: dict[str, Any] = {
            "items": [_run_list_item(run.as_json(status)) for run, status in shown[start : start + size]]
        }
        if start + size < len(shown):
            body["nextToken"] = str(start + size)
        return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json", **headers})

    def _list_tasks(self, run: _Run, request: Request, headers: dict[str, str]) -> Reply:
        query = request.query
        page = _page(query)
        if isinstance(page, Reply):
            return page
        start, size = page
        tasks = list(run.tasks.values())
        if query.get("status"):
            tasks = [t for t in tasks if t.lifecycle.current() == query["status"]]
        # A listed task's status is read, as by GetRunTask: its lifecycle moves on, once somebody
        # has asked for that task by id (a sensor's first check does).
        body: dict[str, Any] = {
            "items": [
                t.as_json(t.lifecycle.advance() if t.lifecycle.polls else t.lifecycle.current(), listing=True)
                for t in tasks[start : start + size]
            ]
        }
        if start + size < len(tasks):
            body["nextToken"] = str(start + size)
        return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json", **headers})

    def _start_run(self, request: Request, headers: dict[str, str]) -> Reply:
        """``StartRun``: one run per ``requestId`` (a repeated token answers with the same run)."""
        try:
            body = request.json()
        except ValueError:
            return _error(400, "ValidationException", "The request body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "ValidationException", "The request body must be a JSON object")
        for key in ("requestId", "roleArn", "outputUri"):
            if not isinstance(body.get(key), str) or not body[key]:
                return _error(400, "ValidationException", f"1 validation error detected: {key} must not be null")
        if not str(body["outputUri"]).startswith("s3://"):
            return _error(400, "ValidationException", "outputUri must be an S3 URI")
        workflow_id = body.get("workflowId")
        if workflow_id not in self.workflows:
            return _error(404, "ResourceNotFoundException", f"The requested workflow {workflow_id} was not found")
        with self._lock:
            run_id = self._run_of_request.get(body["requestId"])
            if run_id is None:
                run_id = _next_id()
                self._run_of_request[body["requestId"]] = run_id
                run = _Run(run_id, Lifecycle(list(self.start_lifecycle)), body["outputUri"], request=body)
                self.runs[run_id] = run
                self.started.append(run_id)
                fresh = True
            else:
                run, fresh = self.runs[run_id], False
            lost, self.lose_start_replies = self.lose_start_replies > 0, max(0, self.lose_start_replies - 1)
        if fresh:
            bucket, _, prefix = run.run_output_uri[len("s3://") :].partition("/")
            for key, data in self.start_outputs.items():
                self.s3.put_object(bucket, f"{prefix.rstrip('/')}/{key}".lstrip("/"), data)
        if lost:
            return _error(500, "InternalServerException", "Request processing failed")
        answer = {
            "arn": f"arn:aws:omics:{REGION}:{ACCOUNT}:run/{run_id}",
            "id": run_id,
            "uuid": run.run_uuid,
            "status": run.lifecycle.current(),
            "runOutputUri": run.run_output_uri,
            "outputUriPrefixMode": run.prefix_mode,
            "tags": body.get("tags") or {},
        }
        return Reply.json(201, answer, headers)

    def _cancel_run(self, run_id: str, headers: dict[str, str]) -> Reply:
        """``CancelRun``: a run that has not ended goes STOPPING, then CANCELLED."""
        run = self.runs.get(run_id)
        if run is None:
            return _error(404, "ResourceNotFoundException", f"The requested run {run_id} was not found")
        status = run.lifecycle.current()
        if status in _DONE:
            return _error(409, "ConflictException", f"Run {run_id} is {status} and can't be cancelled")
        with self._lock:
            run.lifecycle = Lifecycle([("STOPPING", 1), ("CANCELLED", 0)])
            run.failure_reason, run.status_message = "CANCELLED", "The run was cancelled by a user request"
            self.cancelled.append(run_id)
        return Reply(202, b"", headers)
