"""Coalesced polling in the triggerer: NCLUE list pages and HealthOmics ListRunTasks answer many watches.

Against the emulator over real HTTP; call counts are what the emulator received.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from airflow_task_runs.core.triggers import TaskRunTrigger

NCLUE = "airflow_task_runs.ncp.hooks.NclueHook"
OMICS = "airflow_task_runs.aws.hooks.HealthOmicsHook"


@pytest.fixture
def emu(task_runs_connections):
    return task_runs_connections


def _trigger(hook, kind, ref):
    return TaskRunTrigger(
        hook_path=hook,
        hook_kwargs={},
        status_kind=kind,
        run_ref=ref,
        poll_interval=0.05,
        deadline=time.time() + 60,
        description=str(ref),
    )


def _events(triggers):
    async def first(trigger):
        gen = trigger.run()
        try:
            events = [event.payload async for event in gen]
        finally:
            await gen.aclose()
        return events

    async def main():
        return await asyncio.gather(*(first(t) for t in triggers))

    return asyncio.run(main())


def _first_checks(hook, method, refs):
    """What a deferrable sensor does in the worker before it defers: one read of its run by id."""
    for ref in refs:
        getattr(hook, method)(**ref)


def test_nclue_watches_share_the_newest_list_pages(emu):
    from airflow_task_runs.ncp.hooks import NclueHook

    ncp = emu.ncp
    ids = [ncp.add_run(lifecycle=[("in_progress", 3), ("completed", 0)]) for _ in range(150)]
    _first_checks(NclueHook(), "get_status", [{"run_id": r} for r in ids])
    ncp.reset_log()
    events = _events([_trigger(NCLUE, "task_run", {"run_id": run_id}) for run_id in ids])
    assert all(len(e) == 1 for e in events)  # exactly one event per watch, never two
    assert [e[0]["status"]["raw_status"] for e in events] == ["completed"] * 150
    assert [e[0]["status"]["details"]["run_id"] for e in events] == ids
    lists = ncp.requests_to("/api/v1/task-runs", "GET")
    singles = [r for r in lists if r.path != "/api/v1/task-runs"]
    assert singles == []  # every watched run was in the pages: no GET /task-runs/{run_id}
    # three reads per run (in_progress, in_progress, completed) for 150 watches: 450 watch-polls
    # answered by a few pages a round instead of 450 single GETs
    assert len(lists) / 450 <= 0.05, len(lists)


def test_an_nclue_event_carries_what_a_single_get_returns(emu):
    from airflow_task_runs.ncp.hooks import NclueHook

    run_id = emu.ncp.add_run(lifecycle=[("in_progress", 2), ("failed", 0)], fail_message="3 bad rows")
    NclueHook().get_status(run_id)
    (event,) = _events([_trigger(NCLUE, "task_run", {"run_id": run_id})])[0]
    alone = NclueHook().get_status(run_id).to_dict()
    assert event["status"]["raw_status"] == alone["raw_status"] == "failed"
    assert event["status"]["message"] == alone["message"] == "3 bad rows"
    assert event["status"]["details"] == alone["details"]


def test_an_nclue_run_older_than_the_pages_read_is_polled_alone(emu):
    ncp = emu.ncp
    from airflow_task_runs.ncp.hooks import NclueHook

    old = ncp.add_run(lifecycle=[("in_progress", 2), ("completed", 0)])
    for _ in range(250):
        ncp.add_run(lifecycle=[("completed", 0)])
    new = ncp.add_run(lifecycle=[("in_progress", 2), ("completed", 0)])
    _first_checks(NclueHook(), "get_status", [{"run_id": old}, {"run_id": new}])
    ncp.reset_log()
    events = _events([_trigger(NCLUE, "task_run", {"run_id": r}) for r in (old, new)])
    assert [e[0]["status"]["raw_status"] for e in events] == ["completed", "completed"]
    assert ncp.requests_to(f"/api/v1/task-runs/{old}")  # the fallback for the old one
    assert not ncp.requests_to(f"/api/v1/task-runs/{new}")  # the new one came from the list


def test_a_transient_error_in_the_shared_list_is_retried_once_for_everyone(emu):
    ncp = emu.ncp
    from airflow_task_runs.ncp.hooks import NclueHook

    ids = [ncp.add_run(lifecycle=[("in_progress", 1), ("completed", 0)]) for _ in range(100)]
    _first_checks(NclueHook(), "get_status", [{"run_id": r} for r in ids])
    ncp.reset_log()
    ncp.inject("status", times=1, status=503, match="/api/v1/task-runs")
    events = _events([_trigger(NCLUE, "task_run", {"run_id": run_id}) for run_id in ids])
    assert [e[0]["event"] for e in events] == ["terminal"] * 100
    calls = ncp.requests_to("/api/v1/task-runs", "GET")
    # one round: the failed page, its one retry, and the pages that round reads (no per-watch retries)
    assert len(calls) <= 1 + 3, [r.raw_path for r in calls]


def test_healthomics_task_watches_of_a_run_share_its_list_run_tasks(emu):
    from airflow_task_runs.aws.hooks import HealthOmicsHook

    aws = emu.aws
    runs = [aws.add_run(lifecycle=[("RUNNING", 10**6)]) for _ in range(2)]
    refs = [
        {"run_id": run_id, "run_task_id": aws.add_task(run_id, lifecycle=[("RUNNING", 3), ("COMPLETED", 0)])}
        for run_id, count in zip(runs, (100, 50), strict=True)
        for _ in range(count)
    ]
    hook = HealthOmicsHook()
    for ref in refs:
        hook.get_run_task(**ref)
    aws.reset_log()
    events = _events([_trigger(OMICS, "task", ref) for ref in refs])
    assert all(len(e) == 1 for e in events)
    assert {e[0]["status"]["raw_status"] for e in events} == {"COMPLETED"}
    lists = [r for r in aws.requests if r.path.endswith("/task")]
    singles = [r for r in aws.requests if "/task/" in r.path]
    gets = [r for r in aws.requests if r.path.count("/") == 2]
    assert len(singles) == 150  # each ended task read once for its full details
    # one ListRunTasks per run per round (three rounds), and at most one more per run for watches
    # a busy loop woke after their round's call had left (seen in 1 run of 8); 450 watch-polls in all
    assert len(lists) <= 2 * (3 + 1)
    assert len(gets) <= 2 * 3  # GetRun once per run per round that saw tasks end
    alone = HealthOmicsHook().get_task_status(**refs[0]).to_dict()
    assert set(events[0][0]["status"]["details"]) == set(alone["details"])
    assert events[0][0]["status"]["details"]["logStream"] == alone["details"]["logStream"]


def test_healthomics_run_watches_share_list_runs_and_end_with_get_run(emu):
    from airflow_task_runs.aws.hooks import ACTIVE_RUN_STATUSES, HealthOmicsHook

    aws = emu.aws
    done = [aws.add_run(lifecycle=[("PENDING", 1), ("RUNNING", 3), ("COMPLETED", 0)]) for _ in range(60)]
    failed = aws.add_run(
        lifecycle=[("RUNNING", 3), ("FAILED", 0)], failure_reason="OUT_OF_MEMORY", status_message="task x ran out"
    )
    ids = [*done, failed]
    hook = HealthOmicsHook()
    for run_id in ids:  # the sensor's first check in the worker, by id
        hook.get_run(run_id)
    aws.reset_log()
    events = _events([_trigger(OMICS, "run", {"run_id": run_id}) for run_id in ids])
    assert all(len(e) == 1 for e in events)  # one event per watch, never two
    assert [e[0]["status"]["raw_status"] for e in events] == ["COMPLETED"] * 60 + ["FAILED"]
    lists = [r for r in aws.requests if r.path == "/run"]
    gets = [r for r in aws.requests if r.path.startswith("/run/")]
    assert {r.query.get("status") for r in lists} <= set(ACTIVE_RUN_STATUSES)
    assert len(gets) == len(ids)  # each run read by id once: when it had ended, for its details
    watch_polls = 4 * len(ids)  # a run's life here: about four reads
    assert (len(lists) + len(gets)) / watch_polls <= 0.35, (len(lists), len(gets))
    alone = HealthOmicsHook().get_run_status(failed).to_dict()
    assert events[-1][0]["status"]["message"] == alone["message"]
    assert "OUT_OF_MEMORY" in alone["message"]
    assert events[-1][0]["status"]["details"] == alone["details"]


def test_a_run_listed_as_deleted_is_read_by_id_before_its_watch_ends(emu):
    """DELETED is a run's end (RUN_STATES), not a task's: its event needs GetRun's details, as any end does.

    The run moves on between ListRuns' filter and its item (here the first round's four lists show
    it DELETED); its watch must read it by id, not end on the list item (no uuid, no output URI).
    """
    import json

    from airflow_task_runs.aws.hooks import ACTIVE_RUN_STATUSES, HealthOmicsHook

    aws = emu.aws
    ids = [aws.add_run(lifecycle=[("RUNNING", 3), ("COMPLETED", 0)]) for _ in range(8)]
    hook = HealthOmicsHook()
    for run_id in ids:
        hook.get_run(run_id)
    aws.reset_log()
    item = {"id": ids[0], "status": "DELETED", "name": "gone"}
    aws.inject(
        "status",
        times=len(ACTIVE_RUN_STATUSES),
        status=200,
        match="/run",
        body=json.dumps({"items": [item]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    events = _events([_trigger(OMICS, "run", {"run_id": run_id}) for run_id in ids])
    assert [r.path for r in aws.requests[: len(ACTIVE_RUN_STATUSES)]] == ["/run"] * len(ACTIVE_RUN_STATUSES)
    assert [e[0]["status"]["raw_status"] for e in events] == ["COMPLETED"] * len(ids)
    assert len(aws.requests_to(f"/run/{ids[0]}")) >= 1  # the run the list showed ended was read by id
    alone = HealthOmicsHook().get_run_status(ids[0]).to_dict()
    assert events[0][0]["status"]["details"] == alone["details"]


def test_few_healthomics_run_watches_are_polled_alone(emu):
    from airflow_task_runs.aws.hooks import HealthOmicsHook

    aws = emu.aws
    ids = [aws.add_run(lifecycle=[("RUNNING", 2), ("COMPLETED", 0)]) for _ in range(2)]
    for run_id in ids:
        HealthOmicsHook().get_run(run_id)
    aws.reset_log()
    events = _events([_trigger(OMICS, "run", {"run_id": run_id}) for run_id in ids])
    assert [e[0]["status"]["raw_status"] for e in events] == ["COMPLETED"] * 2
    assert not [r for r in aws.requests if r.path == "/run"]  # four list calls would cost more than two GETs


class _OtherTrigger:
    """Another task on the loop, counting its turns while ``work`` runs: what other triggers get."""

    def __init__(self) -> None:
        self.turns = 0

    async def around(self, work):
        async def other_trigger():
            while True:
                await asyncio.sleep(0)
                self.turns += 1

        other = asyncio.create_task(other_trigger())
        await asyncio.sleep(0)
        try:
            return await work
        finally:
            other.cancel()


def test_answering_a_round_from_one_list_hands_the_loop_back_between_slices():
    """1,000 watches answered from one list were one step of the loop (0.27 s on a slow machine):
    no other trigger ran meanwhile. Each slice of answers now lets the loop run."""
    from airflow_task_runs.core.shared import ANSWERS_PER_STEP, answer_each

    other = _OtherTrigger()
    seen_at: list[int] = []

    def answer(ref):
        seen_at.append(other.turns)
        if ref["n"] == 7:
            raise ValueError("run 7 vanished")
        return f"status of {ref['n']}"

    refs = [{"n": n} for n in range(ANSWERS_PER_STEP * 3 + 1)]
    answers = asyncio.run(other.around(answer_each(refs, answer)))
    assert answers[0] == "status of 0" and answers[-1] == f"status of {ANSWERS_PER_STEP * 3}"
    assert isinstance(answers[7], ValueError)  # that watch's own answer; the others go on
    # the other task ran between the slices, never within one
    assert len(set(seen_at)) == 4
    assert all(seen_at[i] == seen_at[i - 1] for i in range(1, len(seen_at)) if i % ANSWERS_PER_STEP)


@pytest.mark.parametrize("cloud", ["ncp", "aws"])
def test_a_hooks_round_of_many_watches_lets_other_triggers_run_while_it_is_answered(emu, monkeypatch, cloud):
    """250 watches answered from one list: the statuses are built a slice at a time, with other
    tasks of the loop running between the slices (one step held the loop 0.27 s at 1,000)."""
    import airflow_task_runs.aws.hooks as aws_hooks
    from airflow_task_runs.aws.hooks import HealthOmicsHook
    from airflow_task_runs.ncp.hooks import NclueHook

    other = _OtherTrigger()
    seen: list[int] = []
    if cloud == "ncp":
        kind = "task_run"
        ids = [emu.ncp.add_run(lifecycle=[("in_progress", 10**6)]) for _ in range(250)]
        hook = NclueHook()
        real = hook.status_of
        monkeypatch.setattr(hook, "status_of", lambda run: (seen.append(other.turns), real(run))[1])
    else:
        kind = "run"
        ids = [emu.aws.add_run(lifecycle=[("RUNNING", 10**6)]) for _ in range(250)]
        hook = HealthOmicsHook()
        real = aws_hooks._listed_run_status
        monkeypatch.setattr(aws_hooks, "_listed_run_status", lambda item: (seen.append(other.turns), real(item))[1])

    async def main():
        try:
            return await other.around(hook.arun_statuses(kind, [{"run_id": run_id} for run_id in ids]))
        finally:
            await hook.aclose()

    statuses = asyncio.run(main())
    assert len(statuses) == 250 and all(not isinstance(s, BaseException) for s in statuses)
    assert len(seen) == 250  # every watch answered from the list, each status built once
    assert len(set(seen)) >= 3  # in three slices or more, the loop's other tasks between them


def test_watches_deferred_at_different_times_share_one_list_read_per_interval(emu):
    """NCLUE watches started 0.15 s apart (their phases spread over the interval) poll on one grid.

    After their first polls the list is read once per interval, at its multiples on the process's
    clock; spread, each watch's poll would find the list stale (older than 0.5 s) and read it
    again: about twice per interval here, a read per round at a 60 s interval.
    """
    ncp = emu.ncp
    interval = 1.0
    ids = [ncp.add_run(lifecycle=[("in_progress", 5), ("completed", 0)]) for _ in range(6)]
    from airflow_task_runs.ncp.hooks import NclueHook

    _first_checks(NclueHook(), "get_status", [{"run_id": run_id} for run_id in ids])
    ncp.reset_log()

    async def staggered() -> list[list[dict]]:
        async def watch(i: int, run_id: str) -> list[dict]:
            await asyncio.sleep(i * 0.15)
            trigger = TaskRunTrigger(
                hook_path=NCLUE,
                hook_kwargs={},
                status_kind="task_run",
                run_ref={"run_id": run_id},
                poll_interval=interval,
                deadline=time.time() + 60,
                description=run_id,
            )
            return [event.payload async for event in trigger.run()]

        return await asyncio.gather(*(watch(i, run_id) for i, run_id in enumerate(ids)))

    started = time.monotonic()
    events = asyncio.run(staggered())
    ended = time.monotonic()
    assert [e[0]["status"]["raw_status"] for e in events] == ["completed"] * len(ids)
    # a list read is a round's first page (a round reads more when earlier tests' runs fill page 0)
    lists = [r.at for r in ncp.requests if r.path == "/api/v1/task-runs" and r.query.get("index", "0") == "0"]
    after_first_polls = [at for at in lists if at > started + interval]  # every first poll was made by then
    assert after_first_polls, lists
    phases = [at % interval for at in after_first_polls]
    assert all(min(p, interval - p) < 0.2 for p in phases), phases  # read at the grid's ticks
    ticks = int((ended - started - interval) / interval) + 1
    assert len(after_first_polls) <= ticks, (len(after_first_polls), ticks)


def test_nclue_reads_deeper_pages_for_watched_runs_left_behind_newer_ones_that_ended(emu):
    """390 newer watched runs end at once; the 10 older ones sit pages deep behind them.

    Counting watched runs alone, the hook would now read 2 pages and GET each of the 10 every
    round; it remembers the page each was seen on and reads that deep while it saves calls.
    """
    ncp = emu.ncp
    for _ in range(100):  # unwatched and older still: the emulator lists oldest first, and the hook
        ncp.add_run()  # reads page 0 (these) before the newest pages from the end
    older = [ncp.add_run(lifecycle=[("in_progress", 8), ("completed", 0)]) for _ in range(10)]
    newer = [ncp.add_run(lifecycle=[("in_progress", 1), ("completed", 0)]) for _ in range(390)]
    from airflow_task_runs.ncp.hooks import NclueHook

    _first_checks(NclueHook(), "get_status", [{"run_id": run_id} for run_id in older + newer])
    ncp.reset_log()
    events = _events([_trigger(NCLUE, "task_run", {"run_id": run_id}) for run_id in older + newer])
    assert [e[0]["status"]["raw_status"] for e in events] == ["completed"] * 400
    by_id = [r for run_id in older for r in ncp.requests_to(f"/api/v1/task-runs/{run_id}")]
    assert len(by_id) <= len(older), len(by_id)  # at most one round's worth, not one per round
    rounds = [r for r in ncp.requests if r.path == "/api/v1/task-runs" and r.query.get("index") == "0"]
    assert len(rounds) >= 5  # read from the list: the older runs outlived the newer ones by rounds


def _nclue_rounds(hook, *rounds):
    """``hook.arun_statuses`` for each round of run ids in turn, in one event loop."""

    async def main():
        try:
            return [await hook.arun_statuses("task_run", [{"run_id": r} for r in ids]) for ids in rounds]
        finally:
            await hook.aclose()

    return asyncio.run(main())


def _list_reads(ncp):
    return [r for r in ncp.requests if r.path == "/api/v1/task-runs"]


@pytest.mark.parametrize("first_round", ["older", "newer"])
def test_nclue_first_polls_split_over_two_rounds_read_the_list_on_rather_than_by_id(emu, first_round):
    """400 watches deferred together whose first polls land in two rounds.

    The first round's read is budgeted for its own 200 runs: reading from the newest, it stops
    short of the older ones. Older runs asked then (or in the next round, from the still fresh
    read) are read on from where the read stopped, a page per 100 runs, not one GET each.
    """
    from airflow_task_runs.ncp.hooks import NclueHook

    ncp = emu.ncp
    for _ in range(100):  # unwatched, oldest: the emulator lists oldest first and the hook reads
        ncp.add_run()  # page 0 (these) before the newest pages from the end
    runs = [ncp.add_run(lifecycle=[("in_progress", 50), ("completed", 0)]) for _ in range(400)]
    older, newer = runs[:200], runs[200:]
    rounds = (older, newer) if first_round == "older" else (newer, older)
    hook = NclueHook()
    hook._listed.freshness = 60.0  # the second round finds the first one's read fresh, however slow the machine
    ncp.reset_log()
    answers = _nclue_rounds(hook, *rounds)
    assert [[a.raw_status for a in answer] for answer in answers] == [["in_progress"] * 200] * 2
    assert [[a.details["run_id"] for a in answer] for answer in answers] == [list(r) for r in rounds]
    assert [r.path for r in ncp.requests if r.path != "/api/v1/task-runs"] == []  # no GET by id
    # page 0 (the oldest, the emulator lists oldest first) and the newest 500 at most
    assert len(_list_reads(ncp)) <= 7, [r.query for r in _list_reads(ncp)]


def test_nclue_reads_on_for_runs_asked_the_first_time_at_most_a_page_fewer_than_they_are(emu):
    """Runs the list does not show (here: ids it never had) cost their GETs by id and, once, a
    read on of fewer pages than those GETs; a single such run is read by id at once."""
    from airflow_task_runs.ncp.hooks import NclueHook

    ncp = emu.ncp
    for _ in range(900):
        ncp.add_run()
    gone = [f"never-listed-{i}" for i in range(4)]
    hook = NclueHook()
    hook._listed.freshness = 60.0
    ncp.reset_log()
    answers = _nclue_rounds(hook, gone[:1], gone[1:], gone[1:])
    errors = [a for answer in answers for a in answer]
    assert all(isinstance(a, Exception) and "not found" in str(a) for a in errors), errors  # each watch's own 404
    assert len(ncp.requests_to("/api/v1/task-runs/never-listed-2")) == 2  # asked twice, read by id twice
    pages = _list_reads(ncp)
    # round 1: page 0 and the newest page (its budget), no read on for one run; round 2: three
    # runs never asked before, so two pages more; round 3: asked before, so nothing more
    assert len(pages) == 2 + 2, [r.query for r in pages]


@pytest.mark.parametrize(
    ("runs", "watched"),
    [(1000, slice(850, 1000)), (200, slice(50, 100))],
    ids=["the newest 150 of 1000", "the 50 after page 0 of 200"],
)
def test_nclue_reads_every_page_of_a_server_that_gives_fewer_runs_than_asked(emu, runs, watched):
    """A server whose pages hold 50 runs, whatever ``limit`` asks. Read oldest first from the end,
    each page is asked for at the size the server gives and page 0 ends where its runs end: no
    run between the pages read is skipped (and read by id instead)."""
    ncp = emu.ncp
    ids = [ncp.add_run() for _ in range(runs)][watched]
    ncp.list_page_cap = 50
    _answered_from_list_pages_alone(ncp, ids, pages=4)


def test_nclue_a_failed_read_on_falls_back_to_reads_by_id_and_the_fresh_list_still_answers(emu):
    """Reading on for runs asked the first time only saves calls: when it fails, the round is
    answered as it would have been without it (listed runs from the fresh read, the rest by id),
    not failed for every watch."""
    from airflow_task_runs.ncp.hooks import NclueHook

    ncp = emu.ncp
    runs = [ncp.add_run() for _ in range(600)]
    newest, deep = runs[-1], runs[300:303]  # deep: past the pages the first round reads
    hook = NclueHook()
    hook._listed.freshness = 60.0
    ncp.reset_log()
    reads_before: list[int] = []

    async def main():
        try:
            await hook.arun_statuses("task_run", [{"run_id": newest}])
            reads_before.append(len(_list_reads(ncp)))
            ncp.refuse_lists = 1
            return await hook.arun_statuses("task_run", [{"run_id": r} for r in [newest, *deep]])
        finally:
            await hook.aclose()

    second = asyncio.run(main())
    assert [a.details["run_id"] for a in second] == [newest, *deep], second
    (reads_before,) = reads_before
    assert len(_list_reads(ncp)) == reads_before + 1  # the refused read on, made once
    assert sorted(r.path.rsplit("/", 1)[1] for r in ncp.requests if r.path != "/api/v1/task-runs") == sorted(deep)


def test_nclue_a_list_that_shrinks_while_it_is_read_does_not_shrink_the_pages(emu):
    """Runs deleted between page 0 and the next pages (a cancel is NCLUE's "Delete task run"):
    the page read from the end comes back short because the list ends sooner, not because the
    server's pages are smaller. The read goes on in whole pages and finds every watched run."""
    ncp = emu.ncp
    ids = [ncp.add_run() for _ in range(1000)][850:]
    ncp.delete_oldest_after_list = 5  # after page 0: the list is 995 long
    _answered_from_list_pages_alone(ncp, ids, pages=3)


def _answered_from_list_pages_alone(ncp, ids, pages):
    """One round of watches on ``ids``: every one answered, from exactly ``pages`` list reads, none by id."""
    from airflow_task_runs.ncp.hooks import NclueHook

    ncp.reset_log()
    (answers,) = _nclue_rounds(NclueHook(), ids)
    assert [a.details["run_id"] for a in answers] == ids
    assert [r.path for r in ncp.requests if r.path != "/api/v1/task-runs"] == []  # no GET by id
    assert len(_list_reads(ncp)) == pages, [r.query for r in _list_reads(ncp)]
