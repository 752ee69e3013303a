"""NAVER Cloud's part of the provider metadata (plain data: read without importing the hook)."""

from __future__ import annotations

from typing import Any

from airflow_task_runs.core.conn_fields import max_output_bytes_field

INTEGRATION = "NAVER Cloud NCLUE"

PROVIDER_INFO: dict[str, Any] = {
    "integrations": [
        {
            "integration-name": INTEGRATION,
            "external-doc-url": "https://api.ncloud-docs.com/docs/en/nclue-overview",
            "tags": ["service"],
        }
    ],
    "connection-types": [
        {
            "connection-type": "ncp",
            "hook-class-name": "airflow_task_runs.ncp.hooks.NclueHook",
            "hook-name": "NAVER Cloud (NCP)",
            "conn-fields": {
                "object_storage_endpoint": {
                    "label": "Object Storage endpoint",
                    "description": "S3-compatible endpoint of NCP Object Storage, where result files live.",
                    "schema": {"type": ["string", "null"], "default": "https://kr.object.ncloudstorage.com"},
                },
                "object_storage_region": {
                    "label": "Object Storage region",
                    "description": "SigV4 signing region of NCP Object Storage.",
                    "schema": {
                        "type": ["string", "null"],
                        "default": "kr-standard",
                        "enum": ["kr-standard", "us-standard", "sg-standard", "jp-standard", "de-standard"],
                    },
                },
                "connect_timeout": {
                    "label": "Connect timeout (s)",
                    "schema": {"type": ["number", "null"], "default": 10},
                },
                "read_timeout": {
                    "label": "Read timeout (s)",
                    "schema": {"type": ["number", "null"], "default": 60},
                },
                "max_output_bytes": max_output_bytes_field(),
            },
            "ui-field-behaviour": {
                "hidden-fields": ["schema", "port"],
                "relabeling": {
                    "login": "Access Key ID",
                    "password": "Secret Key",
                    "host": "API Gateway URL",
                },
                "placeholders": {
                    "login": "NCP Access Key ID",
                    "password": "NCP Secret Key",
                    "host": "https://nclue.apigw.ntruss.com",
                },
            },
        }
    ],
    "hooks": [{"integration-name": INTEGRATION, "python-modules": ["airflow_task_runs.ncp.hooks"]}],
    "sensors": [{"integration-name": INTEGRATION, "python-modules": ["airflow_task_runs.ncp.sensors"]}],
    "operators": [
        {
            "integration-name": INTEGRATION,
            "python-modules": ["airflow_task_runs.ncp.operators", "airflow_task_runs.ncp.create_run"],
        }
    ],
}
