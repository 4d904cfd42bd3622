"""Files handed from the api to the worker (CSV imports): messages carry only the id."""

from __future__ import annotations

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from libs.common.models.base import Base, BigId, TimestampMixin


class Upload(TimestampMixin, Base):
    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    background_job_id: Mapped[int] = mapped_column(
        ForeignKey("background_jobs.id", ondelete="CASCADE"), unique=True
    )
    filename: Mapped[str] = mapped_column(String(255), default="", server_default="")
    #: Emptied once processed: the rows live in their own tables afterwards.
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
