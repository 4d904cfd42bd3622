"""The voice webhook for outbound campaign calls: a person who answers reaches the voice agent
(the TwiML connects the dialer's call log to the media stream); a machine is hung up on."""

import xml.etree.ElementTree as ET

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from libs.common.db import Database
from libs.common.models import Call
from libs.telephony.twilio_signature import sign
from tests.calls.conftest import AUTH_TOKEN, PUBLIC, new_sid
from tests.campaign_factories import make_campaign, start_attempt


def _answered(client: FlaskClient, query: str, call_sid: str, **extra: str) -> TestResponse:
    params = {
        "CallSid": call_sid,
        "From": "+15005550006",
        "To": "+14155550100",
        "Direction": "outbound-api",
        "CallStatus": "in-progress",
        **extra,
    }
    path = "/webhook/twilio/voice" + (f"?{query}" if query else "")
    signature = sign(AUTH_TOKEN, PUBLIC + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def test_an_answered_campaign_call_is_connected_to_the_agent(
    calls_client: FlaskClient, db: Database
) -> None:
    campaign = make_campaign(db, 1)
    call_id = start_attempt(db, campaign.job_ids[0], None)  # the sid is not stored yet
    sid = new_sid()
    answer = _answered(calls_client, f"job={campaign.job_ids[0]}&attempt=1", sid)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    stream = ET.fromstring(answer.get_data(as_text=True)).find("./Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://switchboard.example.com/ws/media"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"business_id": str(campaign.business_id), "call_id": str(call_id)}
    with db.session() as session:
        assert session.get_one(Call, call_id).provider_call_sid == sid


def test_an_answering_machine_is_hung_up_on(calls_client: FlaskClient, db: Database) -> None:
    campaign = make_campaign(db, 1)
    sid = new_sid()
    start_attempt(db, campaign.job_ids[0], sid)
    answer = _answered(
        calls_client, f"job={campaign.job_ids[0]}&attempt=1", sid, AnsweredBy="machine_start"
    )
    root = ET.fromstring(answer.get_data(as_text=True))
    assert root.find("Hangup") is not None and root.find("Connect") is None


def test_an_outbound_answer_for_no_call_is_a_404(calls_client: FlaskClient, db: Database) -> None:
    assert _answered(calls_client, "job=999&attempt=1", new_sid()).status_code == 404
    assert _answered(calls_client, "", new_sid()).status_code == 400
