"""The base of every cloud's pydantic models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, PrivateAttr


class ApiModel(BaseModel):
    """Tolerant of fields a cloud adds later, strict about the ones it declares.

    ``request_id`` is the cloud's id of the response the model came from (not an API
    field): it goes into RunStatus, logs and errors, for support tickets.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    _request_id: str | None = PrivateAttr(default=None)

    @property
    def request_id(self) -> str | None:
        return self._request_id

    @request_id.setter
    def request_id(self, value: str | None) -> None:
        self._request_id = value
