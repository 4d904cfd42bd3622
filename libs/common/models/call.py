"""Calls (one row per provider call) and the status callbacks received for them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql import ColumnElement

from libs.common.models.base import Base, BigId, TimestampMixin, UTCDateTime, utcnow

if TYPE_CHECKING:
    from libs.common.models.agent import TranscriptLine


#: An answered call whose price is not known: the predicate of ``ix_calls_unpriced_ended_at``,
#: which a query must repeat word for word for the planner to use the index.
UNPRICED = "price_micros IS NULL AND status = 'completed'"


#: A stored status callback no worker has applied yet: the predicate of
#: ``ix_call_events_unapplied_received_at`` (a query repeats it word for word).
UNAPPLIED = "NOT applied"


class Call(TimestampMixin, Base):
    __tablename__ = "calls"
    __table_args__ = (
        # At most one provider call per job attempt: the row exists before the provider is asked.
        UniqueConstraint("job_id", "attempt", name="uq_calls_job_attempt"),
        UniqueConstraint("provider_call_sid", name="uq_calls_provider_call_sid"),
        UniqueConstraint("recording_sid", name="uq_calls_recording_sid"),
        Index("ix_calls_business_id_created_at", "business_id", "created_at"),
        Index("ix_calls_status_created_at", "status", "created_at"),
        # The outcomes sweep: ended calls whose outcome is not applied yet.
        Index("ix_calls_outcome_applied_at_ended_at", "outcome_applied_at", "ended_at"),
        # A run's rates (analytics, abandonment, provider failures) read its calls.
        Index("ix_calls_run_id_ended_at", "run_id", "ended_at"),
        # outcomes.price: answered calls without a price yet. Partial, so it holds only the
        # few calls the provider has not priced (minutes' worth), however many calls exist.
        Index(
            "ix_calls_unpriced_ended_at",
            "ended_at",
            postgresql_where=text(UNPRICED),
            sqlite_where=text(UNPRICED),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("call_jobs.id", ondelete="SET NULL"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    attempt: Mapped[int] = mapped_column(default=1, server_default="1")
    direction: Mapped[str] = mapped_column(String(16), default="outbound")
    to_number: Mapped[str] = mapped_column(String(20))
    from_number: Mapped[str] = mapped_column(String(20), default="", server_default="")
    provider_call_sid: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    answered_by: Mapped[str | None] = mapped_column(String(32))
    duration_s: Mapped[int | None] = mapped_column()
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Inbound calls: what the caller asked for on the keypad (read by leads.create_from_call).
    callback_requested: Mapped[bool] = mapped_column(default=False, server_default="0")
    opted_out: Mapped[bool] = mapped_column(default=False, server_default="0")
    stream_sid: Mapped[str | None] = mapped_column(String(64))
    #: How the call went (interested, callback, …): a code of the business's dispositions,
    #: set by the voice agent, an operator, or a rule from the outcome (libs/campaigns/outcomes).
    disposition: Mapped[str | None] = mapped_column(String(32))
    #: Who set it: agent, operator or rule (None with no disposition).
    disposition_source: Mapped[str | None] = mapped_column(String(16))
    #: When the worker last applied the call's outcome (rule, recycling); None: not yet.
    outcome_applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The disposition whose recycling was applied, so applying it again changes nothing.
    recycled_disposition: Mapped[str | None] = mapped_column(String(32))
    #: The person the agent handed the caller to, and how (cold or warm).
    transferred_to: Mapped[str | None] = mapped_column(String(20))
    transfer_mode: Mapped[str | None] = mapped_column(String(8))
    #: Why the agent failed mid-call (the caller heard the fallback prompt), if it did.
    agent_error: Mapped[str | None] = mapped_column(Text)
    #: The inbound audio as a WAV file, relative to RECORDINGS_DIR; described by recordings.process.
    recording_path: Mapped[str | None] = mapped_column(String(300))
    recording_bytes: Mapped[int | None] = mapped_column(BigInteger)
    recording_duration_ms: Mapped[int | None] = mapped_column()
    recording_sha256: Mapped[str | None] = mapped_column(String(64))
    #: Outbound recordings: the provider's recording (stored once, from its callback), fetched
    #: by recordings.fetch into recording_path.
    recording_sid: Mapped[str | None] = mapped_column(String(64))
    recording_url: Mapped[str | None] = mapped_column(String(500))
    recording_channels: Mapped[int | None] = mapped_column()
    #: When the retention period deleted the recording's file.
    recording_expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: What the run's machine policy did when AMD said a machine answered (hung_up, voicemail,
    #: agent), and when AMD answered.
    machine_action: Mapped[str | None] = mapped_column(String(16))
    amd_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: When the call was answered (in-progress): the start of the 2 s an agent has to speak.
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: When the voice agent's first audio reached the caller (written by the media path).
    agent_first_audio_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: A person answered and heard no agent within 2 s (None: not judged, see compliance.py).
    abandoned: Mapped[bool | None] = mapped_column()
    #: What the provider charged, in millionths of price_unit (its `price`, made positive);
    #: fetched by outcomes.price once the call has ended.
    price_micros: Mapped[int | None] = mapped_column(BigInteger)
    price_unit: Mapped[str | None] = mapped_column(String(3))
    #: Where the transcript came from once the recording was transcribed (agent, none, …).
    transcribed_by: Mapped[str | None] = mapped_column(String(16))
    #: What was said, in order (written by the media path when the stream ends).
    transcript: Mapped[list[TranscriptLine]] = relationship(
        order_by="TranscriptLine.seq", viewonly=True, lazy="select"
    )

    @hybrid_property
    def caller_known(self) -> bool:
        """Whether the caller's number is known. A withheld caller is stored as "" (the column
        is NOT NULL), so "unknown" is the empty string in Python and in SQL alike."""
        return self.from_number != ""

    @caller_known.inplace.expression
    @classmethod
    def _caller_known_expression(cls) -> ColumnElement[bool]:
        return cls.from_number != ""


class CallEvent(Base):
    """A status callback, stored once per (call, status) whatever Twilio retries or repeats."""

    __tablename__ = "call_events"
    __table_args__ = (
        UniqueConstraint("provider_call_sid", "status", name="uq_call_events_sid_status"),
        # The reconciler's re-send of lost calls.status_changed messages: partial, so it holds
        # only callbacks not applied yet (seconds' worth, and those of calls never known).
        Index(
            "ix_call_events_unapplied_received_at",
            "received_at",
            postgresql_where=text(UNAPPLIED),
            sqlite_where=text(UNAPPLIED),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider_call_sid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    sequence_number: Mapped[int | None] = mapped_column()
    #: Whether a worker applied the event to its call (it moved it forward, or came too late
    #: to: counted apart); False until then (``calls.status_changed``), and for a call never
    #: known.
    applied: Mapped[bool] = mapped_column(default=False, server_default="0")
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
