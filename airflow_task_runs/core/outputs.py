"""Send a result to XCom (size-guarded) or to an ObjectStoragePath (streamed, complete or absent).

One writer for every output of every operator (:class:`OutputSet`, :func:`write_atomically`):

- ``file://``: bytes go to a hidden sibling ``.<name>.<token>.partial``, fsynced, closed, then
  renamed to the final name (atomic). The token names the writer's lock file in that folder,
  ``flock``-ed while the writer lives (one per folder, not one per output); the next writer
  there removes the partials of writers that died (SIGKILL, OOM): their lock is free.
- object stores (``s3://``, ``gs://``, ...): no second copy. The fsspec file is opened with
  ``autocommit=False``: on S3 a multipart upload straight to the final key, its parts uploaded
  as bytes arrive, completed only after the last byte was written and the size checked. On any
  failure the file is ``discard()``-ed (the multipart upload aborted) and never closed, so
  nothing is committed (an fsspec file commits on close, even when an exception leaves its
  ``with`` block). Unfinished uploads to the same key left by a killed writer are aborted by
  the next write of that key once idle for ``[task_runs] stale_upload_age``.
- a set of outputs (OCI's items) is published together, after every member was written: a
  failure before that leaves none of them; the set's last member (its manifest) is published
  last, and an older set's manifest is removed before any member is replaced (see OutputSet).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import conf

from airflow_task_runs.core.errors import OutputTooLargeError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_task_runs.core.errors import DestinationConfigError
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
    """Collect a stream for XCom, stopping as soon as it passes the limit.

    The rest is not read: counting it would download up to ``max_output_bytes`` (16 GiB by
    default) only to say how much over the limit it is.
    """
    limit = xcom_max_bytes() if limit is None else limit
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) > limit:
            raise OutputTooLargeError(what, len(buf), limit, read_whole=False)
    return bytes(buf)


#: fsspec filesystem package -> this package's extra that installs it (see pyproject.toml)
FILESYSTEM_EXTRAS = {"s3fs": "s3", "gcsfs": "gcs", "adlfs": "azure"}
#: object-store part size: S3 needs >= 5 MiB parts (but the last) and at most 10,000 of them
PART_SIZE = 8 * 1024 * 1024
MAX_PARTS = 9000
#: parts of one size before an output of unknown size doubles its part size
PARTS_PER_SIZE = 1000
#: S3 parts uploaded at once by one writer (memory: about this many parts + 1);
#: ``[task_runs] upload_parts_in_flight`` overrides it
UPLOADS_IN_FLIGHT = 2


_LOCAL = ("file", "local", "")


def uploads_in_flight() -> int:
    return max(1, conf.getint("task_runs", "upload_parts_in_flight", fallback=UPLOADS_IN_FLIGHT))


#: an unfinished multipart upload without a new part for this long is taken as a dead writer's
#: (see abort_stale_uploads); ``[task_runs] stale_upload_age`` overrides it. A live writer sends a
#: part every few seconds, but a staged member of a set waits for the rest of its set, so the age
#: has to exceed the longest set write; an hour does for sets of hundreds of GiB, and a killed
#: writer's upload is invisible and only costs storage until then (or a bucket lifecycle rule)
STALE_UPLOAD_AGE = 3600.0


def stale_upload_age() -> float:
    return max(0.0, conf.getfloat("task_runs", "stale_upload_age", fallback=STALE_UPLOAD_AGE))


def _filesystem_package(scheme: str) -> str | None:
    """The package fsspec would import for ``scheme`` (``s3`` -> ``s3fs``); None for built-in or unknown."""
    from fsspec.registry import known_implementations, registry

    if scheme in _LOCAL or scheme in registry:
        return None
    impl = known_implementations.get(scheme)
    return impl["class"].split(".", 1)[0] if impl else None


def _install_hint(package: str) -> str:
    extra = FILESYSTEM_EXTRAS.get(package)
    if extra:
        return f"pip install 'airflow-task-runs[{extra}]'"
    return f"install {package} (and the Airflow provider that registers its filesystem)"


def check_destination_text(value: Any, param: str = "destination") -> str:
    """Refuse a destination that cannot work, without touching any store (cheap: runs at DAG parse).

    Empty, not a URI, an unknown scheme, or a scheme whose filesystem package is not installed
    fail here, naming ``param``, the scheme and the extra to install. Returns the URI text.
    """
    import importlib.util
    from urllib.parse import urlsplit

    from airflow_task_runs.core.errors import DestinationConfigError

    if not isinstance(value, str) and type(value).__name__ != "ObjectStoragePath":
        raise DestinationConfigError(
            f"{param} is a {type(value).__name__}; pass a URI such as 's3://bucket/prefix/' or an ObjectStoragePath"
        )
    text = str(value)
    if not text.strip():
        raise DestinationConfigError(
            f"{param} is empty (a template that rendered to ''?): pass a URI such as 's3://bucket/prefix/' or "
            f"'file:///data/out/', or leave {param}=None to return the output through XCom"
        )
    if "://" not in text:
        raise DestinationConfigError(
            f"{param} {text!r} is not a URI: pass an ObjectStoragePath or a URI such as "
            "'file:///data/out/' or 's3://bucket/prefix/'"
        )
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    # a templated part that rendered empty leaves a URI that still parses: file:// would be the
    # worker's working directory, s3:///key would take the output's name for a bucket
    if scheme in _LOCAL and not parts.path.strip() and not parts.netloc.strip():
        raise DestinationConfigError(
            f"{param} {text!r} names no folder or file (a template that rendered to ''?): pass an absolute "
            "path such as 'file:///data/out/'"
        )
    if scheme not in _LOCAL and not parts.netloc.rpartition("@")[2].strip():
        raise DestinationConfigError(
            f"{param} {text!r} names no bucket or container (a template that rendered to ''?): pass a URI "
            f"such as '{scheme}://bucket/prefix/'"
        )
    from fsspec.registry import known_implementations, registry

    if scheme not in _LOCAL and scheme not in registry and scheme not in known_implementations:
        raise DestinationConfigError(
            f"{param} {text!r}: no filesystem is known for the scheme {scheme!r}; use file://, s3://, gs://, "
            "abfs://, ... (a scheme fsspec and an Airflow provider support)"
        )
    package = _filesystem_package(scheme)
    if package and importlib.util.find_spec(package) is None:
        raise DestinationConfigError(
            f"{param} {text!r}: writing to {scheme}:// needs {package}, which is not installed: "
            f"{_install_hint(package)}"
        )
    return text


def plain_uri(path: ObjectStoragePath) -> str:
    """``scheme://bucket/key`` without the ``conn_id@`` part: for XCom, logs, Assets and lineage."""
    protocol = path.protocol or "file"
    return f"{protocol}://{path.path}"


