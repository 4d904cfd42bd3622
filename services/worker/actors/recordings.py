"""recordings.fetch and recordings.expire: outbound recordings from the provider, and
retention for every recording."""

from __future__ import annotations

import logging

import requests
from sqlalchemy import select

from libs.campaigns.outcomes import recordings, transcription
from libs.common import metrics
from libs.common.contracts import RECORDINGS_EXPIRE, RECORDINGS_FETCH
from libs.common.models import Call, utcnow
from libs.queueops.middleware.worker_context import worker_context
from services.worker.registry import MissingRow, implements

logger = logging.getLogger(__name__)

#: Seconds to wait for the provider's media (a long call's WAV is a few MB).
FETCH_TIMEOUT_S = 60

for _result in ("stored", "refused"):
    metrics.RECORDINGS_FETCHED.labels(_result)


@implements(RECORDINGS_FETCH)
def fetch(call_id: int) -> None:
    """Idempotent: a recording already stored is not fetched again."""
    ctx = worker_context()
    settings = ctx.settings
    with ctx.database.session() as session:
        call = session.get(Call, call_id)
        if call is None or not call.recording_url:
            raise MissingRow(f"call {call_id} has no provider recording")
        if call.recording_sha256 is not None:
            return
        try:
            url = recordings.media_url(settings, call.recording_url)
        except recordings.RecordingUrlRefused as exc:
            logger.warning("recordings.fetch: call %d: %s", call_id, exc)
            metrics.RECORDINGS_FETCHED.labels("refused").inc()
            return
    # Outside any transaction: the download may take a while. A failure raises, so the
    # message is retried with backoff (the provider may not have the media ready yet).
    answer = requests.get(url, auth=(settings.twilio_account_sid or "",
                                     settings.twilio_auth_token or ""),
                          timeout=FETCH_TIMEOUT_S)  # fmt: skip
    answer.raise_for_status()
    with ctx.database.session() as session:
        call = session.scalars(select(Call).where(Call.id == call_id).with_for_update()).one()
        if call.recording_sha256 is not None:  # another delivery stored it meanwhile
            return
        stored = recordings.store(settings.recordings_dir, call, answer.content)
        call.recording_path = stored.relative_path
        call.recording_sha256, call.recording_bytes = stored.sha256, stored.size
        call.recording_duration_ms, call.recording_channels = stored.duration_ms, stored.channels
        transcriber = transcription.transcriber_for(session, call)
        transcriber.transcribe(session, call, settings.recordings_dir / stored.relative_path)
        call.transcribed_by = transcriber.name
        session.commit()
    metrics.RECORDINGS_FETCHED.labels("stored").inc()


@implements(RECORDINGS_EXPIRE)
def expire(period_start: int) -> None:
    ctx = worker_context()
    with ctx.database.session() as session:
        deleted = recordings.expire(session, ctx.settings.recordings_dir, utcnow())
        session.commit()
    if deleted:
        metrics.RECORDINGS_EXPIRED.inc(deleted)
        logger.info("recordings.expire: %d recordings past their retention deleted", deleted)
