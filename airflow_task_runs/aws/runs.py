"""HealthOmics ``StartRun`` input, checked before any call, and ``outputUriPrefixMode`` on older botocore.

Field names, enums and bounds are botocore's ``omics`` service model (``StartRunRequest``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

WORKFLOW_TYPES = ("PRIVATE", "READY2RUN")
STORAGE_TYPES = ("STATIC", "DYNAMIC")
OUTPUT_URI_PREFIX_MODES = ("SERVICE_DEFINED", "NONE_WITH_OVERWRITE")
_NUMERIC_ID = re.compile(r"^[0-9]{1,18}$")
#: StartRun fields the operator sets through its own parameters (``start_run_kwargs`` may not repeat them)
OWN_FIELDS = frozenset(
    {
        "workflowId",
        "workflowType",
        "roleArn",
        "outputUri",
        "parameters",
        "runGroupId",
        "priority",
        "storageType",
        "storageCapacity",
        "tags",
        "name",
        "outputUriPrefixMode",
        "requestId",
    }
)
PREFIX_MODE = "outputUriPrefixMode"


def _fail(field: str, problem: str) -> ValueError:
    return ValueError(f"HealthOmics StartRun: {field} {problem}")


def _numeric_id(field: str, value: Any) -> str:
    text = str(value).strip()
    if not _NUMERIC_ID.match(text):
        raise _fail(field, f"is {value!r}; HealthOmics ids are 1-18 digits (the number in the ARN, not the uuid)")
    return text


def _bounded_int(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise _fail(field, f"is {value!r}; it must be a whole number from {low} to {high}")
    number = int(value)
    if not low <= number <= high:
        raise _fail(field, f"is {number}; it must be from {low} to {high}")
    return number


def _choice(field: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _fail(field, f"is {value!r}; use one of {', '.join(choices)}")
    return str(value)


def _mapping(field: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):  # a templated JSON object renders as text
        try:
            value = json.loads(value)
        except ValueError:
            raise _fail(field, "is text that is not a JSON object") from None
    if not isinstance(value, Mapping):
        raise _fail(field, f"must be a dict (JSON object), got {type(value).__name__}")
    return dict(value)


def start_run_request(
    *,
    request_id: str,
    role_arn: str | None,
    output_uri: str | None,
    workflow_id: str | None = None,
    workflow_type: str | None = None,
    parameters: Mapping[str, Any] | str | None = None,
    run_group_id: str | None = None,
    priority: int | None = None,
    storage_type: str | None = None,
    storage_capacity: int | None = None,
    tags: Mapping[str, str] | str | None = None,
    name: str | None = None,
    output_uri_prefix_mode: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``StartRun`` keyword arguments; a missing or malformed field fails here, naming it.

    ``extra`` adds StartRun fields by their API names (``workflowVersionName``, ``cacheId``,
    ``logLevel``, ``retentionMode``, ``runId`` to duplicate a run, ...).
    """
    extra = dict(extra or {})
    if not role_arn or not str(role_arn).strip():
        raise _fail("role_arn", "is missing: pass the ARN of the IAM service role HealthOmics runs the workflow as")
    if not str(role_arn).startswith("arn:"):
        raise _fail("role_arn", f"is {role_arn!r}, not an ARN (arn:aws:iam::<account>:role/<name>)")
    if not output_uri or not str(output_uri).strip():
        raise _fail("output_uri", "is missing: pass the s3:// URI the run writes its outputs under")
    if not str(output_uri).startswith("s3://") or len(str(output_uri)) > 750:
        raise _fail("output_uri", f"is {output_uri!r}; it must be an s3:// URI of at most 750 characters")
    if not workflow_id and not extra.get("runId"):
        raise _fail(
            "workflow_id", "is missing: pass the workflow's id (or runId in start_run_kwargs to duplicate a run)"
        )
    clash = OWN_FIELDS & set(extra)
    if clash:
        raise _fail(
            "start_run_kwargs", f"repeats {', '.join(sorted(clash))}: set those through the operator's parameters"
        )
    request: dict[str, Any] = {"requestId": request_id, "roleArn": str(role_arn), "outputUri": str(output_uri)}
    if workflow_id:
        request["workflowId"] = _numeric_id("workflow_id", workflow_id)
    if workflow_type is not None:
        request["workflowType"] = _choice("workflow_type", workflow_type, WORKFLOW_TYPES)
    if parameters is not None:
        request["parameters"] = _mapping("parameters", parameters)
    if run_group_id:
        request["runGroupId"] = _numeric_id("run_group_id", run_group_id)
    if priority is not None:
        request["priority"] = _bounded_int("priority", priority, 0, 100000)
    if storage_type is not None:
        request["storageType"] = _choice("storage_type", storage_type, STORAGE_TYPES)
    if storage_capacity is not None:
        request["storageCapacity"] = _bounded_int("storage_capacity", storage_capacity, 0, 100000)
    if tags is not None:
        request["tags"] = {str(k): str(v) for k, v in _mapping("tags", tags).items()}
    if name is not None:
        if not str(name).strip() or len(str(name)) > 128:
            raise _fail("name", f"is {name!r}; a run name is 1-128 characters")
        request["name"] = str(name)
    if output_uri_prefix_mode is not None:
        request[PREFIX_MODE] = _choice("output_uri_prefix_mode", output_uri_prefix_mode, OUTPUT_URI_PREFIX_MODES)
    request.update(extra)
    return request


# -- outputUriPrefixMode on a botocore that does not model it ----------------------------------
# botocore models outputUriPrefixMode from 1.44; aiobotocore (the amazon provider's async client)
# still pins botocore below that. Until it moves, the field is carried through botocore's own
# event hooks: taken out of the parameters before validation, written into the JSON body before
# the request is signed, and read back from GetRun/StartRun answers, which botocore's parser
# would otherwise drop.
_CONTEXT_KEY = "airflow_task_runs_output_uri_prefix_mode"


def _take_prefix_mode(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    if PREFIX_MODE in params:
        context[_CONTEXT_KEY] = params.pop(PREFIX_MODE)


def _write_prefix_mode(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    mode = context.get(_CONTEXT_KEY)
    if mode is not None:
        body = json.loads(params.get("body") or b"{}")
        body[PREFIX_MODE] = mode
        params["body"] = json.dumps(body).encode()


def _read_prefix_mode(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    body = response_dict.get("body")
    if not body or response_dict.get("status_code", 500) >= 300:
        return
    from airflow_task_runs.core import bounded_json

    try:
        parsed = bounded_json.loads(body)  # a hostile depth is refused by the guard's check right after
    except (TypeError, ValueError):
        return
    if isinstance(parsed, dict) and isinstance(parsed.get(PREFIX_MODE), str):
        customized_response_dict[PREFIX_MODE] = parsed[PREFIX_MODE]


def support_output_uri_prefix_mode(client: Any) -> Any:
    """Teach an ``omics`` client (boto3 or aiobotocore) ``outputUriPrefixMode`` if its model lacks it."""
    model = client.meta.service_model
    if PREFIX_MODE in model.operation_model("StartRun").input_shape.members:
        return client
    events = client.meta.events
    events.register("before-parameter-build.omics.StartRun", _take_prefix_mode, unique_id=_CONTEXT_KEY + "-take")
    events.register("before-call.omics.StartRun", _write_prefix_mode, unique_id=_CONTEXT_KEY + "-write")
    for operation in ("StartRun", "GetRun"):
        events.register(f"before-parse.omics.{operation}", _read_prefix_mode, unique_id=f"{_CONTEXT_KEY}-{operation}")
    return client