class Destination:
    """A checked destination: the ObjectStoragePath (with its connection) and whether it is a folder."""

    def __init__(self, path: ObjectStoragePath, is_folder: bool, param: str = "destination") -> None:
        self.path = path
        self.is_folder = is_folder
        self.param = param

    @property
    def uri(self) -> str:
        return plain_uri(self.path) + ("/" if self.is_folder else "")

    def file(self, default_name: str) -> ObjectStoragePath:
        """The file to write: the destination itself, or ``default_name`` inside it when it is a folder."""
        return self.child(default_name) if self.is_folder else self.path

    def child(self, name: str) -> ObjectStoragePath:
        return join_destination(self.path, name)

    def __repr__(self) -> str:
        return f"Destination({self.uri!r}, conn_id={self.path.conn_id!r})"


def resolve_destination(
    value: ObjectStoragePath | str,
    conn_id: str | None = None,
    *,
    param: str = "destination",
    conn_param: str = "destination_conn_id",
) -> Destination:
    """Check and open a destination before any cloud call: the scheme's filesystem, the connection.

    Which credentials: ``conn_id`` (an operator's ``destination_conn_id``) if given, else the
    URI's own ``conn_id@`` part (``s3://aws_default@bucket/key``), else none: the store's default
    chain (for S3, boto3's: environment, ``~/.aws``, instance role).
    """
    from airflow.sdk import ObjectStoragePath

    from airflow_task_runs.core.errors import DestinationConfigError

    text = check_destination_text(value, param)
    if conn_id is not None and not str(conn_id).strip():
        raise DestinationConfigError(
            f"{conn_param} is empty (a template that rendered to ''?): name a connection, or leave it None "
            f"to use the URI's conn_id@ part or the store's default credentials"
        )
    path = value if isinstance(value, ObjectStoragePath) else ObjectStoragePath(text)
    named = path.conn_id
    if conn_id and named and named != conn_id:
        raise DestinationConfigError(
            f"{param} {plain_uri(path)!r} names the connection {named!r} ({named}@) but {conn_param} is "
            f"{conn_id!r}: give the connection one way only"
        )
    effective = conn_id or named
    protocol = path.protocol or "file"
    from airflow.sdk.io.fs import has_fs

    if not has_fs(protocol):
        from fsspec.registry import known_implementations

        package = _filesystem_package(protocol)
        if package and package != "fsspec":
            hint = _install_hint(package)
        else:  # a filesystem fsspec implements itself (hdfs, sftp, http...): its own requirements
            needs = known_implementations.get(protocol, {}).get("err")
            hint = f"{needs + '; ' if needs else ''}install the Airflow provider that registers {protocol}://"
        raise DestinationConfigError(
            f"{param} {str(value)!r}: Airflow has no filesystem registered for {protocol}://: {hint}"
        )
    if effective:
        from airflow.sdk import BaseHook

        try:
            BaseHook.get_connection(effective)
        except Exception as exc:
            where = conn_param if conn_id else f"the {effective}@ part of {param}"
            raise DestinationConfigError(
                f"{where}: connection {effective!r} cannot be read ({type(exc).__name__}: {exc}); create it, or "
                "leave it out to use the store's default credentials"
            ) from None
        if conn_id and conn_id != named:
            path = ObjectStoragePath(path, conn_id=conn_id)
    original = str(value)
    is_folder = is_folder_destination(value if isinstance(value, ObjectStoragePath) else original, path)
    return Destination(path, is_folder, param)


