"""Run and task ids stay one URL path segment, for every cloud.

Ids are templated and often come from ``dag_run.conf``: ``".."`` would turn
``/task-runs/{id}`` into the collection (or, signed, into another action) and ``"a/b"`` into
another resource. Percent-encoding does not help: ``%2E%2E`` is normalised back to ``..`` by
many servers and proxies. So such values are refused, naming the parameter, before any call;
literal (non-templated) values already when the DAG is parsed.
"""

from __future__ import annotations

import re
from typing import Any

from airflow_task_runs.core.errors import InvalidIdError

_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f]")


def path_segment(value: Any, name: str, hint: str = "") -> str:
    """``value`` if it can stand as one path segment; else :class:`InvalidIdError` naming ``name``."""
    how = f": {hint}" if hint else ""
    if not isinstance(value, str) or not value.strip():
        shown = "empty" if isinstance(value, str) or value is None else f"a {type(value).__name__}, not a string"
        raise InvalidIdError(f"{name} is {shown}{how}")
    if value in (".", "..") or value != value.strip():
        raise InvalidIdError(f"{name} {value!r} is not an id (no '.', '..' or surrounding spaces){how}")
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        raise InvalidIdError(
            f"{name} {value!r} contains {bad.group()!r}: an id must be one path segment, "
            f"without '/', '\\\\' or control characters{how}"
        )
    return value


def is_templated(value: Any) -> bool:
    """Whether Airflow will render ``value`` (so it can only be checked at run time)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def check_literal_ids(**ids: Any) -> None:
    """At DAG parse time: refuse literal ids that no template can fix (templated ones wait for run time)."""
    for name, value in ids.items():
        if value is not None and not is_templated(value):
            path_segment(value, name)
