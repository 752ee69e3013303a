"""The provider metadata Airflow reads through the ``apache_airflow_provider`` entry point.

Each cloud folder contributes a fragment (``<cloud>/provider_info.py``, plain dicts, no
imports); this module merges them with the shared parts. Nothing here imports a hook.
"""

from __future__ import annotations

import importlib
from typing import Any

from airflow_task_runs import __version__

#: one entry per cloud folder
CLOUDS: tuple[str, ...] = ("ncp", "oci", "alibaba", "aws")

_LIST_KEYS = ("integrations", "connection-types", "hooks", "sensors", "operators", "extra-links")


def get_provider_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "package-name": "airflow-task-runs",
        "name": "Task Runs",
        "description": "Wait for, and collect, task runs on Oracle OCI AI Data Platform, NAVER Cloud NCLUE, "
        "AWS HealthOmics and Alibaba Cloud ROS.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Task Runs (core)",
                "external-doc-url": "https://pypi.org/project/airflow-task-runs/",
                "tags": ["service"],
            }
        ],
        "connection-types": [],
        "hooks": [],
        "sensors": [],
        "operators": [],
        "triggers": [
            {
                "integration-name": "Task Runs (core)",
                "python-modules": ["airflow_task_runs.core.triggers"],
            }
        ],
        "extra-links": [],
        "config": {
            "task_runs": {
                "description": "Defaults of the airflow-task-runs provider.",
                "options": {
                    "poll_interval": {
                        "description": "Seconds between status polls of the provider's sensors, "
                        "when a sensor does not set poke_interval.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "30",
                        "default": "60",
                    },
                    "xcom_max_bytes": {
                        "description": "Largest output (in bytes) the provider's operators return "
                        "through XCom; larger outputs need destination=.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "262144",
                        "default": "1048576",
                    },
                },
            }
        },
    }
    for cloud in CLOUDS:
        fragment = importlib.import_module(f"airflow_task_runs.{cloud}.provider_info").PROVIDER_INFO
        for key in _LIST_KEYS:
            info[key].extend(fragment.get(key, []))
    return info
