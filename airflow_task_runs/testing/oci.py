"""OCI AI Data Platform behind a stand-in endpoint that checks OCI request signatures with its own code.

Serves ``GET .../taskRuns/{key}``, ``POST .../taskRuns/{key}/actions/fetchOutput`` and
``GET .../mlops/api/2.0/mlflow/runs/get``, with scripted lifecycles, outputs in every
type x compression x charset combination (and a 64 MiB one), and idempotent fetchOutput
actions keyed by ``opc-retry-token``.
"""

from __future__ import annotations

import base64
import bz2
import email.utils
import gzip
import hashlib
import json
import random
import re
import threading
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from airflow_task_runs.testing.lifecycle import Lifecycle
from airflow_task_runs.testing.s3 import S3Store
from airflow_task_runs.testing.server import EmulatorServer, Reply, Request

MAX_CLOCK_SKEW_SECONDS = 5 * 60
API = "/20260430"
PLATFORM_ID = "ocid1.aidataplatform.oc1.iad.emulator"
WORKSPACE_KEY = "demo-workspace"
#: scripted runs answer under any platform id and workspace key unless given their own
ANY = "*"
TENANCY = "ocid1.tenancy.oc1..aaaaaaaaemulatortenancy"
USER = "ocid1.user.oc1..aaaaaaaaemulatoruser"
REGION = "us-ashburn-1"
BIG_SIZE = 64 * 1024 * 1024

GENERIC_HEADERS = ("date", "(request-target)", "host")
BODY_HEADERS = ("content-length", "content-type", "x-content-sha256")

_ROUTE = re.compile(
    rf"^{API}/aiDataPlatforms/(?P<platform>[^/]+)/workspaces/(?P<workspace>[^/]+)/"
    r"(?:taskRuns/(?P<task_run>[^/]+)(?P<fetch>/actions/fetchOutput)?|(?P<mlflow>mlops/api/2\.0/mlflow/runs/get))$"
)
_PARAM = re.compile(r'(\w+)="([^"]*)"')

TEXT_TYPES = ("TEXT_PLAIN", "NOTEBOOK", "TEXT_HTML", "IMAGE_SVG", "APPLICATION_JSON")
BINARY_TYPES = ("IMAGE_PNG", "IMAGE_JPEG", "APPLICATION_PDF")
COMPRESSIONS: tuple[str | None, ...] = (None, "GZIP", "DEFLATE", "COMPRESS", "BZIP2")
CHARSETS = ("UTF_8", "UTF_16")

_SAMPLE_TEXT = {
    "TEXT_PLAIN": "accuracy 0.93 · Grüße aus Köln · 東京 · ✓ done 🎉\n" * 40,
    "NOTEBOOK": json.dumps({"cells": [{"cell_type": "markdown", "source": ["# Résumé ✓"]}], "nbformat": 4}),
    "TEXT_HTML": "<html><body><h1>Rapport</h1><p>Ünïcödé → ok 🎉</p></body></html>",
    "IMAGE_SVG": '<svg xmlns="http://www.w3.org/2000/svg"><text>π≈3.14 ✓</text></svg>',
    "APPLICATION_JSON": json.dumps({"metric": "f1", "value": 0.91, "note": "naïve ✓"}, ensure_ascii=False),
}
_MAGIC = {"IMAGE_PNG": b"\x89PNG\r\n\x1a\n", "IMAGE_JPEG": b"\xff\xd8\xff\xe0", "APPLICATION_PDF": b"%PDF-1.7\n"}


def compress(content: bytes, compression: str | None, *, raw_deflate: bool = False) -> bytes:
    """The emulator's own encoders (COMPRESS via ncompress: LZW is not hand-written here either)."""
    if compression is None:
        return content
    if compression == "GZIP":
        return gzip.compress(content, mtime=0)
    if compression == "DEFLATE":
        if raw_deflate:
            obj = zlib.compressobj(wbits=-15)
            return obj.compress(content) + obj.flush()
        return zlib.compress(content)
    if compression == "BZIP2":
        return bz2.compress(content)
    if compression == "COMPRESS":
        import ncompress  # type: ignore[import-not-found,import-untyped,unused-ignore]

        return bytes(ncompress.compress(content))
    raise ValueError(f"unknown compression {compression!r}")


