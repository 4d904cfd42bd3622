"""Call logs: the filters of the listing and the shape of one call."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, computed_field

from services.api.schemas import Page, Paging, Problem, RowId, Shape

CallStatus = Literal[
    "queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer", "failed",
    "canceled",
]  # fmt: skip


class CallFilter(Paging):
    run_id: RowId | None = None
    lead_id: RowId | None = None
    status: CallStatus | None = None


class Call(Shape):
    id: int
    run_id: int | None
    job_id: int | None
    lead_id: int | None
    attempt: int
    direction: str
    to: str = Field(validation_alias="to_number")
    status: str
    provider_call_sid: str | None
    answered_by: str | None
    duration_s: int | None
    error_code: str | None = Field(exclude=True)
    error_message: str | None = Field(exclude=True)
    created_at: datetime
    ended_at: datetime | None
    from_: str = Field(validation_alias="from_number", serialization_alias="from")
    disposition: str | None = Field(
        description="how the call went: a code of the business's dispositions (GET "
        "/api/dispositions), set by the voice agent, an operator or a rule"
    )
    disposition_source: Literal["agent", "operator", "rule"] | None = Field(
        description="who set the disposition"
    )
    transferred_to: str | None = Field(description="the person the agent handed the caller to")
    transfer_mode: Literal["cold", "warm"] | None
    agent_error: str | None = Field(
        description="why the voice agent failed mid-call (the caller heard the fallback prompt)"
    )

    recording_path: str | None = Field(None, exclude=True)
    recording_bytes: int | None = Field(None, exclude=True)
    recording_duration_ms: int | None = Field(None, exclude=True)
    recording_sha256: str | None = Field(None, exclude=True)
    recording_sid: str | None = Field(None, exclude=True)
    recording_channels: int | None = Field(None, exclude=True)
    recording_expired_at: datetime | None = Field(None, exclude=True)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def recording(self) -> Recording | None:
        if not (self.recording_path or self.recording_sid or self.recording_expired_at):
            return None
        return Recording(
            available=bool(self.recording_path and self.recording_sha256),
            bytes=self.recording_bytes, duration_ms=self.recording_duration_ms,
            sha256=self.recording_sha256, channels=self.recording_channels,
            expired_at=self.recording_expired_at,
        )  # fmt: skip

    @computed_field  # type: ignore[prop-decorator]
    @property
    def error(self) -> Problem | None:
        if not self.error_code:
            return None
        return Problem(code=self.error_code, message=self.error_message or "")


class Recording(Shape):
    """A call's recording: inbound (the media stream) or outbound (the provider's, dual
    channel). Download it from GET /api/calls/{id}/recording while it is kept."""

    available: bool = Field(description="false once retention deleted the file (or not yet "
                            "fetched from the provider)")  # fmt: skip
    bytes: int | None
    duration_ms: int | None
    sha256: str | None = Field(description="of the file as stored (hex)")
    channels: int | None = Field(description="2: dual channel, one side on each")
    expired_at: datetime | None = Field(description="when retention deleted the file")


class CallPage(Page[Call]):
    pass


class TranscriptLine(Shape):
    at: datetime
    role: Literal["caller", "agent", "system"]
    text: str


class CallDetail(Call):
    """A call with its transcript: both sides, timestamped, in order."""

    transcript: list[TranscriptLine]
