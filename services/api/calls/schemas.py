"""Call logs: the filters of the listing and the shape of one call."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, computed_field

from services.api.schemas import Page, Paging, Problem, RowId, Shape

CallStatus = Literal[
    "queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer", "failed",
    "canceled",
]  # fmt: skip


class CallFilter(Paging):
    run_id: RowId | None = None
    lead_id: RowId | None = None
    status: CallStatus | None = None


class Call(Shape):
    id: int
    run_id: int | None
    job_id: int | None
    lead_id: int | None
    attempt: int
    direction: str
    to: str = Field(validation_alias="to_number")
    status: str
    provider_call_sid: str | None
    answered_by: str | None
    duration_s: int | None
    error_code: str | None = Field(exclude=True)
    error_message: str | None = Field(exclude=True)
    created_at: datetime
    ended_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def error(self) -> Problem | None:
        if not self.error_code:
            return None
        return Problem(code=self.error_code, message=self.error_message or "")


class CallPage(Page[Call]):
    pass
