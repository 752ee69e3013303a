"""Send a result to XCom (size-guarded) or to an ObjectStoragePath (streamed, atomic).

Atomic means: bytes go to a hidden sibling ``.<name>.<random>.partial`` and are moved to
the final name only after the last byte was written and the size checked. A failed or
interrupted fetch removes the partial object; nothing ever sits at the final path half
written. On ``file://`` the move is a rename (atomic); on object stores, where a move is a
copy, the final object appears in one PUT.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from airflow.sdk import conf

from airflow_task_runs.core.errors import OutputIntegrityError, OutputTooLargeError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_task_runs.core.states import RunStatus

log = logging.getLogger(__name__)

DEFAULT_XCOM_MAX_BYTES = 1024 * 1024
CHUNK_SIZE = 1024 * 1024


def xcom_max_bytes() -> int:
    return conf.getint("task_runs", "xcom_max_bytes", fallback=DEFAULT_XCOM_MAX_BYTES)


def guard_xcom_size(what: str, size: int, limit: int | None = None) -> None:
    limit = xcom_max_bytes() if limit is None else limit
    if size > limit:
        raise OutputTooLargeError(what, size, limit)


def xcom_value(what: str, value: Any, limit: int | None = None) -> Any:
    """``value`` as plain JSON data for XCom; over ``[task_runs] xcom_max_bytes`` an OutputTooLargeError."""
    import json

    text = json.dumps(value, default=str)
    guard_xcom_size(what, len(text.encode()), limit)
    return json.loads(text)


def bounded_status(status: RunStatus, logger: Any = None) -> dict[str, Any]:
    """``status.to_dict()`` for XCom or a trigger event, never over ``[task_runs] xcom_max_bytes``.

    A cloud's run JSON can be large (parameters, definitions); over the limit the ``details``
    are dropped, loudly: a warning and a ``details_omitted`` note saying why and where to get them.
    """
    import json

    data = status.to_dict()
    size = len(json.dumps(data, default=str).encode())
    limit = xcom_max_bytes()
    if size <= limit:
        return data
    note = (
        f"{size} bytes of run details are over [task_runs] xcom_max_bytes ({limit}); "
        "read them with the hook's get_* method"
    )
    (logger or log).warning("Run details not pushed: %s", note)
    return {**data, "details": {}, "details_omitted": note}


def read_for_xcom(chunks: Iterable[bytes], what: str, limit: int | None = None) -> bytes:
    """Collect a stream for XCom, stopping as soon as it passes the limit (memory stays bounded)."""
    limit = xcom_max_bytes() if limit is None else limit
    buf = bytearray()
    stream = iter(chunks)
    for chunk in stream:
        buf += chunk
        if len(buf) > limit:
            # Count the rest without keeping it, so the error says how big the output is.
            total = len(buf) + sum(len(c) for c in stream)
            raise OutputTooLargeError(what, total, limit)
    return bytes(buf)


def as_object_storage_path(destination: ObjectStoragePath | str) -> ObjectStoragePath:
    from airflow.sdk import ObjectStoragePath

    if isinstance(destination, ObjectStoragePath):
        return destination
    text = str(destination)
    if "://" not in text:
        raise ValueError(
            f"destination {text!r} is not a URI: pass an ObjectStoragePath or a URI such as "
            "'file:///data/out/' or 's3://bucket/prefix/'"
        )
    return ObjectStoragePath(text)


def is_folder_destination(destination: ObjectStoragePath | str) -> bool:
    """Whether a destination names a folder rather than a file.

    A string that ends with ``/`` is a folder, and so is an existing folder. ``ObjectStoragePath``
    drops a trailing ``/``, so a path object whose last part has no file extension is a folder
    too (``s3://bucket/logs`` is a folder, ``s3://bucket/logs/run.txt`` a file).
    """
    from airflow.sdk import ObjectStoragePath

    if isinstance(destination, ObjectStoragePath):
        if "." not in destination.name:
            return True
    elif str(destination).endswith("/"):
        return True
    path = as_object_storage_path(destination)
    try:
        return bool(path.exists() and path.is_dir())
    except Exception:  # a store that cannot answer: the name decides
        return False


def file_destination(destination: ObjectStoragePath | str, default_name: str) -> ObjectStoragePath:
    """The file to write: ``destination`` itself, or ``default_name`` inside it when it is a folder.

    ``default_name`` is often built from ids (``healthomics-run-<run>-task-<task>.log``): it goes
    through :func:`join_destination`'s name check, so no id can point outside the folder.
    """
    if is_folder_destination(destination):
        return join_destination(destination, default_name)
    return as_object_storage_path(destination)


def _is_local(path: ObjectStoragePath) -> bool:
    return path.protocol in ("file", "local", "")


def write_atomically(
    destination: ObjectStoragePath | str,
    chunks: Iterable[bytes],
    *,
    expected_size: int | None = None,
) -> str:
    """Stream ``chunks`` to ``destination``; return its URI. See the module docstring."""
    final = as_object_storage_path(destination)
    if _is_local(final):
        final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.parent / f".{final.name}.{uuid.uuid4().hex[:12]}.partial"
    written = 0
    try:
        with partial.open("wb") as handle:
            for chunk in chunks:
                if chunk:
                    handle.write(chunk)
                    written += len(chunk)
        if expected_size is not None and written != expected_size:
            raise OutputIntegrityError(
                f"{final}: received {written} bytes but the source declared {expected_size}; "
                "nothing was written at the destination"
            )
        partial.rename(final)
    except BaseException:
        _remove_quietly(partial)
        raise
    log.info("Wrote %d bytes to %s", written, final)
    return str(final)


def write_bytes_atomically(destination: ObjectStoragePath | str, data: bytes) -> str:
    return write_atomically(destination, _chunked(data), expected_size=len(data))


def _chunked(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), CHUNK_SIZE):
        yield bytes(view[start : start + CHUNK_SIZE])


def _remove_quietly(path: ObjectStoragePath) -> None:
    try:
        if path.exists():
            path.unlink()
    except Exception:  # cleanup must not mask the original error
        log.warning("Could not remove partial object %s", path, exc_info=True)


def join_destination(folder: ObjectStoragePath | str, name: str) -> ObjectStoragePath:
    """A child of a destination folder; refuses names that would escape it."""
    if not name or name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError(f"refusing output name {name!r}: it must be a relative path without '..'")
    return as_object_storage_path(folder) / name


def json_safe(value: Any) -> Any:
    """Round-trip through JSON so what reaches XCom is plain data."""
    import json

    return json.loads(json.dumps(value, default=str))
