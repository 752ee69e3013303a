"""Cloud-neutral run states: every cloud's status table maps onto these."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class RunState(str, enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_failure(self) -> bool:
        return self in (RunState.FAILED, RunState.CANCELLED)


_TERMINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.SKIPPED})


@dataclass(frozen=True)
class RunStatus:
    """One observation of a remote run.

    ``raw_status`` is the cloud's own word, ``message`` its own reason; ``details`` is a
    JSON-safe dict of what the cloud returned, pushed to XCom when the sensor finishes.
    """

    state: RunState
    raw_status: str
    message: str | None = None
    request_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Primitive form, safe for trigger events and XCom."""
        return {
            "state": self.state.value,
            "raw_status": self.raw_status,
            "message": self.message,
            "request_id": self.request_id,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunStatus:
        return cls(
            state=RunState(data["state"]),
            raw_status=data["raw_status"],
            message=data.get("message"),
            request_id=data.get("request_id"),
            details=dict(data.get("details") or {}),
        )


class StatusTable:
    """A cloud's status words mapped onto :class:`RunState`.

    Unknown words are not terminal: they are logged once by the caller and the sensor's
    timeout bounds the wait, so a cloud adding a status never fails a DAG by itself.
    """

    def __init__(self, cloud: str, table: Mapping[RunState, tuple[str, ...]], *, case_sensitive: bool = True) -> None:
        self.cloud = cloud
        self._case_sensitive = case_sensitive
        self._map: dict[str, RunState] = {}
        for state, words in table.items():
            for word in words:
                self._map[self._key(word)] = state

    def _key(self, word: str) -> str:
        return word if self._case_sensitive else word.lower()

    def lookup(self, raw: str | None) -> RunState | None:
        if raw is None:
            return None
        return self._map.get(self._key(raw))

    def is_terminal(self, raw: str | None) -> bool:
        """Whether ``raw`` is a known word for a state the run does not leave (an unknown one is not)."""
        state = self.lookup(raw)
        return state is not None and state.is_terminal

    def words(self) -> dict[str, RunState]:
        return dict(self._map)

    def status(
        self,
        raw: str | None,
        *,
        message: str | None = None,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> RunStatus:
        """Build a RunStatus; an unknown word becomes PENDING (not terminal) with a warning."""
        state = self.lookup(raw)
        if state is None:
            import logging

            logging.getLogger(__name__).warning(
                "%s returned status %r, which this provider does not know; treating it as not terminal.",
                self.cloud,
                raw,
            )
            state = RunState.PENDING
        return RunStatus(
            state=state,
            raw_status=str(raw),
            message=message,
            request_id=request_id,
            details=details or {},
        )
