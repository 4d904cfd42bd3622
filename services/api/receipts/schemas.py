"""Receipts synced from Gmail: the listing's filters, the sync request, and their shapes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PlainSerializer, RootModel, model_validator

from services.api.schemas import Body, Error, Job, Page, Paging, Problem, RowId, Shape, optional

#: Numeric(14, 2): anything at or past this cannot be a stored amount.
MAX_AMOUNT = Decimal("1e12")


def _amount(value: Decimal) -> Decimal:
    if not value.is_finite() or abs(value) >= MAX_AMOUNT:
        raise ValueError("must be a decimal amount under 10^12, e.g. 12.50")
    return value


Amount = Annotated[
    Decimal,
    Field(examples=["12.50"]),
    AfterValidator(_amount),
]


#: Money leaves as text ("42.10"): a JSON number would lose the cents' exactness.
DecimalText = Annotated[Decimal, PlainSerializer(str, return_type=str)]


class ReceiptFilter(Paging):
    """Filters combine (AND); dates are the receipt's own date."""

    from_: dt.date | None = Field(
        None, alias="from", description="receipt date on or after (YYYY-MM-DD)"
    )
    to: dt.date | None = Field(None, description="receipt date on or before")
    vendor: str | None = Field(None, max_length=200, description="case-insensitive substring")
    min_amount: Amount | None = None
    max_amount: Amount | None = None
    currency: str | None = Field(None, pattern="^[A-Za-z]{3}$")
    connection_id: RowId | None = None

    @model_validator(mode="after")
    def _ranges(self) -> ReceiptFilter:
        if self.from_ and self.to and self.from_ > self.to:
            raise ValueError("query parameter from must not be after to")
        low, high = self.min_amount, self.max_amount
        if low is not None and high is not None and low > high:
            raise ValueError("query parameter min_amount must not be above max_amount")
        return self


class SyncInput(Body):
    connection_id: RowId | None = optional(
        description="required when the business has several inboxes"
    )


class SyncRunningError(Problem):
    code: Literal["sync_running"]


class SyncRunning(Shape):
    """409 while a sync of the inbox runs: the error, and the job to follow instead."""

    error: SyncRunningError
    job: Job


class SyncConflict(RootModel[SyncRunning | Error]):
    """409: a sync already running (with its job), or an inbox that needs reauthorization."""


class ReceiptAttachment(Shape):
    id: int
    filename: str
    mime_type: str
    size: int
    sha256: str = Field(description="hex; also the download's ETag")


class Receipt(Shape):
    id: int
    gmail_message_id: str
    subject: str
    sender: str
    received_at: dt.datetime
    vendor: str | None
    date: dt.date | None = Field(validation_alias="receipt_date")
    total_amount: DecimalText | None = Field(description='decimal as a string, e.g. "42.10"')
    currency: str | None = Field(description="ISO 4217, e.g. USD")
    extraction: dict[str, Any] = Field(
        description="per field: where the value was found and how sure it is"
    )
    attachments: list[ReceiptAttachment] = []


class ReceiptPage(Page[Receipt]):
    pass
