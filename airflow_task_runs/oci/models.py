"""OCI AI Data Platform JSON, field names exactly as on the wire.

Enumerations (``taskType``, ``type``, ``charset``, ``compression``, statuses) are plain
strings: Oracle adds values, and a value this provider does not know must not break parsing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


class _Model(BaseModel):
    # Clouds add fields: keep unknown ones, be strict about the types of known ones.
    model_config = ConfigDict(extra="allow")


class _WithRequestId(_Model):
    #: the ``opc-request-id`` of the response this came from (not a field of the API)
    _request_id: str | None = PrivateAttr(default=None)

    @property
    def request_id(self) -> str | None:
        return self._request_id

    @request_id.setter
    def request_id(self, value: str | None) -> None:
        self._request_id = value


# -- task runs ---------------------------------------------------------------------------------
class TaskRunState(_Model):
    status: str | None = None
    stateMessage: str | None = None
    errorTrace: str | None = None


class TaskRun(_WithRequestId):
    key: str | None = None
    outputKey: str | None = None
    state: TaskRunState = Field(default_factory=TaskRunState)


class OutputParameter(_Model):
    name: str
    value: Any = None


class RunOutputData(_Model):
    type: str | None = None
    #: size in bytes, sent as a string (see operators.decode_item for which bytes it counts)
    length: str | int | None = None
    charset: str | None = None
    isBase64: bool = False
    compression: str | None = None
    value: str | None = None


class TaskRunOutput(_WithRequestId):
    key: str | None = None
    taskType: str | None = None
    isTruncated: bool = False
    errorTrace: str | None = None
    data: list[RunOutputData] = Field(default_factory=list)
    outputParameters: list[OutputParameter] = Field(default_factory=list)
    version: str | int | None = None


# -- MLflow experiment runs ----------------------------------------------------------------
class ExperimentRunInfo(_Model):
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


class ExperimentRunMetric(_Model):
    key: str
    value: float | None = None
    step: int | None = None
    timestamp: int | None = None


class KeyValue(_Model):
    key: str
    value: str | None = None


class ExperimentRunData(_Model):
    metrics: list[ExperimentRunMetric] = Field(default_factory=list)
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class Dataset(_Model):
    digest: str | None = None
    name: str | None = None
    profile: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    source: str | None = None
    source_type: str | None = None

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class DatasetInput(_Model):
    dataset: Dataset
    tags: list[KeyValue] = Field(default_factory=list)


class ModelInput(_Model):
    model_id: str


class ModelOutput(_Model):
    model_id: str
    step: int | None = None


class ExperimentRunInputs(_Model):
    dataset_inputs: list[DatasetInput] = Field(default_factory=list)
    model_inputs: list[ModelInput] = Field(default_factory=list)


class ExperimentRunOutputs(_Model):
    model_outputs: list[ModelOutput] = Field(default_factory=list)


class ExperimentRun(_WithRequestId):
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
