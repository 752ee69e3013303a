"""Scripted run lifecycles: a run moves one step each time its status is read."""

from __future__ import annotations

import threading
from collections.abc import Sequence


class Lifecycle:
    """A sequence of ``(status, polls)`` steps; the last status stays once reached.

    ``Lifecycle([("registered", 1), ("in_progress", 2), ("completed", 0)])`` answers
    registered, in_progress, in_progress, completed, completed, ...
    A bare string is one poll of that status.
    """

    def __init__(self, steps: Sequence[tuple[str, int] | str]) -> None:
        if not steps:
            raise ValueError("a lifecycle needs at least one step")
        self.steps = [(s, 1) if isinstance(s, str) else (s[0], int(s[1])) for s in steps]
        self.polls = 0
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
            return status

    @property
    def final(self) -> str:
        return self.steps[-1][0]
