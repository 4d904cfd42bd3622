"""A business (tenant): everything a business token can see belongs to one."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from libs.common.models.base import Base, BigId, TimestampMixin

#: Default per-business concurrency limit for outbound calls.
DEFAULT_MAX_CONCURRENT_CALLS = 3


class Business(TimestampMixin, Base):
    __tablename__ = "businesses"
    __table_args__ = (CheckConstraint("max_concurrent_calls >= 1", name="max_concurrent_calls"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: IANA zone name, e.g. "America/New_York"; validated by the code that writes it.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    max_concurrent_calls: Mapped[int] = mapped_column(
        default=DEFAULT_MAX_CONCURRENT_CALLS, server_default=str(DEFAULT_MAX_CONCURRENT_CALLS)
    )
    #: Call recordings are deleted this many days after the call ended (None: kept).
    recording_retention_days: Mapped[int | None] = mapped_column()
