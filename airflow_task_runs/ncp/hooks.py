"""NAVER Cloud NCLUE: task runs over the API Gateway, result files from NCP Object Storage."""

from __future__ import annotations

import posixpath
import urllib.parse
from collections.abc import AsyncIterator, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_task_runs.core.connection_test import ConnectionProbe, check_choice, run_probe, single_attempt
from airflow_task_runs.core.hooks import HttpTaskRunHook, StatusPair, normalize_url
from airflow_task_runs.core.shared import RecentListing
from airflow_task_runs.core.states import RunState, RunStatus, StatusTable

if TYPE_CHECKING:
    import httpx
    from airflow.sdk import Connection

    from airflow_task_runs.core.http import ApiSession
    from airflow_task_runs.ncp.models import TaskRun, TaskRunList

DEFAULT_API_URL = "https://nclue.apigw.ntruss.com"
DEFAULT_OBJECT_STORAGE_ENDPOINT = "https://kr.object.ncloudstorage.com"
DEFAULT_OBJECT_STORAGE_REGION = "kr-standard"
NCP_REGIONS = ("kr-standard", "us-standard", "sg-standard", "jp-standard", "de-standard")
API_PREFIX = "/api/v1"
#: NCLUE's largest list page, and how many pages one coalesced round may read at most
LIST_PAGE = 100
MAX_LIST_PAGES = 20
#: a watched run not asked for in this long is no longer looked for in list reads
WATCH_FORGET = 3600.0

TASK_RUN_STATES = StatusTable(
    "NCP NCLUE",
    {
        RunState.PENDING: ("registered", "pending"),
        RunState.RUNNING: ("in_progress",),
        # NCP's own pages spell success both ways.
        RunState.SUCCEEDED: ("completed", "complete"),
        RunState.FAILED: ("failed",),
    },
    case_sensitive=False,
)


