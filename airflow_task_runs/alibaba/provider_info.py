"""Alibaba Cloud's part of the provider metadata (plain data: read without importing the hook)."""

from __future__ import annotations

from typing import Any

from airflow_task_runs.core.conn_fields import max_output_bytes_field

#: largest GetAITask answer read when it carries TaskOutput (held in memory; extra ``max_output_bytes``)
ROS_MAX_OUTPUT_BYTES = 64 * 1024 * 1024

INTEGRATION = "Alibaba Cloud ROS"

PROVIDER_INFO: dict[str, Any] = {
    "integrations": [
        {
            "integration-name": INTEGRATION,
            "external-doc-url": "https://www.alibabacloud.com/help/en/ros/developer-reference/api-ros-2019-09-10-getaitask",
            "tags": ["service"],
        }
    ],
    "connection-types": [
        {
            "connection-type": "alibaba_ros",
            "hook-class-name": "airflow_task_runs.alibaba.hooks.RosHook",
            "hook-name": "Alibaba Cloud ROS",
            "conn-fields": {
                "region_id": {
                    "label": "Region ID",
                    "description": "Region of the AI tasks, e.g. cn-hangzhou (used for the console link).",
                    "schema": {"type": ["string", "null"], "default": "cn-hangzhou"},
                },
                "security_token": {
                    "label": "STS security token",
                    "description": "Only with temporary (STS) credentials; sent as x-acs-security-token.",
                    "schema": {"type": ["string", "null"], "format": "password"},
                },
                "endpoint": {
                    "label": "Endpoint override",
                    "description": "Default https://ros.aliyuncs.com (every region); "
                    "https://ros-intl.aliyuncs.com for international-site accounts.",
                    "schema": {"type": ["string", "null"]},
                },
                "console_url": {
                    "label": "Console URL",
                    "description": "ROS console base for links; default https://ros.console.aliyun.com.",
                    "schema": {"type": ["string", "null"]},
                },
                "connect_timeout": {
                    "label": "Connect timeout (s)",
                    "schema": {"type": ["number", "null"], "default": 10},
                },
                "read_timeout": {
                    "label": "Read timeout (s)",
                    "schema": {"type": ["number", "null"], "default": 60},
                },
                "max_output_bytes": max_output_bytes_field(ROS_MAX_OUTPUT_BYTES),
            },
            "ui-field-behaviour": {
                "hidden-fields": ["schema", "port", "host"],
                "relabeling": {"login": "AccessKey ID", "password": "AccessKey Secret"},
                "placeholders": {
                    "login": "LTAI...",
                    "password": "AccessKey Secret",
                    "extra": '{"region_id": "cn-hangzhou"}',
                },
            },
        }
    ],
    "hooks": [{"integration-name": INTEGRATION, "python-modules": ["airflow_task_runs.alibaba.hooks"]}],
    "sensors": [{"integration-name": INTEGRATION, "python-modules": ["airflow_task_runs.alibaba.sensors"]}],
    "operators": [{"integration-name": INTEGRATION, "python-modules": ["airflow_task_runs.alibaba.operators"]}],
    "extra-links": ["airflow_task_runs.alibaba.links.RosAITaskLink"],
}
