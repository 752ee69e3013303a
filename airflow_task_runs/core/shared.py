"""What one process builds once per connection: hooks (clients, keys, TLS), rate limits, list calls.

A triggerer runs every trigger in one event loop and module-level state is shared by all of
them, so this is where they meet:

- :class:`SharedHooks`: triggers on the same (hook class, hook kwargs) share one hook, hence one
  client, connection pool, credentials and private key; it is closed when the last one ends. It
  is rebuilt from the serialized kwargs alone, so a restarted triggerer needs nothing else.
- :class:`RateLimiter`: one per connection per process (triggers and worker threads alike),
  ``max_requests_per_second`` apart; a 429 with Retry-After pauses every caller once.
- :class:`Coalescer`: watches whose statuses one list call can answer wait for the same call.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import httpx

    from airflow_task_runs.core.hooks import RunStatusHook
    from airflow_task_runs.core.states import RunStatus

log = logging.getLogger(__name__)
_Item = TypeVar("_Item")

#: how long a coalescer waits for more watches before it makes the shared call
COALESCE_WINDOW = 0.02
#: pause after a 429 that gives no (usable) Retry-After
DEFAULT_429_PAUSE = 1.0


# -- rate limit ------------------------------------------------------------------------------
class RateLimiter:
    """Requests reach the wire at least ``1 / rate`` seconds apart; :meth:`pause` holds everyone back.

    Two gates, both thread-safe (workers poll from threads) and loop-agnostic: a caller reserves
    the next free slot under a lock and sleeps until it. *Admission* (before the request waits
    for a pooled connection) keeps the queue out of the connection pool; the *wire* gate (when
    the connection is about to send the request line, through httpx's ``trace`` extension)
    keeps the spacing exact even when connections open slowly and release a burst at once.
    """

    def __init__(self, rate: float | None, name: str = "") -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"max_requests_per_second must be > 0 (or unset for no limit), got {rate!r}")
        self.rate = rate
        self.name = name
        self._admit_next = 0.0
        self._wire_next = 0.0
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.pauses = 0  # how many 429s paused the connection (for logs and tests)

    def _reserve(self, wire: bool) -> float:
        """Seconds to wait for this caller's slot at one gate (0 when it may go now)."""
        if self.rate is None:  # no slots to hand out, only a 429's pause: no lock per request
            return max(0.0, self._paused_until - time.monotonic())
        with self._lock:
            now = time.monotonic()
            last = self._wire_next if wire else self._admit_next
            start = max(now, last, self._paused_until)
            if self.rate is not None:
                if wire:
                    self._wire_next = start + 1.0 / self.rate
                else:
                    self._admit_next = start + 1.0 / self.rate
            return start - now

    def _paused_for(self) -> float:
        return self._paused_until - time.monotonic()

    async def acquire(self, wire: bool = False) -> None:
        while True:
            wait = self._reserve(wire)
            if wait > 0:
                await asyncio.sleep(wait)
            if self._paused_for() <= 0:  # a 429 may have arrived while this caller slept
                return

    def acquire_sync(self, wire: bool = False) -> None:
        while True:
            wait = self._reserve(wire)
            if wait > 0:
                time.sleep(wait)
            if self._paused_for() <= 0:
                return

    def pause(self, seconds: float | None) -> None:
        """Hold every caller back ``seconds`` from now; overlapping 429s extend one pause, never add up."""
        seconds = DEFAULT_429_PAUSE if seconds is None else max(0.0, seconds)
        with self._lock:
            now = time.monotonic()
            until = now + seconds
            if until <= self._paused_until:
                return
            fresh = self._paused_until < now
            self._paused_until = until
            if fresh:
                self.pauses += 1
        if fresh:
            log.warning("%s answered 429: pausing every request on it for %.1fs", self.name or "the API", seconds)

    # httpx event hooks and the trace extension: the limit applies to every request the client
    # sends, retries included, without replacing the transport the session configured.
    def _on_response(self, response: httpx.Response) -> None:
        if response.status_code == 429:
            from airflow_task_runs.core.http import parse_retry_after

            self.pause(parse_retry_after(response.headers.get("retry-after")))

    def httpx_hooks(self) -> dict[str, list[Callable[..., Any]]]:
        def at_wire(event: str, info: Mapping[str, Any]) -> None:
            if event.endswith("send_request_headers.started"):
                self.acquire_sync(wire=True)

        def on_request(request: httpx.Request) -> None:
            self.acquire_sync()
            request.extensions["trace"] = at_wire

        return {"request": [on_request], "response": [self._on_response]}

    def async_httpx_hooks(self) -> dict[str, list[Callable[..., Awaitable[None]]]]:
        async def at_wire(event: str, info: Mapping[str, Any]) -> None:
            if event.endswith("send_request_headers.started"):
                await self.acquire(wire=True)

        async def on_request(request: httpx.Request) -> None:
            await self.acquire()
            request.extensions["trace"] = at_wire

        async def on_response(response: httpx.Response) -> None:
            self._on_response(response)

        return {"request": [on_request], "response": [on_response]}


_limiters: dict[tuple[str, str], RateLimiter] = {}
_limiters_lock = threading.Lock()


def rate_limiter(kind: str, conn_id: str, rate: float | None) -> RateLimiter:
    """The process's limiter of one connection (``kind`` keeps connection types apart).

    The first caller's rate wins; every hook of a connection reads the same extra anyway.
    """
    with _limiters_lock:
        limiter = _limiters.get((kind, conn_id))
        if limiter is None:
            limiter = _limiters[(kind, conn_id)] = RateLimiter(rate, name=f"{kind} connection {conn_id!r}")
        return limiter


def rate_from_extra(extra: Mapping[str, Any], default: float | None, conn_id: str) -> float | None:
    """Connection extra ``max_requests_per_second``: a number > 0, or 0/""/null for no limit."""
    from airflow_task_runs.core.errors import ConnectionConfigError

    if "max_requests_per_second" not in extra:
        return default
    value = extra["max_requests_per_second"]
    if value in (None, "", 0, "0"):
        return None
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = -1.0
    if rate <= 0:
        raise ConnectionConfigError(
            conn_id, "extra.max_requests_per_second", f"is {value!r}; set a number > 0, or 0 for no limit"
        )
    return rate


# -- coalesced status calls ------------------------------------------------------------------
@dataclass
class _Round:
    waiting: list[tuple[Mapping[str, Any], asyncio.Future[RunStatus]]] = field(default_factory=list)


class Coalescer:
    """Status calls of one hook that one batch call can answer wait together for that call.

    A watch asks :meth:`status`; calls with the same batch key arriving within
    :data:`COALESCE_WINDOW` (or while a call of that key is in flight) are answered by one
    ``hook.arun_statuses``. Each caller gets its own run's status, or its own exception; a
    failed shared call (after the session's own retries, made once for everyone) fails each
    caller of that round, which the trigger reports as today.
    """

    def __init__(self, hook: RunStatusHook, window: float = COALESCE_WINDOW) -> None:
        self.hook = hook
        self.window = window
        self._pending: dict[Hashable, _Round] = {}
        self._workers: dict[Hashable, asyncio.Task[None]] = {}
        self.calls = 0  # shared calls made (tests, benchmarks)

    async def status(self, kind: str, ref: Mapping[str, Any]) -> RunStatus:
        key = self.hook.batch_key(kind, ref)
        if key is None:
            return await self.hook.arun_status(kind, ref)
        future: asyncio.Future[RunStatus] = asyncio.get_running_loop().create_future()
        self._pending.setdefault((kind, key), _Round()).waiting.append((ref, future))
        if (kind, key) not in self._workers:
            self._workers[(kind, key)] = asyncio.create_task(self._work(kind, (kind, key)))
        return await future

    async def _work(self, kind: str, key: Hashable) -> None:
        try:
            while self._pending.get(key):
                await asyncio.sleep(self.window)
                this_round = self._pending.pop(key)
                live = [(ref, fut) for ref, fut in this_round.waiting if not fut.done()]
                if not live:
                    continue
                self.calls += 1
                try:
                    results = await self.hook.arun_statuses(kind, [ref for ref, _ in live])
                except Exception as exc:
                    results = [exc] * len(live)
                for (_, fut), result in zip(live, results, strict=True):
                    if fut.done():
                        continue
                    if isinstance(result, BaseException):
                        fut.set_exception(result)
                    else:
                        fut.set_result(result)
        finally:
            self._workers.pop(key, None)
            leftover = self._pending.pop(key, None)
            for _, fut in leftover.waiting if leftover else ():
                if not fut.done():
                    fut.set_exception(RuntimeError("the shared status call stopped"))

    async def aclose(self) -> None:
        for task in list(self._workers.values()):
            task.cancel()


#: list reads younger than this answer a round without a new list call: rounds of watches whose
#: schedules drifted a little apart share one read, and a status is at most this old
LIST_FRESHNESS = 0.5


class RecentListing(Generic[_Item]):
    """The runs a hook's last list read showed, by id, while they are fresh enough to reuse."""

    def __init__(self, freshness: float = LIST_FRESHNESS) -> None:
        self.freshness = freshness
        self._at = float("-inf")
        self._runs: dict[str, _Item] = {}

    def fresh(self) -> dict[str, _Item] | None:
        """The last read, or None when there is none younger than ``freshness``."""
        return self._runs if time.monotonic() - self._at < self.freshness else None

    def store(self, runs: dict[str, _Item], read_at: float | None = None) -> bool:
        """Keep a read; ``read_at`` (monotonic) is when it started (default: now). A read that
        started before the one kept is older: it is not kept (False)."""
        at = time.monotonic() if read_at is None else read_at
        if at < self._at:
            return False
        self._at = at
        self._runs = runs
        return True


# -- shared hooks ----------------------------------------------------------------------------
@dataclass
class _Entry:
    hook: Any
    coalescer: Coalescer
    users: int = 0


class SharedHooks:
    """One hook per (hook class path, hook kwargs) per event loop in this process, reference-counted.

    Per loop because async clients belong to the loop that opened them: a triggerer has one,
    but a process that runs triggers under several loops (tests, ``asyncio.run`` per call) must
    not hand a client of a finished loop to a new one.
    """

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], _Entry]] = (
            weakref.WeakKeyDictionary()
        )

    @staticmethod
    def key(hook_path: str, hook_kwargs: Mapping[str, Any]) -> tuple[str, str]:
        return hook_path, json.dumps(hook_kwargs, sort_keys=True, default=str)

    def _entries(self) -> dict[tuple[str, str], _Entry]:
        return self._loops.setdefault(asyncio.get_running_loop(), {})

    def acquire(self, hook_path: str, hook_kwargs: Mapping[str, Any]) -> _Entry:
        """The shared entry for this hook, created on first use; pair with :meth:`release`."""
        entries = self._entries()
        key = self.key(hook_path, hook_kwargs)
        entry = entries.get(key)
        if entry is None:
            from airflow.sdk._shared.module_loading import import_string

            hook = import_string(hook_path)(**hook_kwargs)
            entry = entries[key] = _Entry(hook, Coalescer(hook))
        entry.users += 1
        return entry

    async def release(self, hook_path: str, hook_kwargs: Mapping[str, Any]) -> None:
        """One user is done; the last one closes the hook (its clients and pools)."""
        entries = self._entries()
        key = self.key(hook_path, hook_kwargs)
        entry = entries.get(key)
        if entry is None:
            return
        entry.users -= 1
        if entry.users > 0:
            return
        del entries[key]  # a trigger arriving from now on builds a fresh one
        await entry.coalescer.aclose()
        await entry.hook.aclose()

    def __len__(self) -> int:
        """Hooks shared in the running loop."""
        return len(self._entries())


