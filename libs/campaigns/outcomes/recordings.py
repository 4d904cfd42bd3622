"""Outbound call recordings: what the provider is asked for, where its media may be fetched
from, how it is stored (beside the inbound ones, with a SHA-256), and retention.

Inbound recordings are written by the media path (``recording_path``, relative to
RECORDINGS_DIR); outbound ones are the provider's, dual channel (the called person on one
channel, Switchboard's side on the other), fetched by ``recordings.fetch`` after the
provider's recording callback.
"""

from __future__ import annotations

import hashlib
import io
import os
import wave
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.common.models import Business, Call
from libs.common.settings import Settings
from libs.telephony.twilio_provider import TWILIO_API_HOST

#: Deleted per retention pass (the next pass takes the rest).
EXPIRE_BATCH = 1000
#: A recording announced this long ago and still not stored lost its fetch message.
FETCH_OVERDUE = timedelta(minutes=2)
#: How far back fetches are repaired (the provider keeps recordings longer).
FETCH_WINDOW = timedelta(days=2)


def callback_url(public_base_url: str) -> str:
    return f"{public_base_url}/webhook/twilio/recording"


def create_options(record_calls: bool, public_base_url: str) -> dict[str, Any]:
    """The Twilio ``calls.create`` arguments of the run's recording (none when off)."""
    if not record_calls:
        return {}
    return {
        "record": True,
        "recording_channels": "dual",
        "recording_status_callback": callback_url(public_base_url),
        "recording_status_callback_method": "POST",
        "recording_status_callback_event": ["completed"],
    }


def unfetched(session: Session, now: datetime) -> list[int]:
    """Calls whose announced recording was not stored in time: their fetch is sent again."""
    return list(
        session.scalars(
            select(Call.id)
            .where(
                Call.recording_url.is_not(None),
                Call.recording_sha256.is_(None),
                Call.recording_expired_at.is_(None),
                Call.ended_at.between(now - FETCH_WINDOW, now - FETCH_OVERDUE),
            )
            .limit(500)
        )
    )


class RecordingUrlRefused(ValueError):
    """A RecordingUrl that is not the provider's API (the worker fetches only from there)."""


def media_url(settings: Settings, recording_url: str) -> str:
    """The WAV of a recording, from the provider's API only: a callback cannot make the worker
    fetch (with the account's credentials) from anywhere else."""
    base = urlsplit(settings.twilio_api_base or TWILIO_API_HOST)
    url = urlsplit(recording_url)
    account = settings.twilio_account_sid or ""
    prefix = f"/2010-04-01/Accounts/{account}/Recordings/"
    if (url.scheme, url.netloc) != (base.scheme, base.netloc) or not url.path.startswith(prefix):
        raise RecordingUrlRefused(f"not a recording of this account: {recording_url[:200]}")
    path = url.path.removesuffix(".json")
    return f"{base.scheme}://{base.netloc}{path}" + ("" if path.endswith(".wav") else ".wav")


@dataclass(frozen=True)
class Stored:
    relative_path: str
    sha256: str
    size: int
    duration_ms: int
    channels: int


def store(recordings_dir: Path, call: Call, content: bytes) -> Stored:
    """Write the recording once, atomically (a crash leaves no half file under its name)."""
    with wave.open(io.BytesIO(content)) as audio:  # refuses what is not a WAV file
        frames, rate, channels = audio.getnframes(), audio.getframerate(), audio.getnchannels()
    relative = f"outbound/{call.business_id}/{call.provider_call_sid or call.id}.wav"
    path = recordings_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(content)
    os.replace(partial, path)
    return Stored(relative, hashlib.sha256(content).hexdigest(), len(content),
                  frames * 1000 // max(rate, 1), channels)  # fmt: skip


def expire(session: Session, recordings_dir: Path, now: datetime) -> int:
    """Delete the files of recordings past their business's retention; the call keeps its
    checksum and says when the file went. Returns how many were deleted."""
    retention = session.execute(
        select(Business.id, Business.recording_retention_days).where(
            Business.recording_retention_days.is_not(None)
        )
    ).all()
    deleted = 0
    for business_id, days in retention:
        calls = session.scalars(
            select(Call)
            .where(
                Call.business_id == business_id,
                Call.recording_path.is_not(None),
                Call.ended_at < now - timedelta(days=days or 0),
            )
            .order_by(Call.ended_at)
            .limit(EXPIRE_BATCH - deleted)
            .with_for_update()
        ).all()
        for call in calls:
            (recordings_dir / str(call.recording_path)).unlink(missing_ok=True)
            call.recording_path = None
            call.recording_expired_at = now
            deleted += 1
        if deleted >= EXPIRE_BATCH:
            break
    return deleted
