"""Scripted run lifecycles: a run moves one step each time its status is read."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import ClassVar


class Lifecycle:
    """A sequence of ``(status, polls)`` steps; the last status stays once reached.

    Counts are **status reads (polls), not seconds**: a sensor polling every 60 s spends
    2 minutes in a step of 2 polls, a test polling every 0.1 s spends 0.2 s.

    ``Lifecycle([("registered", 1), ("in_progress", 2), ("completed", 0)])`` answers
    registered, in_progress, in_progress, completed, completed, ...
    A bare string is one poll of that status.
    """

    #: called as ``observer(lifecycle, previous status or None, new status)`` when a read sees a
    #: new status (``airflow-task-runs demo`` prints these); ``label`` names the run in it
    observer: ClassVar[Callable[[Lifecycle, str | None, str], None] | None] = None

    def __init__(self, steps: Sequence[tuple[str, int] | str]) -> None:
        if not steps:
            raise ValueError("a lifecycle needs at least one step")
        self.steps = [(s, 1) if isinstance(s, str) else (s[0], int(s[1])) for s in steps]
        self.polls = 0
        self.label = ""
        self._last_read: str | None = None
        self._lock = threading.Lock()

    def current(self) -> str:
        """The status now, without advancing."""
        remaining = self.polls
        for status, count in self.steps[:-1]:
            if remaining < count:
                return status
            remaining -= count
        return self.steps[-1][0]

    def advance(self) -> str:
        """The status for this poll; the next poll may see the next step."""
        with self._lock:
            status = self.current()
            self.polls += 1
            previous, self._last_read = self._last_read, status
        observer = Lifecycle.observer
        if observer is not None and status != previous:
            observer(self, previous, status)
        return status

    def finish(self) -> None:
        """Jump to the last step now (a run held "running" until a test lets it end)."""
        with self._lock:
            self.polls = sum(count for _, count in self.steps[:-1])

    @property
    def final(self) -> str:
        return self.steps[-1][0]