class PollPacer:
    """At most ``per_iteration`` polls start in one turn of an event loop; the rest wait their turn.

    Triggers that wake together (a triggerer starting 1,000 of them, 1,000 watches on one
    cadence, waiters released by a shared client) would each build, sign and queue their
    request in the same loop iteration: 1,000 x 0.3 ms is a 0.3 s stall for every other
    trigger. Released a few per iteration, the loop gets back to its timers and sockets between
    them. A pace in time (n per second) would not do: when the loop is busy, every start that
    came due meanwhile runs in the next iteration at once.
    """

    def __init__(self, per_iteration: int = 16) -> None:
        self.per_iteration = per_iteration
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _PacerState] = weakref.WeakKeyDictionary()

    async def turn(self) -> None:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _PacerState()
        if not state.queue and state.started < self.per_iteration:
            if state.started == 0:
                loop.call_soon(state.new_iteration)
            state.started += 1
            return
        waiter: asyncio.Future[None] = loop.create_future()
        state.queue.append(waiter)
        if not state.dispatching:
            state.dispatching = True
            loop.call_soon(self._release, loop, state)
        await waiter

    def _release(self, loop: asyncio.AbstractEventLoop, state: _PacerState) -> None:
        released = 0
        while state.queue and released < self.per_iteration:
            waiter = state.queue.popleft()
            if not waiter.done():  # a cancelled trigger gave up its turn
                waiter.set_result(None)
                released += 1
        if state.queue:
            loop.call_soon(self._release, loop, state)
        else:
            state.dispatching = False


