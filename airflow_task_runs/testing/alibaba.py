"""Alibaba Cloud ROS ``GetAITask`` behind a stand-in endpoint that checks V3 signatures with its own code.

RPC style, as ROS speaks it: ``POST /?OutputOption=..&TaskId=..`` (GET works too) with
``x-acs-action: GetAITask`` and ``x-acs-version: 2019-09-10``. The ``ACS3-HMAC-SHA256``
check is written here from Alibaba's specification, independently of the client's signer:
the canonical request is rebuilt from the request as received. It rejects a bad signature,
a reused nonce and an ``x-acs-date`` more than 15 minutes off, with Alibaba's error shape
``{"Code", "Message", "RequestId", "HostId"}``. Scripted lifecycles for GenerateTemplate and
FixTemplate tasks, 200-with-error-body answers, ``Throttling.User`` and large outputs.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from airflow_task_runs.testing.lifecycle import Lifecycle
from airflow_task_runs.testing.s3 import S3Store
from airflow_task_runs.testing.server import EmulatorServer, Fault, Reply, Request

MAX_DATE_SKEW_SECONDS = 15 * 60
API_VERSION = "2019-09-10"
REGION = "cn-hangzhou"
HOST_ID = "ros.aliyuncs.com"
TASK_TYPES = ("GenerateTemplate", "FixTemplate")
DEFAULT_LIFECYCLES: dict[str, list[tuple[str, int] | str]] = {
    "GenerateTemplate": [("PENDING", 1), ("RUNNING", 2), ("SUCCESS", 0)],
    "FixTemplate": [("WAITING", 1), ("RUNNING", 1), ("SUCCESS", 0)],
}


def _template(description: str, resources: int = 1) -> dict[str, Any]:
    """A ROS template in the shape ROS generates (``ROSTemplateFormatVersion`` 2015-09-01)."""
    body: dict[str, Any] = {
        "ROSTemplateFormatVersion": "2015-09-01",
        "Description": description,
        "Parameters": {"ZoneId": {"Type": "String", "AssociationProperty": "ALIYUN::ECS::ZoneId"}},
        "Resources": {},
        "Outputs": {"VpcId": {"Value": {"Fn::GetAtt": ["Vpc0", "VpcId"]}}},
    }
    for i in range(resources):
        body["Resources"][f"Vpc{i}"] = {
            "Type": "ALIYUN::ECS::VPC",
            "Properties": {"CidrBlock": f"10.{i % 256}.0.0/16", "VpcName": f"vpc-{i}-ünïcode-✓"},
        }
    return body


def large_output(size: int) -> dict[str, Any]:
    """A TaskOutput whose JSON is at least ``size`` bytes (a template with many resources)."""
    one = len(json.dumps(_template("x", 1)["Resources"]["Vpc0"])) + 12
    return {"Result": _template("large generated template", max(1, size // one + 1))}


@dataclass
class _Task:
    task_id: str
    task_type: str
    lifecycle: Lifecycle
    status_reason: str | None = None
    output: Any = None
    body_error: tuple[str, str, Any] | None = None  # (Code, Message, Success as sent)
    fields: dict[str, Any] = field(default_factory=dict)


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def _error(status: int, code: str, message: str, request_id: str | None = None) -> Reply:
    rid = request_id or _request_id()
    return Reply.json(
        status,
        {"RequestId": rid, "HostId": HOST_ID, "Code": code, "Message": message},
        {"x-acs-request-id": rid},
    )


def _rfc3986(text: str) -> str:
    return quote(text, safe="-_.~")


class RosEmulator(EmulatorServer):
    """``GetAITask`` with V3 signature checks; ``add_task`` scripts a task."""

    name = "alibaba"
    conn_id = "alibaba_ros_default"
    access_key_id = "LTAIEMULATORACCESSKEY"
    access_key_secret = "alibaba-emulator-secret-0123456789abcdef"
    #: STS credentials: this key pair is only valid with ``sts_token``
    sts_access_key_id = "STS.EMULATORSTSKEY"
    sts_access_key_secret = "alibaba-emulator-sts-secret-9876543210"
    sts_token = "CAIS-emulator-security-token-0123456789"

    def __init__(self, s3: S3Store) -> None:
        super().__init__()
        self.s3 = s3  # unused: ROS returns TaskOutput inline
        self.tasks: dict[str, _Task] = {}
        self.max_date_skew = MAX_DATE_SKEW_SECONDS
        self._nonces: dict[str, float] = {}
        self._nonce_lock = threading.Lock()

    # -- scripting ---------------------------------------------------------------------------
    def add_task(
        self,
        task_id: str | None = None,
        *,
        task_type: str = "GenerateTemplate",
        lifecycle: list[tuple[str, int] | str] | None = None,
        status_reason: str | None = None,
        output: Any = None,
        output_size: int | None = None,
        body_error: tuple[str, str] | tuple[str, str, Any] | None = None,
        **fields: Any,
    ) -> str:
        """Script an AI task; returns its id.

        ``output`` is its TaskOutput (default: ``{"Result": <a ROS template>}``), or
        ``output_size`` bytes of it. ``body_error=(Code, Message[, Success])`` makes every
        GetAITask for it answer HTTP 200 with an error body (``Success`` "false" by default).
        """
        if task_type not in TASK_TYPES:
            raise ValueError(f"task_type must be one of {TASK_TYPES}")
        task_id = task_id or f"t-{uuid.uuid4().hex[:16]}"
        if output is None:
            output = (
                large_output(output_size)
                if output_size
                else {"Result": _template(f"{task_type} by the emulator for {task_id}")}
            )
        error = None
        if body_error is not None:
            error = (body_error[0], body_error[1], body_error[2] if len(body_error) > 2 else "false")
        self.tasks[task_id] = _Task(
            task_id,
            task_type,
            Lifecycle(lifecycle or DEFAULT_LIFECYCLES[task_type]),
            status_reason,
            output,
            error,
            fields,
        )
        return task_id

    def throttle(self, times: int = 1) -> Fault:
        """The next ``times`` requests answer HTTP 400 ``Throttling.User``, as ROS does under flow control."""
        body = {
            "RequestId": _request_id(),
            "HostId": HOST_ID,
            "Code": "Throttling.User",
            "Message": "Request was denied due to user flow control.",
        }
        return self.inject("status", times, status=400, body=json.dumps(body).encode())

    def requests_for(self, task_id: str) -> list[Request]:
        """GetAITask requests that asked for ``task_id``, oldest first."""
        with self._lock:
            return [r for r in self.requests if _query(r).get("TaskId") == task_id]

    def seed_demo(self) -> None:
        """The tasks the example DAG asks for by default."""
        self.add_task(
            "t-demo-generate-template",
            task_type="GenerateTemplate",
            lifecycle=[("PENDING", 1), ("WAITING", 1), ("RUNNING", self.demo_running_polls), ("SUCCESS", 0)],
        )
        self.add_task(
            "t-demo-fix-template",
            task_type="FixTemplate",
            lifecycle=[("WAITING", 1), ("RUNNING", self.demo_running_polls), ("SUCCESS", 0)],
            output={"Result": _template("fixed: VpcName must be 2-128 characters", 2)},
        )

    # -- Airflow connection ------------------------------------------------------------------
    def airflow_connection(self) -> dict[str, Any]:
        return {
            "conn_type": "alibaba_ros",
            "login": self.access_key_id,
            "password": self.access_key_secret,
            "extra": {
                "region_id": REGION,
                "endpoint": self.url,
                "retry_backoff_initial": 0.05,
                "retry_backoff_max": 0.2,
            },
        }

    # -- the signature check ------------------------------------------------------------------
    def _secret_for(self, access_key_id: str, request: Request) -> tuple[str | None, Reply | None]:
        if access_key_id == self.access_key_id:
            return self.access_key_secret, None
        if access_key_id == self.sts_access_key_id:
            token = request.headers.get("x-acs-security-token")
            if not token:
                return None, _error(400, "MissingSecurityToken", "SecurityToken is mandatory for this action.")
            if token != self.sts_token:
                return None, _error(400, "InvalidSecurityToken.Malformed", "Specified SecurityToken is malformed.")
            return self.sts_access_key_secret, None
        return None, _error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")

    def verify_signature(self, request: Request) -> Reply | None:
        """ACS3-HMAC-SHA256 as Alibaba's spec defines it, recomputed from the received request."""
        headers = request.headers
        auth = headers.get("authorization", "")
        algorithm, _, rest = auth.partition(" ")
        if algorithm != "ACS3-HMAC-SHA256":
            return _error(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.")
        parts = dict(p.strip().partition("=")[::2] for p in rest.split(","))
        credential, signed, claimed = parts.get("Credential"), parts.get("SignedHeaders"), parts.get("Signature")
        if not (credential and signed and claimed):
            return _error(400, "IncompleteSignature", "Authorization needs Credential, SignedHeaders and Signature.")
        secret, denied = self._secret_for(credential, request)
        if denied is not None or secret is None:
            return denied or _error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        for name in ("x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256", "x-acs-action", "x-acs-version"):
            if not headers.get(name):
                return _error(400, "MissingParameter", f"The input parameter {name} that is mandatory is not supplied.")
        signed_names = signed.split(";")
        required = {"host"} | {n for n in headers if n.startswith("x-acs-") or n == "content-type"}
        if missing := sorted(required - set(signed_names)):
            return _error(400, "IncompleteSignature", f"These headers are sent but not signed: {', '.join(missing)}.")
        if signed_names != sorted(signed_names) or any(n not in headers for n in signed_names):
            return _error(400, "IncompleteSignature", "SignedHeaders must list sent headers, sorted, lower case.")
        payload_hash = hashlib.sha256(request.body).hexdigest()
        if headers["x-acs-content-sha256"] != payload_hash:
            return _error(400, "SignatureDoesNotMatch", "x-acs-content-sha256 does not match the request body.")
        try:
            sent_at = calendar.timegm(time.strptime(headers["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ"))
        except ValueError:
            return _error(400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.")
        if abs(time.time() - sent_at) > self.max_date_skew:
            return _error(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        split = urlsplit(request.raw_path)
        pairs = []
        for part in split.query.split("&"):
            if part:
                key, _, value = part.partition("=")
                pairs.append((_rfc3986(unquote(key)), _rfc3986(unquote(value))))
        query = "&".join(f"{k}={v}" for k, v in sorted(pairs))
        canonical_headers = "".join(f"{n}:{headers[n].strip()}\n" for n in signed_names)
        canonical = "\n".join(
            [request.method, split.path or "/", query, canonical_headers, signed, headers["x-acs-content-sha256"]]
        )
        to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, claimed):
            return _error(
                400,
                "SignatureDoesNotMatch",
                f"Specified signature is not matched with our calculation. server string to sign is:{to_sign}",
            )
        nonce = headers["x-acs-signature-nonce"]
        now = time.time()
        with self._nonce_lock:
            for old in [n for n, seen in self._nonces.items() if now - seen > 2 * self.max_date_skew]:
                del self._nonces[old]
            if nonce in self._nonces:
                return _error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
            self._nonces[nonce] = now
        return None

    # -- the API -----------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        denied = self.verify_signature(request)
        if denied is not None:
            return denied
        if request.method not in ("GET", "POST") or urlsplit(request.raw_path).path != "/":
            return _error(
                404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."
            )
        action, version = request.headers["x-acs-action"], request.headers["x-acs-version"]
        if version != API_VERSION:
            return _error(400, "InvalidVersion", f"Specified parameter Version {version} is not valid.")
        if action != "GetAITask":
            return _error(404, "InvalidAction.NotFound", f"Specified api {action} is not found.")
        query = _query(request)
        task_id = query.get("TaskId")
        option = query.get("OutputOption", "Disabled")
        if option not in ("Enabled", "Disabled"):
            return _error(400, "InvalidParameter", f"OutputOption {option} is not valid: Enabled or Disabled.")
        rid = _request_id()
        task = self.tasks.get(task_id or "")
        if task is None:
            return _error(404, "TaskNotFound", f"The AI task ({task_id}) could not be found.", rid)
        if task.body_error is not None:
            code, message, success = task.body_error
            return Reply.json(
                200,
                {"RequestId": rid, "Code": code, "Message": message, "HttpStatusCode": 403, "Success": success},
                {"x-acs-request-id": rid},
            )
        status = task.lifecycle.advance()
        body: dict[str, Any] = {
            "RequestId": rid,
            "TaskId": task.task_id,
            "TaskType": task.task_type,
            "Status": status,
            **task.fields,
        }
        if status == "FAILURE":
            body["StatusReason"] = task.status_reason or "Handler execution unexpected failure"
        elif task.status_reason:
            body["StatusReason"] = task.status_reason
        if option == "Enabled" and status == "SUCCESS":
            body["TaskOutput"] = task.output
        return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json", "x-acs-request-id": rid})


def _query(request: Request) -> dict[str, str]:
    """The query as ROS reads it: percent-decoded (``+`` is a literal plus, not a space)."""
    out: dict[str, str] = {}
    for part in urlsplit(request.raw_path).query.split("&"):
        if part:
            key, _, value = part.partition("=")
            out[unquote(key)] = unquote(value)
    return out
