"""Leads (contacts to call) and each business's do-not-call list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from libs.common.models.base import Base, BigId, TimestampMixin, UTCDateTime


class Lead(TimestampMixin, Base):
    __tablename__ = "leads"
    __table_args__ = (
        # One lead per number per business: imports update instead of duplicating.
        UniqueConstraint("business_id", "phone_e164", name="uq_leads_business_phone"),
        Index("ix_leads_business_id_id", "business_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    phone_e164: Mapped[str] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(320))
    #: IANA zone; None means the business's zone.
    timezone: Mapped[str | None] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text)
    #: Where the lead came from: api, csv, call.
    source: Mapped[str] = mapped_column(String(16), default="api", server_default="api")
    #: Set by calls: the caller asked to be called back.
    callback_requested: Mapped[bool] = mapped_column(default=False, server_default="0")
    last_call_status: Mapped[str | None] = mapped_column(String(16))
    last_called_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class DncEntry(TimestampMixin, Base):
    __tablename__ = "dnc_entries"
    __table_args__ = (UniqueConstraint("business_id", "phone_e164", name="uq_dnc_business_phone"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    phone_e164: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(200), default="", server_default="")
