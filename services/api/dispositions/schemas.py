"""Dispositions: a business's list of call outcomes and what each does to the lead."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from services.api.schemas import Body, RowId, Shape, optional

#: models.OUTCOMES (tests/api/test_dispositions.py keeps these literals equal to it).
Outcome = Literal["completed", "machine", "fax", "busy", "no-answer", "failed", "canceled"]
Action = Literal["none", "retry", "never", "move"]
Code = Annotated[
    str,
    Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$",
          description="what a call's `disposition` holds: lowercase letters, digits, _"),
]  # fmt: skip
Label = Annotated[str, Field(max_length=100)]
Outcomes = Annotated[
    list[Outcome],
    Field(max_length=7, description="call outcomes that set this disposition on a call nobody "
          "disposed (machine: AnsweredBy machine_*; completed: anyone else who answered); an "
          "outcome belongs to at most one disposition"),
]  # fmt: skip
RetryAfterH = Annotated[int, Field(ge=1, le=720, description="retry: hours after the call ended")]
_ACTION = (
    "what the disposition does to the lead once the call has ended: none; retry (again after "
    "retry_after_h, within the run's max_attempts; a completed run is reopened); never (the "
    "number joins the do-not-call list); move (queued in run move_to_run_id)"
)


class _Checked(Body):
    @model_validator(mode="after")
    def _action_fields(self) -> _Checked:
        action = getattr(self, "action", None)
        if action == "retry" and getattr(self, "retry_after_h", None) is None:
            raise ValueError("retry_after_h is required when action is retry")
        if action == "move" and getattr(self, "move_to_run_id", None) is None:
            raise ValueError("move_to_run_id is required when action is move")
        return self


class DispositionInput(_Checked):
    code: Code
    label: Label = ""
    outcomes: Outcomes = Field(default_factory=list)
    action: Action = Field("none", description=_ACTION)
    retry_after_h: RetryAfterH | None = optional()
    move_to_run_id: RowId | None = optional(description="move: a run of the business")


class DispositionUpdate(Body):
    """Only the fields given change (the code stays: calls already hold it)."""

    label: Label | None = optional()
    outcomes: Outcomes | None = optional()
    action: Action | None = optional(description=_ACTION)
    retry_after_h: RetryAfterH | None = optional()
    move_to_run_id: RowId | None = optional(description="move: a run of the business")


class Disposition(Shape):
    id: int
    code: str
    label: str
    outcomes: list[str]
    action: Action
    retry_after_h: int | None
    move_to_run_id: int | None
    created_at: datetime
    updated_at: datetime


class DispositionList(Shape):
    items: list[Disposition]


class CallDispositionInput(Body):
    code: Code
