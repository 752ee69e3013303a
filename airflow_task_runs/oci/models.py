"""OCI AI Data Platform JSON, field names exactly as on the wire.

Enumerations (``taskType``, ``type``, ``charset``, ``compression``, statuses) are plain
strings: Oracle adds values, and a value this provider does not know must not break parsing.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from airflow_task_runs.core.models import ApiModel

# ``request_id`` on every model is the ``opc-request-id`` of the response it came from.


# -- task runs ---------------------------------------------------------------------------------
class TaskRunState(ApiModel):
    status: str | None = None
    stateMessage: str | None = None
    errorTrace: str | None = None


class TaskRun(ApiModel):
    key: str | None = None
    outputKey: str | None = None
    state: TaskRunState = Field(default_factory=TaskRunState)


class OutputParameter(ApiModel):
    name: str
    value: Any = None


class RunOutputData(ApiModel):
    type: str | None = None
    #: size in bytes, sent as a string (see operators.decode_item for which bytes it counts)
    length: str | int | None = None
    charset: str | None = None
    isBase64: bool = False
    compression: str | None = None
    value: str | None = None


class TaskRunOutput(ApiModel):
    key: str | None = None
    taskType: str | None = None
    isTruncated: bool = False
    errorTrace: str | None = None
    data: list[RunOutputData] = Field(default_factory=list)
    outputParameters: list[OutputParameter] = Field(default_factory=list)
    version: str | int | None = None


# -- MLflow experiment runs ----------------------------------------------------------------
class ExperimentRunInfo(ApiModel):
    artifact_uri: str | None = None
    end_time: int | None = None
    experiment_id: str | None = None
    lifecycle_stage: str | None = None
    run_id: str | None = None
    run_name: str | None = None
    run_uuid: str | None = None
    start_time: int | None = None
    status: str | None = None
    user_id: str | None = None


class ExperimentRunMetric(ApiModel):
    key: str
    value: float | None = None
    step: int | None = None
    timestamp: int | None = None


class KeyValue(ApiModel):
    key: str
    value: str | None = None


class ExperimentRunData(ApiModel):
    metrics: list[ExperimentRunMetric] = Field(default_factory=list)
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class Dataset(ApiModel):
    digest: str | None = None
    name: str | None = None
    profile: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    source: str | None = None
    source_type: str | None = None


class DatasetInput(ApiModel):
    dataset: Dataset
    tags: list[KeyValue] = Field(default_factory=list)


class ModelInput(ApiModel):
    model_id: str


class ModelOutput(ApiModel):
    model_id: str
    step: int | None = None


class ExperimentRunInputs(ApiModel):
    dataset_inputs: list[DatasetInput] = Field(default_factory=list)
    model_inputs: list[ModelInput] = Field(default_factory=list)


class ExperimentRunOutputs(ApiModel):
    model_outputs: list[ModelOutput] = Field(default_factory=list)


class ExperimentRun(ApiModel):
    info: ExperimentRunInfo = Field(default_factory=ExperimentRunInfo)
    data: ExperimentRunData = Field(default_factory=ExperimentRunData)
    inputs: ExperimentRunInputs = Field(default_factory=ExperimentRunInputs)
    outputs: ExperimentRunOutputs = Field(default_factory=ExperimentRunOutputs)

    def to_xcom(self) -> dict[str, Any]:
        """Info, metrics/params/tags as dicts (plus the metric list with steps), inputs, outputs."""
        return {
            "info": self.info.model_dump(mode="json"),
            "metrics": {m.key: m.value for m in self.data.metrics},
            "metric_history": [m.model_dump(mode="json") for m in self.data.metrics],
            "params": {p.key: p.value for p in self.data.params},
            "tags": {t.key: t.value for t in self.data.tags},
            "inputs": self.inputs.model_dump(mode="json", by_alias=True),
            "outputs": self.outputs.model_dump(mode="json"),
            "request_id": self.request_id,
        }
