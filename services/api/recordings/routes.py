"""Call recordings: download one (inbound or outbound), and the retention period."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, request
from sqlalchemy import select

from libs.common.models import Business, Call
from libs.common.settings import Settings
from libs.web.db import get_session
from libs.web.errors import ApiError
from services.api.auth import current_business_id
from services.api.receipts.files import attachment_response
from services.api.recordings.schemas import RecordingSettings, RecordingSettingsInput
from services.api.spec import answers, api

blueprint = Blueprint("recordings", __name__)

_FILE = "the WAV file (Content-Disposition: attachment; ETag: its SHA-256)"
_GONE = (410, "the recording was deleted by the retention period (code recording_expired)")


@blueprint.get("/calls/<int:call_id>/recording")
@api.validate(resp=answers({200: _FILE, 304: "If-None-Match matched the ETag"}, 404, _GONE))
def download_recording(call_id: int) -> Response:
    """A call's recording as stored (μ-law mono inbound; PCM dual channel outbound)."""
    call = get_session().scalar(
        select(Call).where(Call.id == call_id, Call.business_id == current_business_id())
    )
    if call is None:
        raise ApiError(404, "not_found", f"no call {call_id}")
    if call.recording_expired_at is not None and not call.recording_path:
        raise ApiError(410, "recording_expired", f"call {call_id}'s recording was deleted by "
                       "the retention period")  # fmt: skip
    if not call.recording_path or not call.recording_sha256:
        raise ApiError(404, "not_found", f"call {call_id} has no recording (yet)")
    if request.if_none_match.contains(call.recording_sha256):
        not_modified = Response(status=304)
        not_modified.set_etag(call.recording_sha256)
        return not_modified
    settings: Settings = current_app.config["SETTINGS"]
    root = settings.recordings_dir.resolve()
    path = (root / call.recording_path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise ApiError(404, "not_found", f"call {call_id}'s recording file is missing")
    name = f"call-{call.id}{Path(call.recording_path).suffix or '.wav'}"
    return attachment_response(path.read_bytes(), name, "audio/wav", call.recording_sha256)


@blueprint.get("/recordings/settings")
@api.validate(resp=answers({200: RecordingSettings}))
def get_settings() -> RecordingSettings:
    """How long the business's recordings are kept."""
    business = get_session().get_one(Business, current_business_id())
    return RecordingSettings(retention_days=business.recording_retention_days)


@blueprint.put("/recordings/settings")
@api.validate(resp=answers({200: RecordingSettings}))
def put_settings(json: RecordingSettingsInput) -> RecordingSettings:
    """Set how long the business's recordings are kept (null: kept); an hourly job deletes
    those past it."""
    session = get_session()
    business = session.get_one(Business, current_business_id())
    business.recording_retention_days = json.retention_days
    session.commit()
    return RecordingSettings(retention_days=business.recording_retention_days)
