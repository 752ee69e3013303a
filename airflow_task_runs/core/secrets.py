"""Keep secrets out of logs: register them with Airflow's secret masker, and redact at the source.

Airflow's masker filters the task log handlers. Libraries log below that, to handlers Airflow
does not own (a DEBUG console handler, pytest, a sidecar shipping stdlib logs): botocore logs
the canonical request (with ``x-amz-security-token``) and every request's headers at DEBUG. So
each record of the libraries this provider drives (their child loggers too, whenever created) is
rid of the registered secrets and the credential-bearing headers as it is created, before any
handler sees it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

#: loggers of the libraries the hooks drive (records are redacted where they are created)
LIBRARY_LOGGERS = ("botocore", "boto3", "aiobotocore", "s3transfer", "urllib3", "httpx", "httpcore", "s3fs")

_SECRETS: set[str] = set()
#: the registered secrets, longest first (a secret containing another is redacted whole); rebuilt on change
_BY_LENGTH: tuple[str, ...] = ()
_LOCK = threading.Lock()
_MIN_SECRET = 5
_MIN_PART = 8  # lines of a multi-line secret (a PEM key) shorter than this are not worth redacting alone
# header values that carry credentials whatever their value (a token refreshed by assume-role too)
_CREDENTIAL_HEADERS = re.compile(
    r"(?i)(x-amz-security-token|x-acs-security-token|x-acs-accesskey-secret)(['\"]?\s*[:=,]\s*b?['\"]?)([^'\"\s,}\n]+)"
)
REDACTED = "***"


def mask_secrets(*values: Any) -> None:
    """Register every non-empty string so Airflow, and the library log filter, redact it."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]
    global _BY_LENGTH
    for value in values:
        if isinstance(value, str) and value:
            mask_secret(value)
            if len(value) < _MIN_SECRET:  # as Airflow's masker: redacting "s" everywhere would hide the logs
                continue
            with _LOCK:
                _SECRETS.add(value)
                _SECRETS.update(line.strip() for line in value.splitlines() if len(line.strip()) >= _MIN_PART)
                _BY_LENGTH = tuple(sorted(_SECRETS, key=len, reverse=True))
    protect_library_logs()


def redact(text: str) -> str:
    """``text`` with every registered secret and credential header value replaced by ``***``."""
    for secret in _BY_LENGTH:  # a tuple swapped whole under the lock: read without it
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _CREDENTIAL_HEADERS.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)


class SecretRedactingFilter(logging.Filter):
    """Rewrites a record's message with :func:`redact` (the record is kept, its secrets are not).

    A record's exception travels as the live exception object too (``exc_info``), and handlers
    render it from there (structlog's, Airflow's task log, ignore ``exc_text``): its secrets
    would pass unredacted. So the traceback is rendered here, redacted, appended to the message,
    and the exception object is dropped from the record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot format itself cannot leak through us either
            return True
        cleaned = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            trace = record.exc_text or logging.Formatter().formatException(record.exc_info)
            cleaned = f"{cleaned}\n{redact(trace)}"
            record.exc_info, record.exc_text = None, None
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_FILTER = SecretRedactingFilter()


def _redacting(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def create(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if str(record.name).split(".", 1)[0] in LIBRARY_LOGGERS:  # makeLogRecord: name None
            _FILTER.filter(record)
        return record

    create._task_runs_redacting = True  # type: ignore[attr-defined]
    return create


def protect_library_logs() -> None:
    """Redact every record of :data:`LIBRARY_LOGGERS` and their children as it is created (idempotent).

    A LogRecord factory, not logger filters: Python applies a logger's filters only to records
    logged on that logger, so records of a child logger (``botocore.endpoint``), above all one
    created after the filters were placed, would reach the handlers unredacted.
    """
    with _LOCK:
        current = logging.getLogRecordFactory()
        if not getattr(current, "_task_runs_redacting", False):
            logging.setLogRecordFactory(_redacting(current))
