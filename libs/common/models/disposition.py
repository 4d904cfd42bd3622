"""Dispositions: a business's own list of how a call went, and what each does to the lead."""

from __future__ import annotations

import enum

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from libs.common.models.base import Base, BigId, TimestampMixin


class RecycleAction(enum.StrEnum):
    """What a disposition does to its lead once the call has ended."""

    #: Nothing: the job stays as the call left it.
    NONE = "none"
    #: Call again after ``retry_after_h`` hours, within the run's attempt limit.
    RETRY = "retry"
    #: Never call this number again (it joins the business's do-not-call list).
    NEVER = "never"
    #: Queue the lead in another run (``move_to_run_id``).
    MOVE = "move"


#: Call outcomes a disposition can be set from by rule (``Disposition.outcomes``).
OUTCOMES = ("completed", "machine", "fax", "busy", "no-answer", "failed", "canceled")


class Disposition(TimestampMixin, Base):
    __tablename__ = "dispositions"
    __table_args__ = (
        UniqueConstraint("business_id", "code", name="uq_dispositions_business_code"),
        CheckConstraint(
            "retry_after_h IS NULL OR retry_after_h BETWEEN 1 AND 720", name="retry_after_h"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    #: What Call.disposition holds: the agent, an operator or a rule sets it.
    code: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(100), default="", server_default="")
    #: Outcomes (OUTCOMES) that set this disposition on a call nobody else disposed; an outcome
    #: belongs to at most one disposition of a business (checked by the API).
    outcomes: Mapped[list[str]] = mapped_column(JSON, default=list)
    action: Mapped[str] = mapped_column(String(8), default="none", server_default="none")
    retry_after_h: Mapped[int | None] = mapped_column()
    move_to_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