def _parse_error(response: httpx.Response, body: Any) -> tuple[str | None, str | None, str | None]:
    """API Gateway errors: ``{"error": {"errorCode": "...", "message": "..."}}``."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code = err.get("errorCode")
            return (str(code) if code is not None else None), err.get("message"), None
        if "message" in body:
            code = body.get("errorCode") or body.get("code")
            return (str(code) if code is not None else None), body.get("message"), None
    return None, None, None


def safe_object_key(path: str | None, conn_id: str = "", *, field: str = "result_file_path") -> str:
    """Refuse a key that is absolute or climbs out of the bucket with ``..``."""
    if not path or not path.strip():
        raise ValueError(f"{field} is empty: the run has no result file")
    if path.startswith("/") or "\\" in path or any(part == ".." for part in path.split("/")):
        raise ValueError(f"refusing {field} {path!r}: it must be a relative key without '..'")
    normalized = posixpath.normpath(path)
    if normalized.startswith(".."):
        raise ValueError(f"refusing {field} {path!r}: it escapes the bucket")
    return path


#: what NCP's "Create task run" page refuses in ``result_file_path`` (besides codes 0-31 and 128-255)
RESULT_PATH_FORBIDDEN = "&$@=;:+,?*\\{}^%`[]<>~#|\"'"
#: longest run ``name`` the page allows
MAX_RUN_NAME = 100
#: statuses NCLUE lets a run be deleted in; of those only ``registered`` has not started
DELETABLE = ("registered", "completed", "complete", "failed")


def task_run_request(
    *, name: str, task_id: str, feature_id: str, result_bucket: str, result_file_path: str
) -> dict[str, str]:
    """The body of ``POST /task-runs``, checked as NCP's "Create task run" page says.

    Every field is required; ``name`` is 1-100 characters; ``result_file_path`` must avoid the
    page's forbidden characters (and, so the fetch operator can read the result back, must be a
    relative key without ``..``). A path ending in ``/`` is a folder: NCLUE names the file
    ``nclue_<random>_<time>.tsv`` in it; otherwise it appends ``_<random>_<time>.tsv``.
    """
    fields = {
        "name": name,
        "task_id": task_id,
        "feature_id": feature_id,
        "result_bucket": result_bucket,
        "result_file_path": result_file_path,
    }
    param = {"task_id": "nclue_task_id", "feature_id": "feature_id"}
    for key, value in fields.items():
        if not isinstance(value, str) or not value.strip():
            raise ValueError(
                f"NCLUE create task run: {param.get(key, key)} is missing or empty; it is required "
                f"({key!r} in POST /api/v1/task-runs)"
            )
    if len(name) > MAX_RUN_NAME:
        raise ValueError(f"NCLUE create task run: name is {len(name)} characters; NCLUE allows 1-{MAX_RUN_NAME}")
    if "/" in result_bucket:
        raise ValueError(f"NCLUE create task run: result_bucket {result_bucket!r} is a bucket name, not a path")
    bad = sorted({c for c in result_file_path if c in RESULT_PATH_FORBIDDEN or ord(c) < 32 or 127 < ord(c) < 256})
    if bad:
        raise ValueError(
            f"NCLUE create task run: result_file_path {result_file_path!r} contains {''.join(bad)!r}, "
            f"which NCLUE refuses (forbidden: {RESULT_PATH_FORBIDDEN} and character codes 0-31, 128-255)"
        )
    if not result_file_path.endswith("/"):
        safe_object_key(result_file_path, field="result_file_path")
    elif result_file_path.startswith("/") or ".." in result_file_path.split("/"):
        raise ValueError(
            f"NCLUE create task run: result_file_path {result_file_path!r} must be a relative key without '..'"
        )
    return fields


def _may_have_been_received(exc: BaseException) -> bool:
    """Whether a failed POST may still have reached NCLUE (no answer, a timeout or a 5xx)."""
    import httpx

    from airflow_task_runs.core.errors import ApiError

    if isinstance(exc, httpx.TransportError):
        return not isinstance(exc, httpx.ConnectError)  # a refused connection sent nothing
    if isinstance(exc, ApiError):
        if exc.status_code is None:  # a transport error, mapped by the session (its class in ``code``)
            return exc.code not in ("ConnectError", "ConnectTimeout")  # a refused connection sent nothing
        return exc.status_code == 408 or exc.status_code >= 500
    return False


def _oldest_first(runs: Sequence[TaskRun]) -> bool:
    """Whether a list page runs oldest first (its ``created_at`` rises); unknown counts as newest first."""
    stamps = [run.created_at for run in runs if run.created_at]
    return len(stamps) >= 2 and stamps[0] < stamps[-1]


@dataclass
class _ListCursor:
    """Where the last list read stopped, so a later round can read on from there."""

    oldest_first: bool
    total: int
    #: newest first: the index of the next page; oldest first: the end of the next page
    position: int
    #: runs page 0 held: oldest first, the pages read from the end stop there
    floor: int = 0
    #: runs a page asks for: fewer than LIST_PAGE where the server gives fewer than asked
    step: int = LIST_PAGE
    pages: int = 1


class NclueHook(HttpTaskRunHook):
    """NCLUE task runs, signed with the API Gateway signature v2.

    Connection ``ncp``: Login = Access Key ID, Password = Secret Key, Host = API Gateway URL
    (default ``https://nclue.apigw.ntruss.com``); extra ``object_storage_endpoint`` and
    ``object_storage_region`` for result files, ``connect_timeout`` / ``read_timeout``,
    ``retry_max_attempts`` / ``retry_max_elapsed``, ``verify``.
    """

    conn_name_attr = "ncp_conn_id"
    default_conn_name = "ncp_default"
    conn_type = "ncp"
    hook_name = "NAVER Cloud (NCP)"

    def __init__(self, ncp_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(ncp_conn_id, **kwargs)
        self.ncp_conn_id = ncp_conn_id
        #: the runs the last list read showed (core.shared.LIST_FRESHNESS)
        self._listed: RecentListing[TaskRun] = RecentListing()
        #: every run watched through this hook, and when it was last asked for: a list read
        #: looks for all of them, not only the ones whose round happens to run it
        self._watched: dict[str, float] = {}
        #: the page each watched run was last seen on, counted in reading order (1 = the first read)
        self._seen_on_page: dict[str, int] = {}
        #: where the read behind ``_listed`` stopped
        self._cursor: _ListCursor | None = None
        self._object_storage: ApiSession | None = None

    # -- session -----------------------------------------------------------------------------
    def _credentials(self, conn: Connection) -> tuple[str, str]:
        access_key = self.require(conn, conn.login, "Access Key ID (login)", "set Login to your NCP Access Key ID")
        secret_key = self.require(conn, conn.password, "Secret Key (password)", "set Password to your NCP Secret Key")
        return access_key, secret_key

    def api_url(self, conn: Connection) -> str:
        host = (conn.host or "").strip()
        if not host:
            return DEFAULT_API_URL
        url = normalize_url(host)
        if conn.port and urllib.parse.urlsplit(url).port is None:
            url = f"{url}:{conn.port}"
        return url

    def _build_session(self, conn: Connection) -> ApiSession:
        from airflow_task_runs.core.http import ApiDialect, ApiSession
        from airflow_task_runs.ncp.auth import NcpApiGatewayAuth

        access_key, secret_key = self._credentials(conn)
        extra = self.extra_of(conn)
        return ApiSession.for_connection(
            self.api_url(conn) + API_PREFIX,
            extra,
            conn.conn_id,
            dialect=ApiDialect(
                cloud="NCP NCLUE",
                request_id_headers=("x-ncp-trace-id", "x-request-id"),
                parse_error=_parse_error,
            ),
            auth=NcpApiGatewayAuth(access_key, secret_key),
        )

    # -- task runs ---------------------------------------------------------------------------
    @staticmethod
    def _page_params(index: int, limit: int) -> dict[str, int]:
        if not isinstance(index, int) or index < 0:
            raise ValueError(f"index must be an integer >= 0, got {index!r}")
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            raise ValueError(f"limit must be an integer from 1 to 100 (NCLUE's bound), got {limit!r}")
        return {"index": index, "limit": limit}

    @staticmethod
    def _run_path(run_id: str) -> str:
        from airflow_task_runs.core.ids import path_segment

        run_id = path_segment(run_id, "run_id", "pass the NCLUE task run id (run_id in the task-runs list)")
        return f"/task-runs/{urllib.parse.quote(run_id, safe='')}"

    def list_task_runs(self, index: int = 0, limit: int = 20) -> TaskRunList:
        from airflow_task_runs.ncp.models import TaskRunList

        session = self.session
        body, response = session.request_json("GET", "/task-runs", params=self._page_params(index, limit))
        page: TaskRunList = session.parse_model(TaskRunList, body, response)
        return page

    async def alist_task_runs(self, index: int = 0, limit: int = 20) -> TaskRunList:
        from airflow_task_runs.ncp.models import TaskRunList

        session = await self.asession()
        body, response = await session.arequest_json("GET", "/task-runs", params=self._page_params(index, limit))
        page: TaskRunList = session.parse_model(TaskRunList, body, response)
        return page

    def iter_task_runs(self, page_size: int = 100) -> Iterator[TaskRun]:
        """Every task run, page by page."""
        index = 0
        while True:
            page = self.list_task_runs(index=index, limit=page_size)
            yield from page.runs
            index += len(page.runs)
            if not page.runs or index >= page.total:
                return

    async def aiter_task_runs(self, page_size: int = 100) -> AsyncIterator[TaskRun]:
        index = 0
        while True:
            page = await self.alist_task_runs(index=index, limit=page_size)
            for run in page.runs:
                yield run
            index += len(page.runs)
            if not page.runs or index >= page.total:
                return

    def get_task_run(self, run_id: str) -> TaskRun:
        session = self.session
        return self._task_run(session, *session.request_json("GET", self._run_path(run_id)))

    async def aget_task_run(self, run_id: str) -> TaskRun:
        session = await self.asession()
        return self._task_run(session, *await session.arequest_json("GET", self._run_path(run_id)))

    @staticmethod
    def _task_run(session: ApiSession, body: Any, response: httpx.Response) -> TaskRun:
        from airflow_task_runs.ncp.models import TaskRun

        run: TaskRun = session.parse_model(TaskRun, body, response)
        return run

    @staticmethod
    def status_of(run: TaskRun) -> RunStatus:
        return TASK_RUN_STATES.status(
            run.status,
            message=run.fail_message,
            request_id=run.request_id,
            details=run.model_dump(mode="json"),
        )

    status_kinds = frozenset({"task_run"})
    triggerer_modules = (
        *HttpTaskRunHook.triggerer_modules,
        "airflow_task_runs.ncp.models",
    )

    def status_pair(self, kind: str) -> StatusPair:
        return StatusPair(self.get_status, self.aget_status)

    def get_status(self, run_id: str) -> RunStatus:
        return self.status_of(self.get_task_run(run_id))

    async def aget_status(self, run_id: str) -> RunStatus:
        return self.status_of(await self.aget_task_run(run_id))

    # -- coalesced polling: the newest list pages answer every watch on the connection ------
    def batch_key(self, kind: str, ref: Mapping[str, Any]) -> Hashable | None:
        """Every task-run watch on this connection can share the list pages."""
        return "task-runs" if kind == "task_run" else None

    async def arun_statuses(self, kind: str, refs: Sequence[Mapping[str, Any]]) -> list[RunStatus | BaseException]:
        """The newest ``GET /task-runs`` pages (limit 100) for all, ``GET /task-runs/{id}`` for runs not in them.

        The list is read once per round whatever the number of watches: as many pages as the
        watches could fill, plus two, deeper where watched runs were last seen, and on where runs
        asked for the first time are not in it yet; at most :data:`MAX_LIST_PAGES`. A list call that fails
        (after the session's retries, made once for everyone) fails the round for every watch.
        """
        from airflow_task_runs.core.shared import answer_each, gather_statuses

        wanted = {str(ref.get("run_id")) for ref in refs}
        found = await self._anewest_runs(wanted)
        missing = [ref for ref in refs if str(ref.get("run_id")) not in found]
        fallback = await gather_statuses(lambda ref: self.aget_status(**ref), missing)
        alone = dict(zip((str(ref.get("run_id")) for ref in missing), fallback, strict=True))

        def answer(ref: Mapping[str, Any]) -> RunStatus | BaseException:
            run_id = str(ref.get("run_id"))
            return self.status_of(found[run_id]) if run_id in found else alone[run_id]

        return await answer_each(refs, answer)

    async def _anewest_runs(self, wanted: set[str]) -> dict[str, TaskRun]:
        """The watched runs found in the newest list pages, by id.

        NCLUE's page does not say its order, so the hook reads it from ``created_at``: newest
        first, the newest pages start at index 0; oldest first, they are the last ones (read from
        the end, never overlapping page 0, so no run is seen twice in a round).

        Runs asked for the first time that the pages read so far lack (their watches' first polls
        came in a later round than the read, or the read stopped short of them) are looked for in
        the pages that follow, from where the read stopped: at most a page fewer than the runs.
        """
        import time

        now = time.monotonic()
        first_asked = {run_id for run_id in wanted if run_id not in self._watched}
        self._watched.update(dict.fromkeys(wanted, now))
        seen, cursor = self._listed.fresh(), self._cursor
        on_page: dict[str, int] = {}
        if seen is None:  # a new read; a fresh one answers this round too
            for run_id, asked in list(self._watched.items()):
                if now - asked > WATCH_FORGET:  # a watch that went away without its run ending
                    del self._watched[run_id]
            wanted = wanted | self._watched.keys()
            budget = self._page_budget(wanted)
            first = await self.alist_task_runs(index=0, limit=LIST_PAGE)
            seen = {run.run_id: run for run in first.runs}
            on_page = dict.fromkeys(seen, 1)
            oldest_first = _oldest_first(first.runs)
            got = len(first.runs)
            cursor = _ListCursor(
                oldest_first,
                first.total,
                position=first.total if oldest_first else got,
                floor=got,
                step=got if 0 < got < min(LIST_PAGE, first.total) else LIST_PAGE,  # the server's own page size
            )
            await self._read_on(cursor, seen, on_page, wanted, budget)
            # whole (a read cut short by an error is not kept), and not over a newer one
            if self._listed.store(seen, read_at=now):
                self._cursor = cursor
        unseen = len(first_asked - seen.keys())
        if unseen > 1 and cursor is not None:
            # at most a page fewer than their GETs by id: reading on costs less even when it
            # finds none of them (they are newer than the read, or gone), and happens once a run.
            # It only saves calls: if it fails, the runs are read by id as they would have been.
            try:
                await self._read_on(cursor, seen, on_page, wanted, cursor.pages + unseen - 1)
            except Exception as exc:
                self.log.debug("NCLUE list read on failed, reading %d runs by id instead: %s", unseen, exc)
        remembered = {run_id: page for run_id, page in self._seen_on_page.items() if run_id in self._watched}
        remembered.update((run_id, on_page[run_id]) for run_id in self._watched if run_id in on_page)
        self._seen_on_page = remembered
        for run_id in on_page:
            if run_id in self._watched and TASK_RUN_STATES.is_terminal(seen[run_id].status):
                del self._watched[run_id]  # its watch ends with this answer
        return {run_id: seen[run_id] for run_id in wanted if run_id in seen}

    async def _read_on(
        self, cursor: _ListCursor, seen: dict[str, TaskRun], on_page: dict[str, int], wanted: set[str], budget: int
    ) -> None:
        """Read the pages after ``cursor`` into ``seen`` until ``wanted`` are all seen, the list
        ends, or ``budget`` pages (counted from the read's first) are read."""
        while cursor.pages < min(budget, MAX_LIST_PAGES) and not wanted <= seen.keys():
            if cursor.oldest_first:
                if cursor.position <= cursor.floor:  # the rest is page 0, read first
                    return
                start = max(cursor.floor, cursor.position - cursor.step)
                page = await self.alist_task_runs(index=start, limit=cursor.position - start)
                if 0 < len(page.runs) < cursor.position - start and start + len(page.runs) < page.total:
                    # the server gave fewer than asked, short of the list's end: what is left next
                    # to the read is asked for in pages of the size it gives (the runs got come again)
                    cursor.step = len(page.runs)
                else:  # all of it, or the list has shrunk since page 0 and this page reached its end
                    cursor.position = start
            else:
                if cursor.position >= cursor.total:
                    return
                page = await self.alist_task_runs(index=cursor.position, limit=LIST_PAGE)
                cursor.position = cursor.position + len(page.runs) if page.runs else cursor.total
            cursor.pages += 1
            seen.update((run.run_id, run) for run in page.runs)
            on_page.update(dict.fromkeys((run.run_id for run in page.runs), cursor.pages))

    def _page_budget(self, wanted: set[str]) -> int:
        """How many list pages a read may take: enough for as many runs as are watched, plus 2,
        and deeper while each page more finds more watched runs (last seen there) than it costs.

        Counting alone assumes the watched runs are the newest. When newer watched runs end,
        the older ones stay deep behind them, and each would be read by id every round.
        """
        base = min(MAX_LIST_PAGES, len(wanted) // LIST_PAGE + 2)
        deeper = sorted(page for run_id, page in self._seen_on_page.items() if run_id in wanted and page > base)
        budget, saved = base, 0
        for found, page in enumerate(deeper, start=1):  # pages seen are never past MAX_LIST_PAGES
            if found - (page - base) > saved:  # GETs this depth saves, less the pages it costs
                budget, saved = page, found - (page - base)
        return budget

    # -- create and cancel (NCP pages "Create task run" and "Delete task run") ---------------
    #: the look-up by name reads at most this many pages of 100 runs (a server whose ``total`` keeps
    #: growing, or lies, must not keep a task paging for ever)
    MAX_LOOKUP_PAGES = 500

    def find_task_runs(self, name: str, task_id: str | None = None, feature_id: str | None = None) -> list[TaskRun]:
        """Every run named ``name`` (and, when given, on that task and feature), oldest first."""
        from airflow_task_runs.core.errors import CreateOutcomeUnknownError

        page_size = 100
        found = []
        for seen, run in enumerate(self.iter_task_runs(page_size=page_size), start=1):
            if seen > self.MAX_LOOKUP_PAGES * page_size:
                raise CreateOutcomeUnknownError(
                    f"NCLUE look-up of task run {name!r} read {self.MAX_LOOKUP_PAGES} pages of "
                    f"{page_size} runs without reaching the end of the list; the outcome of the create "
                    "cannot be told. Check the task runs in the NCP console before retrying"
                )
            if (
                run.run_name == name
                and (task_id is None or run.task_id == task_id)
                and (feature_id is None or run.feature_id == feature_id)
            ):
                found.append(run)
        return found

    def find_created_run(self, request: dict[str, str], exclude: tuple[str, ...] = ()) -> TaskRun | None:
        """The run a create ``request`` made, if NCLUE has it: the newest match not in ``exclude``."""
        matches = [
            run
            for run in self.find_task_runs(request["name"], request["task_id"], request["feature_id"])
            if run.run_id not in exclude
        ]
        if len(matches) > 1:
            self.log.warning(
                "NCLUE has %d runs named %r on this task and feature (%s); taking the newest. "
                "Give each run its own name so a retry can tell them apart",
                len(matches),
                request["name"],
                ", ".join(r.run_id for r in matches),
            )
        return max(matches, key=lambda r: r.created_at or "") if matches else None

    def create_task_run(self, request: dict[str, str], exclude: tuple[str, ...] = ()) -> str:
        """``POST /task-runs`` exactly once; the new run's id.

        NCLUE takes no idempotency token, so the POST is never retried. When it fails in a way
        that may have created the run (no answer, a timeout, a 5xx), the run is looked up by
        name first: found, its id is returned; not found, :class:`CreateOutcomeUnknownError`
        says so, and the next attempt looks again before creating.
        """
        from airflow_task_runs.core.errors import CreateOutcomeUnknownError
        from airflow_task_runs.ncp.models import CreatedTaskRun

        session = self.session
        try:
            body, response = session.request_json("POST", "/task-runs", json_body=request, retry_ok=False)
        except Exception as exc:
            if not _may_have_been_received(exc):
                raise
            self.log.warning("NCLUE create of %r failed (%s); looking it up by name", request["name"], exc)
            existing = self.find_created_run(request, exclude)
            if existing is None:
                raise CreateOutcomeUnknownError(
                    f"NCLUE create task run {request['name']!r} failed ({exc}) and no run of that name exists "
                    "yet. The request may still be processed; a retry of this task looks the run up by name "
                    "again before creating one"
                ) from exc
            self.log.info("NCLUE created run %s for %r after all", existing.run_id, request["name"])
            return existing.run_id
        created: CreatedTaskRun = session.parse_model(CreatedTaskRun, body, response)
        return created.run_id

    @staticmethod
    def _cancel_needed(run: TaskRun) -> bool:
        """Delete only a run that has not started; say clearly why a started run cannot be cancelled."""
        from airflow_task_runs.core.errors import RunNotCancellableError

        status = (run.status or "").lower()
        if status == "registered":
            return True
        if status in DELETABLE:
            return False  # it has ended: nothing to cancel (and its record is the user's)
        raise RunNotCancellableError(
            f"NCLUE task run {run.run_id} is {run.status}: NCLUE cancels a run only while it is registered "
            "(by deleting it); once pending or in_progress it runs to its end and cannot be stopped"
        )

    def _deleted(self, run_id: str, exc: Exception) -> bool:
        """A DELETE's error: 404 means it is gone (a retried DELETE); otherwise the run moved on."""
        from airflow_task_runs.core.errors import ApiError, RunNotCancellableError

        if isinstance(exc, ApiError) and exc.status_code == 404:
            return True
        if isinstance(exc, ApiError) and exc.status_code is not None and 400 <= exc.status_code < 500:
            raise RunNotCancellableError(
                f"NCLUE refused to delete task run {run_id} ({exc.message}): it has most likely left "
                "registered, and a started run cannot be cancelled"
            ) from exc
        return False

    def cancel_task_run(self, run_id: str) -> bool:
        """Cancel a run by deleting it while ``registered``; ``False`` when it had already ended.

        Raises :class:`RunNotCancellableError` for a run that is pending or in progress.
        """
        if not self._cancel_needed(self.get_task_run(run_id)):
            return False
        try:
            self.session.request_json("DELETE", self._run_path(run_id))
        except Exception as exc:
            if not self._deleted(run_id, exc):
                raise
        self.log.info("Cancelled NCLUE task run %s (deleted while registered)", run_id)
        return True

    async def acancel_task_run(self, run_id: str) -> bool:
        if not self._cancel_needed(await self.aget_task_run(run_id)):
            return False
        session = await self.asession()
        try:
            await session.arequest_json("DELETE", self._run_path(run_id))
        except Exception as exc:
            if not self._deleted(run_id, exc):
                raise
        self.log.info("Cancelled NCLUE task run %s (deleted while registered)", run_id)
        return True

    # -- result files (NCP Object Storage, S3 API with SigV4) --------------------------------
    def object_storage_client(self) -> Any:
        """A boto3 S3 client on NCP Object Storage, with the same key pair."""
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:  # pragma: no cover - depends on extras
            raise ImportError("Reading NCLUE result files needs boto3: pip install 'airflow-task-runs[ncp]'") from exc
        from airflow_task_runs.core.http import RetryPolicy, Timeouts
        from airflow_task_runs.core.secrets import protect_library_logs

        protect_library_logs()
        conn = self.connection
        access_key, secret_key = self._credentials(conn)
        extra = self.extra_of(conn)
        endpoint = normalize_url(str(extra.get("object_storage_endpoint") or DEFAULT_OBJECT_STORAGE_ENDPOINT))
        region = self.object_storage_region(conn)
        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            verify=extra.get("verify", True),
            # the connection's RetryPolicy and timeouts, as for the NCLUE API
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                **RetryPolicy.from_extra(extra, conn.conn_id).botocore_config(Timeouts.from_extra(extra, conn.conn_id)),
            ),
        )

    def object_storage_session(self) -> ApiSession:
        """An httpx session on NCP Object Storage (S3 API, SigV4), with the connection's key pair,
        retry policy, timeouts and ``max_output_bytes`` (see :mod:`airflow_task_runs.ncp.object_storage`)."""
        if self._object_storage is None:
            try:
                import botocore.auth  # noqa: F401  (the signer)
            except ImportError as exc:  # pragma: no cover - depends on extras
                raise ImportError(
                    "Reading NCLUE result files needs botocore: pip install 'airflow-task-runs[ncp]'"
                ) from exc
            from airflow_task_runs.core.http import ApiDialect, ApiSession
            from airflow_task_runs.ncp.object_storage import CLOUD, S3SigV4Auth, parse_error

            conn = self.connection
            access_key, secret_key = self._credentials(conn)
            extra = self.extra_of(conn)
            endpoint = normalize_url(str(extra.get("object_storage_endpoint") or DEFAULT_OBJECT_STORAGE_ENDPOINT))
            self._object_storage = ApiSession.for_connection(
                endpoint,
                extra,
                conn.conn_id,
                dialect=ApiDialect(cloud=CLOUD, request_id_headers=("x-amz-request-id",), parse_error=parse_error),
                auth=S3SigV4Auth(access_key, secret_key, self.object_storage_region(conn)),
            )
        return self._object_storage

    @contextmanager
    def open_result(self, run: TaskRun, chunk_size: int = 1024 * 1024) -> Iterator[tuple[int, Iterator[bytes]]]:
        """``(size in bytes, chunks)`` of the run's result file, read by key (never listed).

        Bounded like every output: refused over ``max_output_bytes``, its body bounded by progress;
        the response is closed when the block exits.
        """
        from airflow_task_runs.ncp.object_storage import open_object

        if not run.result_bucket:
            raise ValueError(f"NCLUE task run {run.run_id} has no result_bucket")
        key = safe_object_key(run.result_file_path)
        what = f"NCLUE task run {run.run_id} result {run.result_bucket}/{key}"
        with open_object(
            self.object_storage_session(),
            run.result_bucket,
            key,
            chunk_size=chunk_size,
            conn_id=self.ncp_conn_id,
            what=what,
        ) as opened:
            yield opened

    def close(self) -> None:
        super().close()
        if self._object_storage is not None:
            self._object_storage.close()
            self._object_storage = None

    async def aclose(self) -> None:
        await super().aclose()
        if self._object_storage is not None:
            self._object_storage.close()  # result files are read synchronously only
            self._object_storage = None

    def object_storage_region(self, conn: Connection) -> str:
        """The SigV4 region of NCP Object Storage, one of :data:`NCP_REGIONS`."""
        extra = self.extra_of(conn)
        region = str(extra.get("object_storage_region") or DEFAULT_OBJECT_STORAGE_REGION)
        if extra.get("allow_any_region"):
            return region
        return check_choice(
            conn.conn_id,
            "Object Storage region (extra object_storage_region)",
            region,
            NCP_REGIONS,
            'extra "allow_any_region": true',
        )

    # -- UI ----------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """List one task run, once; check the Object Storage settings too (result files need them)."""

        def describe() -> ConnectionProbe:
            conn = self.connection
            self._credentials(conn)
            self.object_storage_region(conn)
            single_attempt(self.session)
            return ConnectionProbe(
                cloud="NCP NCLUE",
                host=self.api_url(conn),
                credential_fields="Access Key ID (login) and Secret Key (password)",
                host_field="API Gateway URL (host)",
            )

        def call(probe: ConnectionProbe) -> str:
            page = self.list_task_runs(index=0, limit=1)
            return f"Connected to NCLUE at {probe.host}: {page.total} task run(s) visible"

        return run_probe(describe, call)


if TYPE_CHECKING:  # mypy checks the hook against the core contract; nothing runs at import
    from airflow_task_runs.core.hooks import RunStatusHook

    _contract: type[RunStatusHook] = NclueHook
