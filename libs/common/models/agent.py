"""A business's voice-agent settings and the transcripts of its calls."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from libs.common.models.base import Base, BigId, TimestampMixin, UTCDateTime

#: How a business's calls are answered: the keypad (no model), a realtime speech-to-speech
#: model, or a cascaded pipeline (speech-to-text, a chat model, text-to-speech).
AGENT_KINDS = ("keypad", "realtime", "cascaded")
#: What an agent's model may do, each a function it can call (all enabled by default).
AGENT_TOOLS = (
    "update_lead",
    "request_callback",
    "opt_out",
    "transfer",
    "hang_up",
    "set_disposition",
)


class AgentSettings(TimestampMixin, Base):
    """One row per business; no row means the deployment's default (``VOICE_AGENT``)."""

    __tablename__ = "agent_settings"

    business_id: Mapped[int] = mapped_column(
        ForeignKey("businesses.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), default="keypad", server_default="keypad")
    model: Mapped[str] = mapped_column(String(100), default="", server_default="")
    instructions: Mapped[str] = mapped_column(Text, default="", server_default="")
    voice: Mapped[str] = mapped_column(String(40), default="", server_default="")
    tools: Mapped[list[str]] = mapped_column(JSON, default=lambda: list(AGENT_TOOLS))
    #: Where "transfer to a person" goes when the model names no number.
    transfer_number: Mapped[str | None] = mapped_column(String(20))
    #: The model provider's API key, Fernet-encrypted (libs.common.crypto); never returned.
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)


class TranscriptLine(Base):
    """What was said on a call, by the caller or the agent, in order."""

    __tablename__ = "call_transcript_lines"
    __table_args__ = (Index("ix_call_transcript_lines_call_id_seq", "call_id", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column()
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: caller | agent | system (what the line did: barge-in, transfer, fallback)
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
