"""Daily calls per lead at a local time, and each day's occurrence (the idempotency key)."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Date, Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from libs.common.models.base import Base, BigId, TimestampMixin, UTCDateTime

#: Monday..Sunday as bits 0..6 (Python's date.weekday()).
ALL_DAYS = 0b1111111


class Schedule(TimestampMixin, Base):
    __tablename__ = "schedules"
    __table_args__ = (
        UniqueConstraint("lead_id", name="uq_schedules_lead_id"),
        # The tick reads only due rows: cost follows the due schedules, not the table.
        Index("ix_schedules_next_due_at", "next_due_at"),
        Index("ix_schedules_business_id", "business_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    enabled: Mapped[bool] = mapped_column(default=True, server_default="1")
    #: "HH:MM", 24-hour, in ``timezone``.
    local_time: Mapped[str] = mapped_column(String(5))
    #: The effective IANA zone: the one given, else the lead's, else the business's.
    timezone: Mapped[str] = mapped_column(String(64))
    days_mask: Mapped[int] = mapped_column(default=ALL_DAYS, server_default=str(ALL_DAYS))
    #: The next instant to fire (UTC); None while disabled.
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OccurrenceStatus(enum.StrEnum):
    PENDING = "pending"
    PLACED = "placed"
    SKIPPED = "skipped"
    MISSED = "missed"
    FAILED = "failed"


class ScheduleOccurrence(TimestampMixin, Base):
    """One per schedule and local date: a second tick or a redelivered message finds it."""

    __tablename__ = "schedule_occurrences"
    __table_args__ = (
        UniqueConstraint("schedule_id", "local_date", name="uq_schedule_occurrences_day"),
        Index("ix_schedule_occurrences_status_created_at", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    local_date: Mapped[date] = mapped_column(Date())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[OccurrenceStatus] = mapped_column(
        Enum(OccurrenceStatus, name="occurrence_status", native_enum=False, length=16,
             values_callable=lambda e: [m.value for m in e]),
        default=OccurrenceStatus.PENDING,
    )  # fmt: skip
    call_job_id: Mapped[int | None] = mapped_column(ForeignKey("call_jobs.id", ondelete="SET NULL"))
    error_message: Mapped[str | None] = mapped_column(Text)