def as_object_storage_path(destination: ObjectStoragePath | str) -> ObjectStoragePath:
    return resolve_destination(destination).path


def is_folder_destination(destination: ObjectStoragePath | str, path: ObjectStoragePath | None = None) -> bool:
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
    if path is None:
        path = destination if isinstance(destination, ObjectStoragePath) else ObjectStoragePath(str(destination))
    try:
        return bool(path.exists() and path.is_dir())
    except Exception:  # a store that cannot answer: the name decides
        return False


def file_destination(destination: ObjectStoragePath | str, default_name: str) -> ObjectStoragePath:
    """The file to write: ``destination`` itself, or ``default_name`` inside it when it is a folder.

    ``default_name`` is often built from ids (``healthomics-run-<run>-task-<task>.log``): it goes
    through :func:`join_destination`'s name check, so no id can point outside the folder.
    """
    return resolve_destination(destination).file(default_name)


def join_destination(folder: ObjectStoragePath | str, name: str) -> ObjectStoragePath:
    """A child of a destination folder; refuses names that would escape it."""
    if not name or name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError(f"refusing output name {name!r}: it must be a relative path without '..'")
    from airflow.sdk import ObjectStoragePath

    base = folder if isinstance(folder, ObjectStoragePath) else resolve_destination(folder).path
    return base / name


def _is_local(path: ObjectStoragePath) -> bool:
    return (path.protocol or "") in _LOCAL


