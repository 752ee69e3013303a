"""Keep secrets out of logs: register them with Airflow's secret masker."""

from __future__ import annotations

from typing import Any


def mask_secrets(*values: Any) -> None:
    """Register every non-empty string so Airflow redacts it from task logs."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]
    for value in values:
        if isinstance(value, str) and value:
            mask_secret(value)