def encode_item(
    content: bytes,
    type_: str,
    *,
    charset: str | None = None,
    compression: str | None = None,
    is_base64: bool = True,
    length: int | str | None = "auto",
    raw_deflate: bool = False,
) -> dict[str, Any]:
    """A ``RunOutputData`` carrying ``content`` (the object's bytes); ``length`` counts those bytes."""
    if is_base64:
        value = base64.b64encode(compress(content, compression, raw_deflate=raw_deflate)).decode()
    else:
        if compression:
            raise ValueError("a compressed item must be base64")
        value = content.decode("utf-16-be" if charset == "UTF_16" else "utf-8")
    item: dict[str, Any] = {"type": type_, "isBase64": is_base64, "value": value}
    if charset:
        item["charset"] = charset
    if compression:
        item["compression"] = compression
    if length == "auto":
        item["length"] = str(len(content))
    elif length is not None:
        item["length"] = str(length)
    return item


def text_bytes(text: str, charset: str, *, bom: bool = False) -> bytes:
    if charset == "UTF_16":
        return text.encode("utf-16") if bom else text.encode("utf-16-be")
    return text.encode("utf-8")


def matrix_items() -> tuple[list[dict[str, Any]], list[bytes | None]]:
    """Every type x compression x charset (text types), plain and base64, plus references."""
    items: list[dict[str, Any]] = []
    contents: list[bytes | None] = []
    rng = random.Random(3)
    for type_ in TEXT_TYPES:
        for charset in CHARSETS:
            for n, compression in enumerate(COMPRESSIONS):
                content = text_bytes(_SAMPLE_TEXT[type_], charset, bom=n % 2 == 1)
                items.append(encode_item(content, type_, charset=charset, compression=compression))
                contents.append(content)
            content = text_bytes(_SAMPLE_TEXT[type_], charset)
            items.append(encode_item(content, type_, charset=charset, is_base64=False))
            contents.append(content)
    for type_ in BINARY_TYPES:
        for compression in COMPRESSIONS:
            content = _MAGIC[type_] + rng.randbytes(5000)
            items.append(encode_item(content, type_, compression=compression))
            contents.append(content)
    items.append(encode_item(b"", "TEXT_PLAIN", charset="UTF_8", is_base64=False, length=None))
    contents.append(b"")
    items.append({"type": "FILE_PATH", "value": "/Workspace/outputs/model.pkl", "isBase64": False})
    contents.append(None)
    items.append({"type": "NOTEBOOK_PATH", "value": "/Workspace/notebooks/train.ipynb", "isBase64": False})
    contents.append(None)
    return items, contents


def _lookup(table: dict[Any, Any], platform: str, workspace: str, *rest: str) -> Any:
    """The entry scripted for this platform and workspace, else the one scripted for any (``ANY``)."""
    found = table.get((platform, workspace, *rest))
    return found if found is not None else table.get((ANY, ANY, *rest))


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply.json(status, {"code": code, "message": message}, headers)


@dataclass
class _TaskRun:
    key: str
    lifecycle: Lifecycle
    output_key: str | None
    state_message: str | None = None
    error_trace: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def as_json(self, status: str) -> dict[str, Any]:
        ended = status not in ("PENDING", "QUEUED", "RUNNING", "BLOCKED", "CANCELING", "PAUSED_MAINTENANCE")
        return {
            "key": self.key,
            "outputKey": self.output_key,
            "taskType": self.fields.get("taskType", "NOTEBOOK_TASK"),
            "state": {
                "status": status,
                "stateMessage": self.state_message if ended else None,
                "errorTrace": self.error_trace if ended else None,
            },
            **{k: v for k, v in self.fields.items() if k != "taskType"},
        }


@dataclass
class _ExperimentRun:
    run_id: str
    lifecycle: Lifecycle
    body: dict[str, Any]


