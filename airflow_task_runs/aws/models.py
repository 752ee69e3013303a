"""HealthOmics JSON as botocore parses it: field names exactly as the API and botocore's model give them.

Timestamps are aware datetimes (botocore parses the API's ISO 8601 strings with a time zone).
Unknown fields are kept (``extra="allow"``): AWS adds fields to these shapes often.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, Field

from airflow_task_runs.core.models import ApiModel


class TaskListItem(ApiModel):
    """One entry of ``ListRunTasks``."""

    taskId: str
    status: str
    name: str | None = None
    cpus: int | None = None
    cacheHit: bool | None = None
    cacheS3Uri: str | None = None
    memory: int | None = None
    creationTime: AwareDatetime | None = None
    startTime: AwareDatetime | None = None
    stopTime: AwareDatetime | None = None
    gpus: int | None = None
    instanceType: str | None = None
    uuid: str | None = None


class RunListItem(ApiModel):
    """One entry of ``ListRuns``."""

    id: str
    status: str
    arn: str | None = None
    name: str | None = None
    workflowId: str | None = None
    priority: int | None = None
    storageCapacity: int | None = None
    storageType: str | None = None
    creationTime: AwareDatetime | None = None
    startTime: AwareDatetime | None = None
    stopTime: AwareDatetime | None = None


class RunTask(TaskListItem):
    """``GetRunTask``: one task of a workflow run (a list item plus status detail and log)."""

    statusMessage: str | None = None
    logStream: str | None = None
    failureReason: str | None = None
    imageDetails: dict[str, Any] | None = None


class Run(ApiModel):
    """``GetRun``: a workflow run. ``uuid`` tells apart runs that reuse an id after deletion."""

    id: str
    status: str
    arn: str | None = None
    uuid: str | None = None
    name: str | None = None
    runId: str | None = None
    workflowId: str | None = None
    workflowType: str | None = None
    workflowVersionName: str | None = None
    workflowUuid: str | None = None
    workflowOwnerId: str | None = None
    runGroupId: str | None = None
    batchId: str | None = None
    cacheId: str | None = None
    cacheBehavior: str | None = None
    engineVersion: str | None = None
    roleArn: str | None = None
    priority: int | None = None
    definition: str | None = None
    digest: str | None = None
    parameters: dict[str, Any] | None = None
    storageCapacity: int | None = None
    storageType: str | None = None
    outputUri: str | None = None
    runOutputUri: str | None = None
    #: SERVICE_DEFINED (outputs under ``<outputUri>/<id>/``) or NONE_WITH_OVERWRITE (directly under outputUri)
    outputUriPrefixMode: str | None = None
    logLevel: str | None = None
    logLocation: dict[str, Any] | None = None
    resourceDigests: dict[str, str] | None = None
    startedBy: str | None = None
    creationTime: AwareDatetime | None = None
    startTime: AwareDatetime | None = None
    stopTime: AwareDatetime | None = None
    statusMessage: str | None = None
    failureReason: str | None = None
    tags: dict[str, str] | None = None
    accelerators: str | None = None
    retentionMode: str | None = None
    networkingMode: str | None = None
    scratchStorageMode: str | None = None
    configuration: dict[str, Any] | None = None
    vpcConfig: dict[str, Any] | None = None
    engineSettings: dict[str, Any] | None = None
    sessionPolicy: str | None = None


class RunTaskList(ApiModel):
    """Every page of ``ListRunTasks`` joined."""

    items: list[TaskListItem] = Field(default_factory=list)
