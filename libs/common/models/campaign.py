"""Outbound runs (campaigns) and their call jobs: one job per lead per run.

A job's status is the single source of truth for concurrency: a call is active exactly while
its job is ``dialing`` or ``in_call``.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    Enum,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from libs.common.models.base import Base, BigId, TimestampMixin, UTCDateTime


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(
        cls, name=name, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]
    )


class RunStatus(enum.StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELED = "canceled"
    COMPLETED = "completed"


class CallJobStatus(enum.StrEnum):
    QUEUED = "queued"
    DIALING = "dialing"
    IN_CALL = "in_call"
    COMPLETED = "completed"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELED = "canceled"
    SKIPPED_DNC = "skipped_dnc"


class Run(TimestampMixin, Base):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint("max_attempts BETWEEN 1 AND 10", name="max_attempts"),
        CheckConstraint("retry_delay_s >= 0", name="retry_delay_s"),
        # 3 % is the US telemarketing limit: a run may be stricter, never looser.
        CheckConstraint("max_abandon_rate BETWEEN 0 AND 0.03", name="max_abandon_rate"),
        CheckConstraint("max_failure_rate > 0 AND max_failure_rate <= 1", name="max_failure_rate"),
        CheckConstraint("failure_window_s > 0", name="failure_window_s"),
        CheckConstraint("min_failure_sample >= 1", name="min_failure_sample"),
        Index("ix_runs_business_id_status", "business_id", "status"),
        # One daily run per business and local date; campaign runs have no date (NULLs differ).
        UniqueConstraint("business_id", "daily_date", name="uq_runs_business_daily_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    #: "campaign" (created by a user) or "daily" (one per business and local date, holding the
    #: calls of daily schedules so they go through the same dialer).
    kind: Mapped[str] = mapped_column(String(16), default="campaign", server_default="campaign")
    daily_date: Mapped[date | None] = mapped_column(Date())
    status: Mapped[RunStatus] = mapped_column(
        _enum(RunStatus, "run_status"), default=RunStatus.DRAFT
    )
    max_attempts: Mapped[int] = mapped_column(default=1, server_default="1")
    retry_delay_s: Mapped[int] = mapped_column(default=3600, server_default="3600")
    #: Local calling window of the called party, "HH:MM" 24h; end is exclusive.
    window_start: Mapped[str] = mapped_column(String(5), default="08:00", server_default="08:00")
    window_end: Mapped[str] = mapped_column(String(5), default="21:00", server_default="21:00")
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Record the run's calls (dual channel: each side on its own channel).
    record_calls: Mapped[bool] = mapped_column(default=False, server_default="0")
    #: Answering-machine detection (libs/campaigns/outcomes/amd.py): off, Enable, DetectMessageEnd;
    #: asynchronous, so a person is never left waiting for it.
    amd_mode: Mapped[str] = mapped_column(String(16), default="off", server_default="off")
    #: What a machine gets: hang_up, voicemail (after the beep) or agent (connected anyway).
    machine_action: Mapped[str] = mapped_column(
        String(16), default="hang_up", server_default="hang_up"
    )
    #: The voicemail: text spoken by <Say>, or an audio file's URL played by <Play>.
    voicemail_text: Mapped[str | None] = mapped_column(Text)
    voicemail_audio_url: Mapped[str | None] = mapped_column(String(500))
    #: An uploaded voicemail (PUT /api/runs/{id}/voicemail): served to Twilio by the calls
    #: service under an unguessable token; wins over the URL and the text.
    voicemail_audio: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    voicemail_audio_type: Mapped[str | None] = mapped_column(String(32))
    voicemail_audio_token: Mapped[str | None] = mapped_column(String(64))
    #: Whether a call a machine answered uses up one of max_attempts.
    machine_counts_as_attempt: Mapped[bool] = mapped_column(default=True, server_default="1")
    #: Call a machine's lead again after this long (None: not again for the machine).
    machine_retry_delay_s: Mapped[int | None] = mapped_column()
    #: Why the run paused itself (libs/campaigns/outcomes/compliance.py), shown until resumed.
    paused_reason: Mapped[str | None] = mapped_column(Text)
    auto_paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The run's own compliance limits (compliance.Limits): it pauses itself before its 30-day
    #: abandonment rate passes max_abandon_rate (at most 3 %), and when more than
    #: max_failure_rate of its calls that ended in the last failure_window_s (at least
    #: min_failure_sample of them) failed at the provider.
    max_abandon_rate: Mapped[float] = mapped_column(Float, default=0.03, server_default="0.03")
    max_failure_rate: Mapped[float] = mapped_column(Float, default=0.5, server_default="0.5")
    failure_window_s: Mapped[int] = mapped_column(default=600, server_default="600")
    min_failure_sample: Mapped[int] = mapped_column(default=10, server_default="10")


class CallJob(TimestampMixin, Base):
    __tablename__ = "call_jobs"
    __table_args__ = (
        UniqueConstraint("run_id", "lead_id", name="uq_call_jobs_run_lead"),
        # The dialer's two hot queries: active calls per business, due jobs per business.
        Index("ix_call_jobs_business_id_status", "business_id", "status"),
        Index("ix_call_jobs_run_id_status", "run_id", "status"),
        Index("ix_call_jobs_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    #: Copied from the run so the concurrency count needs no join.
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    phone_e164: Mapped[str] = mapped_column(String(20))
    #: The zone the calling window is checked in (the lead's, else the business's).
    timezone: Mapped[str] = mapped_column(String(64))
    status: Mapped[CallJobStatus] = mapped_column(
        _enum(CallJobStatus, "call_job_status"), default=CallJobStatus.QUEUED
    )
    #: Attempts started so far; each attempt has at most one Call row (and provider call).
    attempt: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Not dialed before this instant (retry delay, calling window).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dialing_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    provider_call_sid: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
