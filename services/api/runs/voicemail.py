"""A run's voicemail audio: uploaded here, played to answering machines after the beep."""

from __future__ import annotations

import secrets

from flask import Blueprint, request

from libs.web.db import get_session
from libs.web.errors import ApiError
from libs.web.validation import bad_request
from services.api.runs.routes import _run_or_404, _shown
from services.api.runs.schemas import Run
from services.api.spec import answers, api

blueprint = Blueprint("run_voicemail", __name__)

#: A voicemail of a minute or so; Twilio fetches it once per call.
MAX_VOICEMAIL_BYTES = 2 * 1024 * 1024


def audio_kind(content: bytes) -> str | None:
    """What Twilio's <Play> takes, recognised by the file's first bytes, not the client's word."""
    if content[:4] == b"RIFF" and content[8:12] == b"WAVE":
        return "audio/wav"
    if content[:3] == b"ID3" or (len(content) > 1 and content[0] == 0xFF and content[1] >= 0xE0):
        return "audio/mpeg"
    return None


@blueprint.put("/runs/<int:run_id>/voicemail")
@api.validate(resp=answers({200: Run}, 404, 413))
def put_voicemail(run_id: int) -> Run:
    """Upload the run's voicemail: the request body is the audio file itself (WAV or MP3,
    up to 2 MB; Content-Type audio/wav or audio/mpeg). It is played after the beep to the
    machines of a run whose amd.action is voicemail, instead of its URL or text."""
    session = get_session()
    run = _run_or_404(run_id, lock=True)
    content = request.get_data(cache=False)[: MAX_VOICEMAIL_BYTES + 1]
    if len(content) > MAX_VOICEMAIL_BYTES:
        raise ApiError(413, "payload_too_large", f"a voicemail is at most {MAX_VOICEMAIL_BYTES} "
                       "bytes")  # fmt: skip
    kind = audio_kind(content)
    if kind is None:
        raise bad_request("the body must be a WAV or MP3 file (the audio itself)")
    run.voicemail_audio, run.voicemail_audio_type = content, kind
    run.voicemail_audio_token = secrets.token_urlsafe(24)  # a new file, a new URL
    session.commit()
    return _shown(run)


@blueprint.delete("/runs/<int:run_id>/voicemail")
@api.validate(resp=answers({200: Run}, 404))
def delete_voicemail(run_id: int) -> Run:
    """Remove the uploaded voicemail (the run's URL or text is used again)."""
    session = get_session()
    run = _run_or_404(run_id, lock=True)
    run.voicemail_audio = run.voicemail_audio_type = run.voicemail_audio_token = None
    session.commit()
    return _shown(run)
