"""Gmail connections and the receipts synced from them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    ForeignKey,
    Index,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column

from libs.common.models.base import Base, BigId, TimestampMixin, UTCDateTime

CONNECTION_STATUSES = ("connected", "needs_reauth")


class GmailConnection(TimestampMixin, Base):
    """One connected inbox. The refresh token is only ever stored encrypted (libs.common.crypto)."""

    __tablename__ = "gmail_connections"
    __table_args__ = (UniqueConstraint("business_id", "email", name="uq_gmail_connections_inbox"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    business_id: Mapped[int] = mapped_column(
        ForeignKey("businesses.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(500), default="", server_default="")
    #: connected | needs_reauth (Google refused the refresh token: the owner must reconnect).
    status: Mapped[str] = mapped_column(String(16), default="connected")
    #: Where the next incremental sync starts (users.history.list); None until a full sync.
    history_id: Mapped[str | None] = mapped_column(String(32))
    #: The sync in flight: a new one is refused (409) while this job is not final.
    sync_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("background_jobs.id", ondelete="SET NULL")
    )
    last_synced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)


class Receipt(TimestampMixin, Base):
    __tablename__ = "receipts"
    __table_args__ = (
        # One receipt per Gmail message per business: a resync or a redelivery adds nothing.
        UniqueConstraint("business_id", "gmail_message_id", name="uq_receipts_message"),
        Index("ix_receipts_business_date", "business_id", "receipt_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("gmail_connections.id", ondelete="SET NULL"), index=True
    )
    gmail_message_id: Mapped[str] = mapped_column(String(64))
    gmail_thread_id: Mapped[str] = mapped_column(String(64), default="")
    subject: Mapped[str] = mapped_column(String(500), default="")
    sender: Mapped[str] = mapped_column(String(500), default="")
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    vendor: Mapped[str | None] = mapped_column(String(200), index=True)
    receipt_date: Mapped[dt.date | None] = mapped_column(Date)
    total_amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    #: Per field: {"vendor": {"source": "header:From", "confidence": 0.9}, ...}
    extraction: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ReceiptAttachment(TimestampMixin, Base):
    """A receipt's PDF or image, kept in the database: the api serves it and the worker stores
    it, and neither needs a volume the other can see."""

    __tablename__ = "receipt_attachments"
    __table_args__ = (
        UniqueConstraint("receipt_id", "gmail_part_id", name="uq_receipt_attachments_part"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    receipt_id: Mapped[int] = mapped_column(
        ForeignKey("receipts.id", ondelete="CASCADE"), index=True
    )
    gmail_part_id: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    mime_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column()
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary))
