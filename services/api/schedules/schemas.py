"""Daily schedules: what a client sends to create or change one, and how one is shown."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, computed_field

from libs.telephony.schedules.definition import check_timezone, day_names
from services.api.schemas import Body, LocalTime, Page, Paging, RowId, Shape, optional

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Days = Annotated[list[Day], Field(min_length=1, max_length=7)]
Zone = Annotated[
    str,
    Field(max_length=64, description="IANA time zone, e.g. Europe/Berlin"),
    AfterValidator(check_timezone),  # InvalidSchedule is a ValueError naming the field
]


class ScheduleInput(Body):
    lead_id: RowId
    local_time: LocalTime = Field(examples=["09:30"])
    timezone: Zone | None = optional(description="default: the lead's zone, else the business's")
    days: Days | None = optional(description="default: every day")
    enabled: bool = True


class ScheduleUpdate(Body):
    """Only the fields given change; next_due_at is recomputed."""

    local_time: LocalTime | None = optional()
    timezone: Zone | None = Field(
        None, description="IANA zone; null goes back to the lead's zone, else the business's"
    )
    days: Days | None = optional()
    enabled: bool | None = optional()


class ScheduleFilter(Paging):
    enabled: bool | None = None


class Schedule(Shape):
    id: int
    lead_id: int
    enabled: bool
    local_time: str
    timezone: str
    days_mask: int = Field(exclude=True)
    next_due_at: datetime | None = Field(
        description="next firing instant (UTC); null while disabled"
    )
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def days(self) -> list[Day]:
        return day_names(self.days_mask)  # type: ignore[return-value]


class SchedulePage(Page[Schedule]):
    pass


class Occurrence(Shape):
    local_date: date
    due_at: datetime
    status: Literal["pending", "placed", "skipped", "missed", "failed"]
    call_job_id: int | None
    error: str | None = Field(validation_alias="error_message")


class OccurrencePage(Page[Occurrence]):
    pass


class TriggerInput(Body):
    business_id: RowId | None = optional(
        description="operators: one business (default: every business)"
    )


class Triggered(Shape):
    queued: bool
    business_id: int | None
    message_id: str
