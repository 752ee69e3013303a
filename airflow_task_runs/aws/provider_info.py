"""AWS's part of the provider metadata (plain data: read without importing the hook).

No connection type is declared: the hooks use the amazon provider's ``aws`` connection.
"""

from __future__ import annotations

from typing import Any

INTEGRATION = "AWS HealthOmics"

PROVIDER_INFO: dict[str, Any] = {
    "integrations": [
        {
            "integration-name": INTEGRATION,
            "external-doc-url": "https://docs.aws.amazon.com/omics/latest/api/API_GetRunTask.html",
            "tags": ["aws"],
        }
    ],
    "hooks": [{"integration-name": INTEGRATION, "python-modules": ["airflow_task_runs.aws.hooks"]}],
    "sensors": [{"integration-name": INTEGRATION, "python-modules": ["airflow_task_runs.aws.sensors"]}],
    "operators": [
        {
            "integration-name": INTEGRATION,
            "python-modules": ["airflow_task_runs.aws.operators", "airflow_task_runs.aws.start_run"],
        }
    ],
    "extra-links": [
        "airflow_task_runs.aws.links.HealthOmicsRunLink",
        "airflow_task_runs.aws.links.HealthOmicsRunTaskLink",
    ],
}