def part_size_for(expected_size: int | None) -> int:
    """8 MiB parts, larger when needed to stay under S3's 10,000 parts."""
    if not expected_size:
        return PART_SIZE
    mib = 1024 * 1024
    return max(PART_SIZE, -(-expected_size // MAX_PARTS // mib) * mib + mib)


#: a staged file, or the previous version of a set member kept until the set is published
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<token>[0-9a-f]{12})\.(?:partial|previous)$")
#: a writer's claim on a folder: locked while the writer lives
_WRITER_LOCK = re.compile(r"^\.task-runs\.(?P<token>[0-9a-f]{12})\.lock$")


class _WriterLock:
    """One writer's claim on one folder: ``.task-runs.<token>.lock``, ``flock``-ed for as long as it lives.

    Every partial (and kept previous version) the writer leaves in that folder carries the token,
    so one open file per folder proves that all of them are alive (an output set of thousands of
    members holds one descriptor, not one each). When the writer dies (SIGKILL, OOM) the kernel
    drops the lock, and the next writer in the folder removes what carries that token.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        while True:
            self.token = uuid.uuid4().hex[:12]
            self.path = folder / f".task-runs.{self.token}.lock"
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            fcntl.flock(self.fd, fcntl.LOCK_EX)  # waits only for a cleaner that saw it unlocked, briefly
            if os.fstat(self.fd).st_nlink:  # else that cleaner removed it before we locked it: take another
                break
            os.close(self.fd)
        remove_stale_partials(folder, keep=self.token)

    def release(self) -> None:
        """After every partial and previous version of this writer is gone."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self.fd)


def _writer_is_alive(folder: Path, token: str) -> bool:
    lock = folder / f".task-runs.{token}.lock"
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True  # its writer holds it
    else:
        lock.unlink(missing_ok=True)  # while holding it: a writer that wins it next sees it unlinked
        return False
    finally:
        os.close(fd)


def remove_stale_partials(folder: Path, keep: str | None = None) -> list[Path]:
    """Remove partials (and kept previous versions) in ``folder`` whose writer is gone, and its lock.

    A writer is alive while its ``.task-runs.<token>.lock`` is locked; a missing or unlocked lock
    means it died, and nothing carrying its token can be completed any more.
    """
    try:
        names = [entry.name for entry in os.scandir(folder)]
    except FileNotFoundError:
        return []
    by_token: dict[str, list[str]] = {}
    for name in names:
        match = _PARTIAL.match(name) or _WRITER_LOCK.match(name)
        if match and match["token"] != keep:
            by_token.setdefault(match["token"], []).append(name)
    removed: list[Path] = []
    for token, owned in by_token.items():
        if _writer_is_alive(folder, token):
            continue
        for name in owned:
            path = folder / name
            if _PARTIAL.match(name):
                try:
                    path.unlink()
                    removed.append(path)
                except FileNotFoundError:
                    pass
    if removed:
        log.info("Removed %d stale partial file(s) in %s left by an interrupted fetch", len(removed), folder)
    return removed


class _Staged:
    """One output being written: invisible until ``publish()``, removable without trace by ``abandon()``.

    For a set rewriting an older one, ``publish(keep_previous=True)`` keeps the version it
    replaces where that is cheap (local files: a hard link), so ``unpublish()`` can put it back.
    """

    uri: str

    def write(self, chunk: bytes) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Everything written: make it durable, still invisible."""

    def publish(self, keep_previous: bool = False) -> None:
        raise NotImplementedError

    def abandon(self) -> None:
        raise NotImplementedError

    def unpublish(self) -> None:
        """Remove what ``publish()`` made visible (or put back the version it replaced, if kept)."""
        raise NotImplementedError

    def withdraw_previous(self) -> bool:
        """Take the current object at the final name away; False if ``restore_previous()`` cannot put it back."""
        raise NotImplementedError

    def restore_previous(self) -> None:
        """Put back what ``withdraw_previous()`` took away, where it was kept."""

    def forget_previous(self) -> None:
        """The set is published: drop any kept previous version."""


def _folder_in_the_way(uri: str) -> DestinationConfigError:
    from airflow_task_runs.core.errors import DestinationConfigError

    return DestinationConfigError(
        f"{uri} is an existing folder, so a file cannot be written there; remove or rename the folder, "
        "or choose another destination. Nothing was written"
    )


class _LocalStaged(_Staged):
    """A partial sibling carrying its writer's lock token, fsynced, closed, then renamed (atomic on POSIX).

    The file is closed as soon as it is complete, so a set of any size holds no descriptor per
    member; the writer's folder lock (:class:`_WriterLock`) keeps its partials safe from cleanup.
    """

    def __init__(self, final: ObjectStoragePath, claim: Callable[[Path], _WriterLock]) -> None:
        from airflow_task_runs.core.errors import DestinationConfigError

        self.uri = plain_uri(final)
        self.final = Path(final.path)
        if self.final.is_dir():
            raise _folder_in_the_way(self.uri)
        room = 255 - len(f"..{'0' * 12}.partial")  # a file name's 255 bytes, less the partial's marks
        if len(self.final.name.encode()) > room:
            raise DestinationConfigError(
                f"{self.uri}: the file name is {len(self.final.name.encode())} bytes; it is written under a hidden "
                f"partial name first, so at most {room} bytes fit: name the destination file shorter"
            )
        self.final.parent.mkdir(parents=True, exist_ok=True)
        token = claim(self.final.parent).token
        self.partial = self.final.parent / f".{self.final.name}.{token}.partial"
        self.previous = self.final.parent / f".{self.final.name}.{token}.previous"
        self.kept_previous = False  # the version this replaces is kept as self.previous
        self.withdrawn = False  # ... and the final name is empty until publish()
        self.handle: Any = open(self.partial, "xb")  # noqa: SIM115 (closed by finish() or abandon())

    def write(self, chunk: bytes) -> None:
        self.handle.write(chunk)

    def finish(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()

    def publish(self, keep_previous: bool = False) -> None:
        if self.final.is_dir():
            raise _folder_in_the_way(self.uri)
        if keep_previous:
            try:
                os.link(self.final, self.previous)  # the old version, restorable if the set fails
                self.kept_previous = True
            except FileNotFoundError:
                pass
        os.replace(self.partial, self.final)

    def abandon(self) -> None:
        self.handle.close()
        self.partial.unlink(missing_ok=True)
        if self.kept_previous and not self.withdrawn:  # not replaced: the final name still holds the old version
            self.previous.unlink(missing_ok=True)
            self.kept_previous = False

    def unpublish(self) -> None:
        if self.kept_previous:
            os.replace(self.previous, self.final)
            self.kept_previous = False
        else:
            self.final.unlink(missing_ok=True)

    def withdraw_previous(self) -> bool:
        if self.final.is_dir():
            raise _folder_in_the_way(self.uri)
        try:
            os.replace(self.final, self.previous)
        except FileNotFoundError:
            return True  # nothing there: nothing to put back
        self.kept_previous = self.withdrawn = True
        return True

    def restore_previous(self) -> None:
        if self.kept_previous:
            os.replace(self.previous, self.final)
            self.kept_previous = False

    def forget_previous(self) -> None:
        if self.kept_previous:
            self.previous.unlink(missing_ok=True)
            self.kept_previous = False


#: an older set's manifest up to this size is kept in memory while a new set is published over it
KEEP_PREVIOUS_BYTES = 1024 * 1024


class _StoreKey:
    """What both object-store writers share: name the key, refuse a folder, clear stale uploads, remove.

    No previous version is kept on an object store (that would be a second copy of every member):
    ``withdraw_previous()`` deletes it, and ``unpublish()`` can only delete what was published.
    """

    uri: str
    fs: Any
    key: str
    open_uploads: set[str] | None

    def _take_key(self, final: ObjectStoragePath) -> None:
        self.uri = plain_uri(final)
        self.fs = final.fs
        self.key = final.path
        if self.fs.isdir(self.key):
            raise _folder_in_the_way(self.uri)
        #: the uploads to this key still open before this writer starts its own (None: unknown)
        self.open_uploads = abort_stale_uploads(self.fs, self.key)

    def unpublish(self) -> None:
        try:
            self.fs.rm_file(self.key)
        except Exception as exc:
            log.warning("Could not remove %s (%s: %s)", self.uri, type(exc).__name__, exc)

    previous_bytes: bytes | None = None

    def withdraw_previous(self) -> bool:
        """Delete it; a small one (a manifest) is kept in memory, to be put back if nothing was replaced."""
        try:
            size = self.fs.size(self.key)
        except FileNotFoundError:
            return True
        if size <= KEEP_PREVIOUS_BYTES:
            self.previous_bytes = self.fs.cat_file(self.key)
        self.fs.rm_file(self.key)
        self.fs.invalidate_cache(self.key)
        return self.previous_bytes is not None

    def restore_previous(self) -> None:
        if self.previous_bytes is not None:
            self.fs.pipe_file(self.key, self.previous_bytes)
            self.fs.invalidate_cache(self.key)
            self.previous_bytes = None

    def forget_previous(self) -> None:
        self.previous_bytes = None


class _StoreStaged(_StoreKey, _Staged):
    """An fsspec file on the final key that is committed only by ``publish()`` (S3: a multipart upload)."""

    def __init__(self, final: ObjectStoragePath, part_size: int, size_known: bool = True) -> None:
        self._take_key(final)
        try:
            self.handle = self.fs.open(self.key, "wb", block_size=part_size, autocommit=False)
            self.deferred = True
        except NotImplementedError:  # a store without deferred commit: it commits on close()
            self.handle = self.fs.open(self.key, "wb", block_size=part_size)
            self.deferred = False
        self.finished = False

    def write(self, chunk: bytes) -> None:
        self.handle.write(chunk)

    def finish(self) -> None:
        if self.deferred:
            self.handle.close()  # uploads the last part; with autocommit=False nothing is visible yet
        self.finished = True

    def publish(self, keep_previous: bool = False) -> None:
        if self.deferred:
            self.handle.commit()
        else:
            self.handle.close()

    def abandon(self) -> None:
        try:
            self.handle.discard()  # S3: abort the multipart upload
        except Exception as exc:  # cleanup must not mask the original error
            log.warning("Could not abort the upload to %s (%s: %s)", self.uri, type(exc).__name__, exc)
        try:
            self.handle.closed = True  # never close(): close() commits (or PUTs the buffer)
        except AttributeError:
            pass


class _S3Staged(_StoreKey, _Staged):
    """S3 (s3fs): a multipart upload straight to the final key, up to ``UPLOADS_IN_FLIGHT`` parts at once.

    s3fs's own file uploads one part at a time; here parts go out on s3fs's event loop while the
    source is still being read, so the transfer runs at the store's pace, in bounded memory
    (``UPLOADS_IN_FLIGHT`` + 1 parts). ``publish()`` completes the upload; ``abandon()`` aborts it.
    """

    def __init__(self, final: ObjectStoragePath, part_size: int, size_known: bool = True) -> None:
        self._take_key(final)
        self.bucket, self.object_key, _ = self.fs.split_path(self.key)
        self.part_size = part_size
        #: an output of unknown size doubles its parts every PARTS_PER_SIZE parts, so S3's 10,000
        #: parts hold ~4 TiB instead of 78 GiB (memory grows with it only for such outputs)
        self.grows = not size_known
        self.held: list[memoryview] = []  # the next part's bytes, as received
        self.held_size = 0
        self.pending: list[Any] = []  # concurrent futures of upload_part, in part order
        self.parts: list[dict[str, Any]] = []
        self.written = 0
        self.upload_id: str | None = None
        upload = self._create()
        self.upload_id = upload["UploadId"]
        self.in_flight = uploads_in_flight()

    def _uploads(self) -> set[str] | None:
        """Ids of the unfinished uploads to this key, or None when the store will not say."""
        try:
            listing = self.fs.call_s3("list_multipart_uploads", Bucket=self.bucket, Prefix=self.object_key)
        except Exception:
            return None
        return {u["UploadId"] for u in listing.get("Uploads", []) if u.get("Key") == self.object_key}

    def _create(self) -> dict[str, Any]:
        """Start the upload. botocore and s3fs retry a create whose answer was lost, so the store
        may then hold uploads nobody knows the id of: those (to this key, new since just before,
        still without a part) are aborted before the error goes on. Told apart by id, not by
        time: stores' ``Initiated`` dates are not always real (moto's are fixed)."""
        before = self.open_uploads  # listed by _take_key, stale ones aborted
        try:
            return dict(self.fs.call_s3("create_multipart_upload", Bucket=self.bucket, Key=self.object_key))
        except BaseException:
            after = self._uploads() if before is not None else None
            orphans = 0
            try:
                for upload_id in sorted((after or set()) - (before or set())):
                    parts = self.fs.call_s3(
                        "list_parts", Bucket=self.bucket, Key=self.object_key, UploadId=upload_id, MaxParts=1
                    )
                    if not parts.get("Parts"):
                        self.fs.call_s3(
                            "abort_multipart_upload", Bucket=self.bucket, Key=self.object_key, UploadId=upload_id
                        )
                        orphans += 1
            except Exception as exc:
                after = None
                log.debug("Checking for uploads left by the failed create of %s: %s", self.uri, exc)
            if after is None:
                log.warning(
                    "Starting the upload to %s failed, and whether its retries left unfinished uploads could not be "
                    "checked: a later write of this key aborts them once stale, as does an "
                    "AbortIncompleteMultipartUpload lifecycle rule on the bucket",
                    self.uri,
                )
            elif orphans:
                log.info(
                    "Aborted %d upload(s) to %s started by retries of a create whose answer was lost", orphans, self.uri
                )
            raise

    def _send(self, data: bytes) -> None:
        import asyncio

        self._raise_failed()
        while len(self.pending) >= self.in_flight:
            self._collect(self.pending.pop(0))
        number = len(self.parts) + len(self.pending) + 1
        coroutine = self.fs._call_s3(
            "upload_part",
            Bucket=self.bucket,
            Key=self.object_key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=data,
        )
        self.pending.append((number, asyncio.run_coroutine_threadsafe(coroutine, self.fs.loop)))

    def _raise_failed(self) -> None:
        """A part the store already refused ends the write now, not parts later."""
        for pending in self.pending:
            future = pending[1]
            if future.done() and (future.cancelled() or future.exception() is not None):
                self._collect(pending)  # raises its error

    def _collect(self, pending: tuple[int, Any]) -> None:
        number, future = pending
        try:
            etag = future.result()["ETag"]
        except Exception as exc:
            self._explain_lost_upload(exc)
            raise
        self.parts.append({"PartNumber": number, "ETag": etag})

    def _explain_lost_upload(self, exc: BaseException) -> None:
        """If our upload is gone (NoSuchUpload), say who may have removed it, instead of the bare error."""
        from airflow_task_runs.core.errors import DestinationWriteError

        try:
            self.fs.call_s3("list_parts", Bucket=self.bucket, Key=self.object_key, UploadId=self.upload_id, MaxParts=1)
        except FileNotFoundError:  # s3fs's NoSuchUpload
            pass
        except Exception:  # the store cannot tell: keep the original error
            return
        else:
            return
        self.upload_id = None  # nothing left to abort
        raise DestinationWriteError(
            f"writing {self.uri} failed: its multipart upload no longer exists ({type(exc).__name__}: {exc}). "
            "Another writer of the same key may have aborted it as stale: a second writer (a zombie try next "
            "to its retry, two DAG runs writing the same literal key) aborts uploads to its key that saw no "
            f"part for [task_runs] stale_upload_age ({stale_upload_age():g} s). Nothing of this write was "
            "committed; give concurrent runs distinct destinations (template them with {{ run_id }})"
        ) from exc

    def write(self, chunk: bytes) -> None:
        """Hold the chunks (no copy) until a part is full, then join them: one copy per byte."""
        self._raise_failed()
        if not isinstance(chunk, bytes):  # a caller's buffer may be reused after we return
            chunk = bytes(chunk)
        self.written += len(chunk)
        view = memoryview(chunk)
        while view:
            piece = view[: self.part_size - self.held_size]
            view = view[len(piece) :]
            self.held.append(piece)
            self.held_size += len(piece)
            if self.held_size == self.part_size:
                self._send_held()

    def _send_held(self) -> None:
        part = b"".join(self.held)
        self.held, self.held_size = [], 0
        self._send(part)
        if self.grows and (len(self.parts) + len(self.pending)) % PARTS_PER_SIZE == 0:
            self.part_size *= 2

    def finish(self) -> None:
        if self.written == 0:  # an empty object: no upload, one empty PUT when published
            self.abandon()
            return
        if self.held:
            self._send_held()  # the last part may be small
        while self.pending:
            self._collect(self.pending.pop(0))

    def publish(self, keep_previous: bool = False) -> None:
        if self.written == 0:
            self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.object_key, Body=b"")
        else:
            try:
                self.fs.call_s3(
                    "complete_multipart_upload",
                    Bucket=self.bucket,
                    Key=self.object_key,
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": self.parts},
                )
            except Exception as exc:
                self._explain_lost_upload(exc)
                raise
            self.upload_id = None
        self.fs.invalidate_cache(self.key)

    def abandon(self) -> None:
        for _, future in self.pending:
            future.cancel()
        for _, future in self.pending:
            try:
                future.result(timeout=60)
            except BaseException:  # cancelled or failed: either way it is over
                pass
        self.pending = []
        if self.upload_id is not None:
            try:
                self.fs.call_s3(
                    "abort_multipart_upload", Bucket=self.bucket, Key=self.object_key, UploadId=self.upload_id
                )
            except Exception as exc:
                log.warning("Could not abort the upload to %s (%s: %s)", self.uri, type(exc).__name__, exc)
            self.upload_id = None


def abort_stale_uploads(fs: Any, key: str, max_age: float | None = None) -> set[str] | None:
    """Abort unfinished S3 multipart uploads to exactly ``key`` that saw no activity for ``max_age`` seconds.

    Returns the ids of the uploads to ``key`` left unfinished (recent ones), or None when the
    store would not list them.

    They are what a killed writer (SIGKILL, OOM) leaves: invisible, but billed. A live writer's
    upload to the same key (a zombie try next to its retry, two DAG runs writing one literal key)
    is left alone as long as it keeps uploading parts: activity is its newest part's
    ``LastModified``, or ``Initiated`` before the first part. ``max_age`` defaults to
    ``[task_runs] stale_upload_age``. Best effort: no permission to list uploads skips it.
    """
    from datetime import datetime, timedelta, timezone

    if not hasattr(fs, "split_path") or not hasattr(fs, "call_s3"):
        return None
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=stale_upload_age() if max_age is None else max_age)
    aborted = 0
    kept: set[str] = set()
    try:
        bucket, object_key, _ = fs.split_path(key)
        listing = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=object_key)
        for upload in listing.get("Uploads", []):
            if upload.get("Key") != object_key:
                continue
            if _last_activity(fs, bucket, object_key, upload, cutoff) >= cutoff:
                kept.add(upload["UploadId"])
                continue
            fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=object_key, UploadId=upload["UploadId"])
            aborted += 1
    except Exception as exc:  # no permission to list uploads, missing bucket (the write will say): skip
        log.debug("Not checking for stale multipart uploads to %s: %s", key, exc)
        return None
    if aborted:
        log.info("Aborted %d unfinished multipart upload(s) to %s left by an interrupted fetch", aborted, key)
    if kept:
        log.warning(
            "%d other unfinished multipart upload(s) to %s are recent, so they may be a live writer's (a zombie "
            "try, or another DAG run writing the same key): left alone. The last upload completed wins",
            len(kept),
            key,
        )
    return kept


def _last_activity(fs: Any, bucket: str, key: str, upload: dict[str, Any], cutoff: Any) -> Any:
    """When an upload last moved: its newest part, else its start (parts are listed only when needed)."""
    latest = upload["Initiated"]
    if latest >= cutoff:
        return latest
    marker = 0
    for _ in range(10):  # 1,000 parts a page, S3 allows 10,000
        page = fs.call_s3("list_parts", Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumberMarker=marker)
        for part in page.get("Parts", []):
            latest = max(latest, part["LastModified"])
        if not page.get("IsTruncated") or latest >= cutoff:
            break
        marker = page["NextPartNumberMarker"]
    return latest


class OutputSet:
    """Outputs written together: all of them appear, or none.

    ``with OutputSet() as outputs: outputs.write(path, chunks)``. Each member is written in full
    (and size-checked) but stays invisible; leaving the block without an error publishes them in
    the order written. An error anywhere before that abandons every member: nothing appears.

    With two members or more, the last one written is the set's manifest (OCI's
    ``output_parameters.json``): it appears last, so its presence marks a complete set. Over an
    older set, the old manifest is taken away before any member is replaced, so a reader keyed on
    the manifest never takes a mix of old and new members for a complete set. An error while
    publishing removes the members already published; on local files, where the versions they
    replaced were kept (hard links, no copy), those and the old manifest are put back, so the
    folder holds the old set as it was. On object stores replaced members are not kept (no
    second copy): the old manifest (kept in memory when small) is put back only if no member had
    been replaced yet; otherwise the folder is left without a manifest, and the error says so.
    """

    def __init__(self) -> None:
        self._staged: list[_Staged] = []
        self._locks: dict[Path, _WriterLock] = {}
        #: local folders this set created, deepest first: removed (when empty) if nothing is published
        self._made_dirs: list[Path] = []
        self.uris: list[str] = []
        self.published = False

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if exc_type is not None:
                self._abandon(self._staged)
                return
            self.publish()
        finally:
            self._release_locks()
            if not self.published:
                for folder in self._made_dirs:
                    try:
                        folder.rmdir()  # only if empty: another writer's file keeps it
                    except OSError:
                        break

    def write(
        self,
        destination: ObjectStoragePath | str,
        chunks: Iterable[bytes],
        *,
        expected_size: int | None = None,
    ) -> str:
        """Stream ``chunks`` to ``destination`` (not yet visible); return its URI."""
        from airflow.sdk import ObjectStoragePath

        from airflow_task_runs.core.errors import DestinationConfigError, OutputIntegrityError

        final = destination if isinstance(destination, ObjectStoragePath) else resolve_destination(destination).path
        uri = plain_uri(final)
        if any(member.uri == uri for member in self._staged):
            raise DestinationConfigError(f"{uri} is written twice in one output set; give each output its own name")
        staged: _Staged = self._sink(uri, lambda: self._stage(final, expected_size))
        self._staged.append(staged)
        written = 0
        for chunk in chunks:  # errors of the source (the cloud) propagate as they are
            if chunk:
                self._sink(uri, lambda chunk=chunk: staged.write(chunk))  # type: ignore[misc]
                written += len(chunk)
        if expected_size is not None and written != expected_size:
            raise OutputIntegrityError(
                f"{uri}: received {written} bytes but the source declared {expected_size}; "
                "nothing was written at the destination"
            )
        self._sink(uri, staged.finish)
        self.uris.append(uri)
        log.info("Wrote %d bytes to %s", written, uri)
        return uri

    def _stage(self, final: ObjectStoragePath, expected_size: int | None) -> _Staged:
        if _is_local(final):
            folder = Path(final.path).parent
            while not folder.exists() and folder != folder.parent:
                self._made_dirs.append(folder)
                folder = folder.parent
            return _LocalStaged(final, self._claim)
        fs = final.fs
        if hasattr(fs, "call_s3") and hasattr(fs, "split_path"):  # s3fs
            return _S3Staged(final, part_size_for(expected_size), size_known=bool(expected_size))
        return _StoreStaged(final, part_size_for(expected_size))

    def _claim(self, folder: Path) -> _WriterLock:
        """This set's lock in ``folder`` (one per folder, however many members go there)."""
        if folder not in self._locks:
            self._locks[folder] = _WriterLock(folder)
        return self._locks[folder]

    def _release_locks(self) -> None:
        for lock in self._locks.values():
            lock.release()
        self._locks = {}

    @staticmethod
    def _sink(uri: str, action: Callable[[], Any]) -> Any:
        """Run a store operation; its failure becomes a DestinationWriteError naming the URI."""
        from airflow_task_runs.core.errors import DestinationConfigError, DestinationWriteError

        try:
            return action()
        except (DestinationConfigError, DestinationWriteError):
            raise
        except Exception as exc:
            raise DestinationWriteError(
                f"writing {uri} failed: {type(exc).__name__}: {exc}; nothing was left at the destination"
            ) from exc

    def publish(self) -> None:
        if self.published:
            return
        self.published = True
        members = self._staged
        manifest = members[-1] if len(members) > 1 else None
        restorable = True
        if manifest is not None:  # before any member is replaced: an old manifest must not vouch for a mix
            try:
                restorable = self._sink(manifest.uri, manifest.withdraw_previous)
            except BaseException:
                self._abandon(members)
                raise
        done: list[_Staged] = []
        for index, staged in enumerate(members):
            try:
                staged.publish(keep_previous=manifest is not None)
            except BaseException as exc:
                self._abandon(members[index:])
                outcome = self._roll_back(done, manifest, restorable)
                self._publish_failed(staged.uri, exc, outcome)
            done.append(staged)
        for staged in members:
            staged.forget_previous()

    @staticmethod
    def _roll_back(published: list[_Staged], manifest: _Staged | None, restorable: bool) -> str:
        """Undo a publish that failed part way; say what the destination holds now."""
        unpublished = True
        for member in reversed(published):
            try:
                member.unpublish()  # local: the version it replaced is back; elsewhere: deleted
            except Exception as exc:
                unpublished = False
                log.warning("Could not remove %s (%s: %s)", member.uri, type(exc).__name__, exc)
        if manifest is None:
            return "nothing was written there (a previous object at that name is unchanged)"
        removed = f"the {len(published)} output(s) of this set already published were removed"
        local = all(isinstance(member, _LocalStaged) for member in [*published, manifest])
        if unpublished and restorable and (local or not published):
            try:
                manifest.restore_previous()
            except Exception as exc:
                log.warning("Could not put back %s (%s: %s)", manifest.uri, type(exc).__name__, exc)
            else:
                if not published:
                    return "nothing of this set was published: the folder holds what it held before"
                return (
                    f"{removed} and the versions they replaced were put back: the folder holds what it held "
                    "before (including any previous set and its manifest)"
                )
        return (
            f"{removed}; a previous {manifest.uri} was deleted before any member was replaced, so no manifest "
            "vouches for that folder now: members of an older set there may have been replaced or removed. "
            "Run the task again to write the set"
        )

    @staticmethod
    def _publish_failed(uri: str, exc: BaseException, outcome: str) -> None:
        from airflow_task_runs.core.errors import DestinationConfigError, DestinationWriteError

        if not isinstance(exc, Exception):
            raise exc
        if isinstance(exc, (DestinationConfigError, DestinationWriteError)):
            raise type(exc)(f"{exc}; {outcome}") from exc
        raise DestinationWriteError(f"publishing {uri} failed: {type(exc).__name__}: {exc}; {outcome}") from exc

    @staticmethod
    def _abandon(staged: list[_Staged]) -> None:
        for member in staged:
            try:
                member.abandon()
            except Exception as exc:
                log.warning("Could not clean up %s (%s: %s)", member.uri, type(exc).__name__, exc)


def write_atomically(
    destination: ObjectStoragePath | str,
    chunks: Iterable[bytes],
    *,
    expected_size: int | None = None,
) -> str:
    """Stream ``chunks`` to ``destination``; the object appears only when complete. Returns its URI."""
    with OutputSet() as outputs:
        uri = outputs.write(destination, chunks, expected_size=expected_size)
    return uri


def write_bytes_atomically(destination: ObjectStoragePath | str, data: bytes) -> str:
    return write_atomically(destination, _chunked(data), expected_size=len(data))


def _chunked(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), CHUNK_SIZE):
        yield bytes(view[start : start + CHUNK_SIZE])


def json_safe(value: Any) -> Any:
    """Round-trip through JSON so what reaches XCom is plain data."""
    import json

    return json.loads(json.dumps(value, default=str))
