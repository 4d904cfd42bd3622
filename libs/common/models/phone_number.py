"""Phone numbers a business owns: an inbound call is routed to the business by its To number."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from libs.common.models.base import Base, BigId, TimestampMixin


class PhoneNumber(TimestampMixin, Base):
    __tablename__ = "phone_numbers"
    __table_args__ = (UniqueConstraint("number_e164", name="uq_phone_numbers_number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    #: One business per number: the voice webhook must know whose call it is.
    number_e164: Mapped[str] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(100), default="", server_default="")
