"""POST /webhook/twilio/recording: an outbound call's recording is ready at the provider.

Signed like every Twilio route; the recording is stored on its call once (the recording id is
unique, and a call keeps its first), then ``recordings.fetch`` downloads it in the worker.
"""

from __future__ import annotations

import logging
import re

import dramatiq
from flask import Blueprint, Response, request
from sqlalchemy import select, update

from libs.common import metrics
from libs.common.contracts import RECORDINGS_FETCH
from libs.common.models import Call
from libs.web.db import get_session
from libs.web.errors import ApiError
from services.calls.webhooks.signature import twilio_signed

logger = logging.getLogger(__name__)
blueprint = Blueprint("twilio_recording", __name__)

CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
RECORDING_SID = re.compile(r"^RE[0-9a-fA-F]{32}$")

metrics.WEBHOOK_SIGNATURE_FAILURES.labels("/webhook/twilio/recording")


def _field(name: str, pattern: re.Pattern[str] | None = None, max_length: int = 500) -> str:
    value = request.form.get(name, "")
    if not value or len(value) > max_length or (pattern and not pattern.match(value)):
        raise ApiError(400, "bad_request", f"{name} is missing or malformed")
    return value


@blueprint.post("/webhook/twilio/recording")
@twilio_signed
def recording_callback() -> Response:
    call_sid, recording_sid = _field("CallSid", CALL_SID), _field("RecordingSid", RECORDING_SID)
    if request.form.get("RecordingStatus", "completed") != "completed":
        return Response(status=204)  # in-progress and absent: nothing to fetch (yet)
    url = _field("RecordingUrl")
    channels = request.form.get("RecordingChannels", "")
    session = get_session()
    known = session.scalar(select(Call.id).where(
        Call.provider_call_sid == call_sid))  # fmt: skip
    call_id = session.scalar(
        update(Call)
        .where(Call.provider_call_sid == call_sid, Call.recording_sid.is_(None))
        .values(recording_sid=recording_sid, recording_url=url,
                recording_channels=int(channels) if channels.isdigit() else None)
        .returning(Call.id)
    )  # fmt: skip
    session.commit()
    if call_id is None:
        if known is None:
            # The call's id may not be stored yet (the worker stores it after the provider's
            # answer): a 5xx makes Twilio try again shortly, instead of losing the recording.
            raise ApiError(503, "call_not_ready", f"no call {call_sid} yet")
        return Response(status=204)  # a repeat of this callback: stored already
    message = RECORDINGS_FETCH.message(call_id=call_id)
    response = Response(status=204)
    response.call_on_close(lambda: _send(message))
    return response


def _send(message: dramatiq.Message) -> None:  # type: ignore[type-arg]
    try:
        dramatiq.get_broker().enqueue(message)
    except Exception as exc:  # any broker's error: the reconciler's sweep sends it again
        logger.warning("%s not enqueued: %s", message.actor_name, type(exc).__name__)