@dataclass
class _PacerState:
    queue: collections.deque[asyncio.Future[None]] = field(default_factory=collections.deque)
    started: int = 0
    dispatching: bool = False

    def new_iteration(self) -> None:
        self.started = 0


#: shared by every trigger of the process, like the hooks
poll_pacer = PollPacer()


async def import_off_loop(*modules: str) -> None:
    """Import ``modules`` in a thread unless they are loaded: a first import can take hundreds
    of milliseconds (the amazon provider pulls in botocore, pydantic builds every model's
    validators) and must not stall the loop."""
    import sys

    # A module is in sys.modules from the moment its import *starts*: while another trigger's
    # thread is still importing it, importing it here would wait on the import lock, on the loop.
    wanted = [
        m
        for m in modules
        if (loaded := sys.modules.get(m)) is None or getattr(getattr(loaded, "__spec__", None), "_initializing", False)
    ]
    if wanted:
        import importlib

        await asyncio.to_thread(lambda: [importlib.import_module(m) for m in wanted])


#: the triggerer's registry (module state is shared by every trigger of the process)
shared_hooks = SharedHooks()


#: watches answered from one list between two turns of the event loop (see :func:`answer_each`)
ANSWERS_PER_STEP = 100


async def answer_each(
    refs: Sequence[Mapping[str, Any]], answer: Callable[[Mapping[str, Any]], RunStatus | BaseException]
) -> list[RunStatus | BaseException]:
    """``[answer(ref) for ref in refs]``, handing the loop back every :data:`ANSWERS_PER_STEP`.

    A round answers every watch of a connection from one list: with 1,000 watches, building
    their statuses (a model dumped into each event's details) took 0.27 s in one step, and the
    triggerer's loop ran nothing else meanwhile. An exception ``answer`` raises is that watch's answer.
    """
    answers: list[RunStatus | BaseException] = []
    for at, ref in enumerate(refs):
        if at and not at % ANSWERS_PER_STEP:
            await asyncio.sleep(0)
        try:
            answers.append(answer(ref))
        except Exception as exc:  # one watch's answer, reported by its own trigger
            answers.append(exc)
    return answers


async def gather_statuses(
    call: Callable[[Mapping[str, Any]], Awaitable[RunStatus]], refs: Sequence[Mapping[str, Any]]
) -> list[RunStatus | BaseException]:
    """Per-run calls side by side: the fallback of hooks (or runs) that no list call answers.

    They start a few per loop iteration (:data:`poll_pacer`), like the triggers' own polls.
    """

    async def paced(ref: Mapping[str, Any]) -> RunStatus:
        await poll_pacer.turn()
        return await call(ref)

    results = await asyncio.gather(*(paced(ref) for ref in refs), return_exceptions=True)
    return list(results)
