"""Keep secrets out of logs: register them with Airflow's secret masker, and redact at the source.

Airflow's masker filters the task log handlers. Libraries log below that, to handlers Airflow
does not own (a DEBUG console handler, pytest, a sidecar shipping stdlib logs): botocore logs
the canonical request (with ``x-amz-security-token``) and every request's headers at DEBUG. So
the libraries this provider drives also get a filter on their own loggers, which removes the
registered secrets and the credential-bearing headers from each record before any handler sees it.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

#: loggers of the libraries the hooks drive (records are redacted where they are created)
LIBRARY_LOGGERS = ("botocore", "boto3", "aiobotocore", "s3transfer", "urllib3", "httpx", "httpcore", "s3fs")

_SECRETS: set[str] = set()
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
    for value in values:
        if isinstance(value, str) and value:
            mask_secret(value)
            if len(value) < _MIN_SECRET:  # as Airflow's masker: redacting "s" everywhere would hide the logs
                continue
            with _LOCK:
                _SECRETS.add(value)
                _SECRETS.update(line.strip() for line in value.splitlines() if len(line.strip()) >= _MIN_PART)
    protect_library_logs()


def redact(text: str) -> str:
    """``text`` with every registered secret and credential header value replaced by ``***``."""
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _CREDENTIAL_HEADERS.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)


class SecretRedactingFilter(logging.Filter):
    """Rewrites a record's message with :func:`redact` (the record is kept, its secrets are not)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot format itself cannot leak through us either
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and record.exc_text is None and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = SecretRedactingFilter()


def protect_library_logs() -> None:
    """Put the redacting filter on every existing logger of :data:`LIBRARY_LOGGERS` (idempotent).

    Called whenever secrets are registered and when a hook builds a client (so loggers created
    by a late import are covered too).
    """
    names = [name for name in list(logging.Logger.manager.loggerDict) if name.split(".")[0] in LIBRARY_LOGGERS]
    for name in (*LIBRARY_LOGGERS, *names):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
