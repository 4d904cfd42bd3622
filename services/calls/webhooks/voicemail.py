"""GET /webhook/media/voicemail/<run>/<token>: a run's uploaded voicemail, for Twilio's <Play>.

Twilio fetches media without a signature, so the URL itself is the secret: a random token per
upload (a new upload, a new URL), compared in constant time. Nothing else is served here.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response
from sqlalchemy import select
from sqlalchemy.orm import undefer

from libs.common.models import Run
from libs.web.db import get_session
from libs.web.errors import ApiError

blueprint = Blueprint("voicemail_media", __name__)


@blueprint.get("/webhook/media/voicemail/<int:run_id>/<token>")
def voicemail(run_id: int, token: str) -> Response:
    run = get_session().scalar(
        select(Run).where(Run.id == run_id).options(undefer(Run.voicemail_audio))
    )
    stored = run.voicemail_audio_token if run is not None else None
    if run is None or not stored or not hmac.compare_digest(stored, token[:64]):
        raise ApiError(404, "not_found", "no such voicemail")
    response = Response(run.voicemail_audio or b"", mimetype=run.voicemail_audio_type)
    response.headers["Cache-Control"] = "private, max-age=300"
    return response
