"""Transcribing a call's recording, behind one interface.

Where a voice agent ran, the call already has its transcript (both sides, written by the
media path as the call went): that is its transcription. Other recordings go to a
``Transcriber`` (a speech-to-text model); none is configured by default, and a call without
one keeps an empty transcript. Models plug in here, with a simulator for tests, as the voice
agent's do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from libs.common.models import Call, TranscriptLine


class Transcriber(Protocol):
    #: Stored on the call as where its transcript came from.
    name: str

    def transcribe(self, session: Session, call: Call, recording: Path) -> bool:
        """Store the call's transcript lines; whether there is a transcript."""


class AgentTranscript:
    """The voice agent's transcript, kept as the call's transcription."""

    name = "agent"

    def transcribe(self, session: Session, call: Call, recording: Path) -> bool:
        lines = session.scalar(
            select(func.count())
            .select_from(TranscriptLine)
            .where(TranscriptLine.call_id == call.id)
        )
        return bool(lines)


class NoTranscriber:
    """No speech-to-text model configured: the recording stays untranscribed."""

    name = "none"

    def transcribe(self, session: Session, call: Call, recording: Path) -> bool:
        return False


def transcriber_for(session: Session, call: Call) -> Transcriber:
    """The agent's transcript where there was an agent; otherwise the configured model."""
    if AgentTranscript().transcribe(session, call, Path()):
        return AgentTranscript()
    return NoTranscriber()