class OciEmulator(EmulatorServer):
    """The OCI AI Data Platform data plane; see the module docstring."""

    name = "oci"
    conn_id = "oci_default"
    tenancy = TENANCY
    user = USER

    def __init__(self, s3: S3Store) -> None:
        super().__init__()
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.s3 = s3
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self.public_key = key.public_key()
        der = self.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        digest = hashlib.md5(der, usedforsecurity=False).hexdigest()
        self.fingerprint = ":".join(digest[i : i + 2] for i in range(0, 32, 2))
        self.clock_skew_seconds = MAX_CLOCK_SKEW_SECONDS
        self.task_runs: dict[tuple[str, str, str], _TaskRun] = {}
        self.experiment_runs: dict[tuple[str, str, str], _ExperimentRun] = {}
        #: (platform, workspace, task run key, output key) -> TaskRunOutput JSON bytes, or a builder
        self.outputs: dict[tuple[str, str, str, str], Any] = {}
        #: expected object bytes of each output's items (None for references), for tests
        self.output_contents: dict[str, list[bytes | None]] = {}
        #: fetchOutput actions actually run, per opc-retry-token ("" for none)
        self.fetch_actions: Counter[str] = Counter()
        self._replies_by_token: dict[str, Reply] = {}
        self._fail_after_action = 0
        self._build_lock = threading.Lock()
        self.big_sha256: str | None = None

    # -- scripting ---------------------------------------------------------------------------
    def add_task_run(
        self,
        key: str | None = None,
        *,
        lifecycle: list[tuple[str, int] | str] | None = None,
        output_key: str | None = "output",
        state_message: str | None = None,
        error_trace: str | None = None,
        platform: str = ANY,
        workspace: str = ANY,
        **fields: Any,
    ) -> str:
        key = key or f"tr-{uuid.uuid4().hex[:12]}"
        steps = lifecycle or [("PENDING", 1), ("RUNNING", 1), ("SUCCESS", 0)]
        self.task_runs[(platform, workspace, key)] = _TaskRun(
            key, Lifecycle(steps), output_key, state_message, error_trace, fields
        )
        return key

    def set_output(
        self,
        task_run_key: str,
        output_key: str,
        items: list[dict[str, Any]],
        *,
        parameters: dict[str, Any] | None = None,
        is_truncated: bool = False,
        error_trace: str | None = None,
        contents: list[bytes | None] | None = None,
        platform: str = ANY,
        workspace: str = ANY,
        raw: bytes | None = None,
    ) -> None:
        """Serve ``items`` for this output; ``raw`` replaces the whole body (for malformed cases)."""
        body = raw
        if body is None:
            body = json.dumps(
                {
                    "key": output_key,
                    "taskType": "NOTEBOOK_TASK",
                    "isTruncated": is_truncated,
                    "errorTrace": error_trace,
                    "data": items,
                    "outputParameters": [{"name": k, "value": v} for k, v in (parameters or {}).items()],
                    "version": "1",
                }
            ).encode()
        self.outputs[(platform, workspace, task_run_key, output_key)] = body
        if contents is not None:
            self.output_contents[f"{task_run_key}/{output_key}"] = contents

    def add_experiment_run(
        self,
        run_id: str | None = None,
        *,
        lifecycle: list[tuple[str, int] | str] | None = None,
        metrics: dict[str, float] | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        platform: str = ANY,
        workspace: str = ANY,
        **info: Any,
    ) -> str:
        run_id = run_id or uuid.uuid4().hex
        steps = lifecycle or [("SCHEDULED", 1), ("RUNNING", 1), ("FINISHED", 0)]
        body = {
            "info": {
                "run_id": run_id,
                "run_uuid": run_id,
                "run_name": info.pop("run_name", f"run-{run_id[:8]}"),
                "experiment_id": info.pop("experiment_id", "1"),
                "user_id": "emulator@example.com",
                "lifecycle_stage": "active",
                "artifact_uri": f"oci://mlflow-artifacts@emulator/1/{run_id}/artifacts",
                "start_time": 1767225600000,
                **info,
            },
            "data": {
                "metrics": [
                    {"key": k, "value": v, "step": 0, "timestamp": 1767225660000} for k, v in (metrics or {}).items()
                ],
                "params": [{"key": k, "value": v} for k, v in (params or {}).items()],
                "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
            },
            "inputs": {
                "dataset_inputs": [
                    {
                        "dataset": {
                            "name": "train",
                            "digest": "d41d8cd9",
                            "source_type": "oci_object_storage",
                            "source": "oci://data@ns/train.parquet",
                            "schema": '{"mlflow_colspec": []}',
                        },
                        "tags": [{"key": "mlflow.data.context", "value": "training"}],
                    }
                ],
                "model_inputs": [],
            },
            "outputs": {"model_outputs": [{"model_id": f"m-{run_id[:8]}", "step": 0}]},
        }
        self.experiment_runs[(platform, workspace, run_id)] = _ExperimentRun(run_id, Lifecycle(steps), body)
        return run_id

    def fail_next_fetch_after_action(self, times: int = 1) -> None:
        """Run the next fetchOutput action(s), then answer 503 as if the reply was lost."""
        self._fail_after_action = times

    def reset_actions(self) -> None:
        self.fetch_actions.clear()
        self._replies_by_token.clear()

    def seed_demo(self) -> None:
        """The runs the example DAG asks for by default, plus the matrix and the 64 MiB output."""
        self.add_task_run(
            "demo-task-run",
            lifecycle=[("PENDING", 1), ("QUEUED", 1), ("RUNNING", self.demo_running_polls), ("SUCCESS", 0)],
            output_key="demo-output",
        )
        report = "Training finished.\nrows: 120000\naccuracy: 0.931\n"
        html = "<html><body><h1>Model report</h1><p>accuracy 0.931 ✓</p></body></html>"
        png = _MAGIC["IMAGE_PNG"] + random.Random(7).randbytes(2048)
        summary = json.dumps({"accuracy": 0.931, "rows": 120000}).encode()
        items = [
            encode_item(report.encode(), "TEXT_PLAIN", charset="UTF_8", compression="GZIP"),
            encode_item(html.encode("utf-16-be"), "TEXT_HTML", charset="UTF_16", compression="DEFLATE"),
            encode_item(png, "IMAGE_PNG"),
            encode_item(summary, "APPLICATION_JSON", charset="UTF_8", is_base64=False),
            {"type": "FILE_PATH", "value": "/Workspace/outputs/model.pkl", "isBase64": False},
        ]
        self.set_output(
            "demo-task-run",
            "demo-output",
            items,
            parameters={"accuracy": "0.931", "model_path": "/Workspace/outputs/model.pkl"},
            contents=[report.encode(), html.encode("utf-16-be"), png, summary, None],
        )
        self.add_experiment_run(
            "demo-mlflow-run",
            lifecycle=[("SCHEDULED", 1), ("RUNNING", 2), ("FINISHED", 0)],
            run_name="demo-training",
            metrics={"accuracy": 0.931, "loss": 0.187},
            params={"learning_rate": "0.01", "epochs": "20"},
            tags={"mlflow.user": "demo"},
        )
        self.add_task_run("matrix-task-run", lifecycle=[("SUCCESS", 0)], output_key="matrix")
        items, contents = matrix_items()
        self.set_output("matrix-task-run", "matrix", items, parameters={"items": str(len(items))}, contents=contents)
        self.add_task_run("big-task-run", lifecycle=[("SUCCESS", 0)], output_key="big")
        self.outputs[(PLATFORM_ID, WORKSPACE_KEY, "big-task-run", "big")] = self._build_big

    def _build_big(self) -> bytes:
        """64 MiB of binary (base64, ~85 MiB of JSON), built on first use and kept."""
        with self._build_lock:
            cached = self.outputs.get((PLATFORM_ID, WORKSPACE_KEY, "big-task-run", "big"))
            if isinstance(cached, bytes):
                return cached
            content = _MAGIC["IMAGE_PNG"] + random.Random(64).randbytes(BIG_SIZE - len(_MAGIC["IMAGE_PNG"]))
            self.big_sha256 = hashlib.sha256(content).hexdigest()
            item = encode_item(content, "IMAGE_PNG")
            del content
            body = json.dumps(
                {"key": "big", "taskType": "PYTHON_TASK", "isTruncated": False, "data": [item], "outputParameters": []}
            ).encode()
            self.outputs[(PLATFORM_ID, WORKSPACE_KEY, "big-task-run", "big")] = body
            return body

    # -- Airflow connection ------------------------------------------------------------------
    def airflow_connection(self) -> dict[str, Any]:
        return {
            "conn_type": "oci",
            "login": self.user,
            "password": self.private_key_pem,
            "extra": {
                "tenancy": self.tenancy,
                "fingerprint": self.fingerprint,
                "region": REGION,
                "endpoint": self.url,
                "retry_backoff_initial": 0.05,
                "retry_backoff_max": 0.2,
            },
        }

    # -- signature ---------------------------------------------------------------------------
    def verify_signature(self, request: Request) -> Reply | None:
        """OCI's check, written from Oracle's "Request Signatures" page, independent of the client."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        def denied(why: str) -> Reply:
            return _error(
                401,
                "NotAuthenticated",
                f"The required information to complete authentication was not provided or was incorrect: {why}",
            )

        auth = request.headers.get("authorization", "")
        if not auth.startswith("Signature "):
            return denied("no Signature authorization header")
        params = dict(_PARAM.findall(auth))
        if params.get("version") != "1" or params.get("algorithm") != "rsa-sha256":
            return denied("version must be 1 and algorithm rsa-sha256")
        if params.get("keyId") != f"{self.tenancy}/{self.user}/{self.fingerprint}":
            return denied("unknown keyId")
        signed = tuple(params.get("headers", "").split())
        required = GENERIC_HEADERS + (BODY_HEADERS if request.method in ("POST", "PUT", "PATCH") else ())
        missing = [name for name in required if name not in signed]
        if missing:
            return denied(f"headers not signed: {' '.join(missing)}")
        for name in signed:
            if name != "(request-target)" and name not in request.headers:
                return denied(f"signed header {name} is absent")
        try:
            sent = email.utils.parsedate_to_datetime(request.headers["date"]).timestamp()
        except (TypeError, ValueError):
            return denied("date is not an HTTP date")
        if abs(time.time() - sent) > self.clock_skew_seconds:
            return denied("date is more than 5 minutes off (clock skew)")
        if "content-length" in signed and request.headers["content-length"] != str(len(request.body)):
            return denied("content-length does not match the body")
        if "x-content-sha256" in signed:
            digest = base64.b64encode(hashlib.sha256(request.body).digest()).decode()
            if request.headers["x-content-sha256"] != digest:
                return denied("x-content-sha256 does not match the body")
        lines = [
            f"(request-target): {request.method.lower()} {request.raw_path}"
            if name == "(request-target)"
            else f"{name}: {request.headers[name]}"
            for name in signed
        ]
        try:
            self.public_key.verify(
                base64.b64decode(params.get("signature", "")),
                "\n".join(lines).encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, ValueError):
            return denied("signature mismatch")
        return None

    # -- the API -----------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        client_id = request.headers.get("opc-request-id") or uuid.uuid4().hex.upper()
        rid = {"opc-request-id": f"{client_id}/{uuid.uuid4().hex[:16].upper()}"}
        denied = self.verify_signature(request)
        if denied is not None:
            denied.headers.update(rid)
            return denied
        match = _ROUTE.match(request.path)
        if match is None:
            return _error(404, "NotAuthorizedOrNotFound", f"no such API: {request.path}", rid)
        platform, workspace = unquote(match["platform"]), unquote(match["workspace"])
        if match["mlflow"]:
            if request.method != "GET":
                return _error(405, "MethodNotAllowed", "runs/get is GET", rid)
            run_id = request.query.get("run_id")
            if not run_id:
                return _error(400, "InvalidParameter", "run_id is required", rid)
            run = _lookup(self.experiment_runs, platform, workspace, run_id)
            if run is None:
                return _error(404, "NotAuthorizedOrNotFound", f"run {run_id} not found", rid)
            status = run.lifecycle.advance()
            info = {**run.body["info"], "status": status}
            if status in ("FINISHED", "FAILED", "KILLED", "INTERNAL_ERROR"):
                info.setdefault("end_time", 1767229200000)
            return Reply.json(200, {"run": {**run.body, "info": info}}, rid)
        key = unquote(match["task_run"])
        task_run = _lookup(self.task_runs, platform, workspace, key)
        if task_run is None:
            return _error(404, "NotAuthorizedOrNotFound", f"task run {key} not found in workspace {workspace}", rid)
        if not match["fetch"]:
            if request.method != "GET":
                return _error(405, "MethodNotAllowed", "taskRuns/{key} is GET", rid)
            return Reply.json(200, task_run.as_json(task_run.lifecycle.advance()), rid)
        if request.method != "POST":
            return _error(405, "MethodNotAllowed", "fetchOutput is POST", rid)
        return self._fetch_output(request, platform, workspace, key, rid)

    def _fetch_output(self, request: Request, platform: str, workspace: str, key: str, rid: dict[str, str]) -> Reply:
        token = request.headers.get("opc-retry-token", "")
        with self._lock:
            cached = self._replies_by_token.get(token) if token else None
        if cached is not None:
            return Reply(cached.status, cached.body, {**cached.headers, **rid})
        try:
            output_key = request.json()["outputKey"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "InvalidParameter", 'body must be {"outputKey": "..."}', rid)
        if not isinstance(output_key, str) or not 1 <= len(output_key) <= 100:
            return _error(400, "InvalidParameter", "outputKey must be 1 to 100 characters", rid)
        body = _lookup(self.outputs, platform, workspace, key, output_key)
        if body is None:
            return _error(404, "NotAuthorizedOrNotFound", f"output {output_key} of task run {key} not found", rid)
        if callable(body):
            body = body()
        reply = Reply(200, body, {"Content-Type": "application/json"})
        with self._lock:
            self.fetch_actions[token] += 1
            if token:
                self._replies_by_token[token] = reply
            lose = self._fail_after_action > 0
            if lose:
                self._fail_after_action -= 1
        if lose:
            return _error(503, "ServiceUnavailable", "the action ran but the reply was lost", rid)
        return Reply(200, body, {"Content-Type": "application/json", **rid})
