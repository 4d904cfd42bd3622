"""Leads and the do-not-call list: what a client sends, and how they are shown."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field
from spectree.model_adapter.pydantic_adapter import BaseFile

from libs.campaigns.leads import MAX_FIELD, MAX_TIMEZONE
from libs.telephony.calling_window import check_zone
from libs.telephony.phones import to_e164
from services.api.schemas import Body, Page, Paging, Shape, optional

MAX_BULK = 5000
MAX_DNC_REASON = 200
#: Longer input is refused before it is parsed (libs.telephony.phones.to_e164).
MAX_PHONE_INPUT = 40

LeadSource = Literal["api", "csv", "call"]


def _zone(value: str | None) -> str | None:
    if value:
        check_zone(value)  # InvalidWindow is a ValueError: a 400 naming the field
    return value or None


def _stripped(value: str | None) -> str | None:
    return (value or "").strip() or None


#: Any common format; stored as E.164 (InvalidPhone is a ValueError).
PhoneInput = Annotated[str, Field(max_length=MAX_PHONE_INPUT), AfterValidator(to_e164)]
Zone = Annotated[
    str | None,
    Field(max_length=MAX_TIMEZONE, description="IANA zone, e.g. America/Chicago"),
    AfterValidator(_zone),
]


class LeadInput(Body):
    phone: PhoneInput = Field(description="any format; stored as E.164")
    name: Annotated[str | None, AfterValidator(_stripped)] = Field(
        None, max_length=MAX_FIELD["name"]
    )
    timezone: Zone = None
    email: Annotated[str | None, AfterValidator(_stripped)] = Field(
        None, max_length=MAX_FIELD["email"]
    )
    notes: Annotated[str | None, AfterValidator(_stripped)] = Field(
        None, max_length=MAX_FIELD["notes"]
    )


class LeadUpdate(Body):
    """Only the fields given change; null clears name, timezone, email or notes."""

    phone: PhoneInput | None = optional(description="any format; stored as E.164")
    name: Annotated[str | None, AfterValidator(_stripped)] = Field(
        None, max_length=MAX_FIELD["name"]
    )
    timezone: Zone = None
    email: Annotated[str | None, AfterValidator(_stripped)] = Field(
        None, max_length=MAX_FIELD["email"]
    )
    notes: Annotated[str | None, AfterValidator(_stripped)] = Field(
        None, max_length=MAX_FIELD["notes"]
    )
    callback_requested: bool | None = optional()


class BulkLeads(Body):
    leads: list[LeadInput] = Field(min_length=1, max_length=MAX_BULK)


class BulkResult(Shape):
    created: int
    updated: int


class LeadFilter(Paging):
    q: str | None = Field(None, max_length=100, description="name or phone contains")
    source: LeadSource | None = None
    last_call_status: str | None = Field(None, max_length=16)
    callback_requested: bool | None = None


class CsvUpload(BaseModel):
    """A CSV file as multipart field ``file`` (or the whole body as text/csv)."""

    file: BaseFile


class Lead(Shape):
    id: int
    name: str
    phone: str = Field(validation_alias="phone_e164", description="E.164")
    email: str | None
    timezone: str | None
    notes: str | None
    source: LeadSource
    callback_requested: bool
    last_call_status: str | None
    last_called_at: datetime | None
    created_at: datetime


class LeadPage(Page[Lead]):
    pass


class DncInput(Body):
    phone: PhoneInput = Field(description="any format; stored as E.164")
    reason: str = Field("", max_length=MAX_DNC_REASON)


class DncEntry(Shape):
    id: int
    phone: str = Field(validation_alias="phone_e164")
    reason: str
    created_at: datetime


class DncPage(Page[DncEntry]):
    pass
