"""POST /webhook/twilio/voice: connect an answered call to the voice agent's media stream.

Inbound: the business is the owner of the called number; the call log is created once per
CallSid (Twilio retries a slow webhook). Outbound (a campaign call the person answered; the
dialer's URL names the job and attempt): the call log the dialer created. Either way the TwiML
connects the call to the media server's stream URL; Twilio forbids query strings there, so
the business and call ids travel as ``<Parameter>``s. An answering machine is hung up on.
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, current_app, request
from sqlalchemy import select
from twilio.twiml.voice_response import Connect, VoiceResponse

from libs.campaigns.lifecycle import inbound
from libs.campaigns.lifecycle import status as lifecycle
from libs.common.models import PhoneNumber, utcnow
from libs.common.settings import Settings
from libs.queueops.outbox import enqueue_after_commit
from libs.telephony.phones import InvalidPhone, to_e164
from libs.web.db import get_session
from libs.web.errors import ApiError
from services.calls.webhooks.signature import twilio_signed

logger = logging.getLogger(__name__)
blueprint = Blueprint("twilio_voice", __name__)

CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
UNKNOWN_NUMBER_MESSAGE = (
    "Sorry, this number is not in service. Please check the number and try again. Goodbye."
)


def _twiml(response: VoiceResponse) -> Response:
    return Response(str(response), mimetype="application/xml")


def _number(name: str) -> str:
    try:
        return to_e164(request.form.get(name, ""))
    except InvalidPhone:
        raise ApiError(400, "bad_request", f"{name} must be a phone number") from None


@blueprint.post("/webhook/twilio/voice")
@twilio_signed
def voice() -> Response:
    settings: Settings = current_app.config["SETTINGS"]
    call_sid = request.form.get("CallSid", "")
    if not CALL_SID.match(call_sid):
        raise ApiError(400, "bad_request", "CallSid must be CA followed by 32 hex digits")
    if request.form.get("Direction", "").startswith("outbound"):
        return _outbound(settings, call_sid)
    to_number = _number("To")
    try:
        from_number = to_e164(request.form.get("From", ""))
    except InvalidPhone:
        from_number = ""  # withheld ("anonymous") callers are answered too; no lead is made
    session = get_session()
    owner = session.scalar(select(PhoneNumber).where(PhoneNumber.number_e164 == to_number))
    if owner is None:
        # Never a 500 for Twilio to read out: a polite message, and a warning for operators.
        logger.warning("inbound call %s to %s: no business owns this number", call_sid, to_number)
        response = VoiceResponse()
        response.say(UNKNOWN_NUMBER_MESSAGE)
        response.hangup()
        return _twiml(response)
    call_id = inbound.open_call(session, owner.business_id, to_number, from_number, call_sid)
    session.commit()
    return _stream(settings, owner.business_id, call_id)


def _stream(settings: Settings, business_id: int, call_id: int) -> Response:
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=settings.stream_url)
    stream.parameter(name="business_id", value=str(business_id))
    stream.parameter(name="call_id", value=str(call_id))
    response.append(connect)
    return _twiml(response)


def _outbound(settings: Settings, call_sid: str) -> Response:
    """A campaign call was answered: a person reaches the same agent as inbound callers."""
    job, attempt = request.args.get("job", ""), request.args.get("attempt", "")
    if not (job.isdigit() and attempt.isdigit() and len(job) <= 18 and len(attempt) <= 9):
        raise ApiError(400, "bad_request", "an outbound call's URL must name its job and attempt")
    session = get_session()
    call = lifecycle.lock_call(session, job_attempt=(int(job), int(attempt)))
    if call is None or call.provider_call_sid not in (None, call_sid):
        raise ApiError(404, "not_found", f"no call for job {job} attempt {attempt}")
    # The answer may come before the worker stored the id (as a status callback can).
    now = utcnow()
    applied = lifecycle.attach_sid(session, call, call_sid, now)
    # Twilio asks for this TwiML when the call is answered: that is the call's in-progress
    # (no "answered" status callback is asked for; docs/architecture.md).
    answered_by = request.form.get("AnsweredBy") or None
    answered = lifecycle.StatusUpdate("in-progress", answered_by=answered_by)
    applied.append(lifecycle.apply_status(session, call, answered, now))
    for outgoing in (o for a in applied for o in a.followups):
        enqueue_after_commit(session, outgoing)
    session.commit()
    if request.form.get("AnsweredBy", "").startswith(("machine", "fax")):
        response = VoiceResponse()
        response.hangup()
        return _twiml(response)
    return _stream(settings, call.business_id, call.id)
