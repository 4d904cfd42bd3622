"""The speech-to-speech agent end to end: Twilio's side of a call (the media client, speaking)
→ the calls service's webhooks and media server → the realtime model simulator (the OpenAI
Realtime wire format) and, for transfers, the Twilio simulator's REST API. Nothing is stubbed
inside Switchboard: these are the code paths a real model and real Twilio would drive."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import select

from libs.common import repositories
from libs.common.db import Database
from libs.common.models import AgentSettings, Call, Lead, TokenRole, TranscriptLine
from simulators.twilio.media_client import StreamResult, Target, run_stream
from tests.e2e.conftest import BUSINESS_NUMBER, CallsService
from tests.support.processes import running, service_env
from tests.support.services import free_port
from tests.support.twilio_sim import ACCOUNT_SID, AUTH_TOKEN
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

HUMAN = "+14155550199"
MODEL_KEY = "sk-test-realtime-key"


@dataclass
class Sims:
    realtime: str
    twilio: str

    def behaviour(self, **raw: Any) -> None:
        requests.post(f"{self.realtime}/_sim/behaviour", json=raw, timeout=5).raise_for_status()

    def sessions(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = requests.get(
            f"{self.realtime}/_sim/sessions", timeout=5
        ).json()["sessions"]
        return data

    def ledger(self) -> dict[str, Any]:
        data: dict[str, Any] = requests.get(f"{self.twilio}/_sim/ledger", timeout=5).json()
        return data


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[Sims]:
    realtime_port, twilio_port = free_port(), free_port()
    env = service_env(TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN)
    python = sys.executable
    with (
        running(
            [python, "-m", "simulators.realtime", "--port", str(realtime_port)],
            env,
            tmp_path / "realtime-sim.log",
            f"http://127.0.0.1:{realtime_port}/_sim/healthz",
        ),
        running(
            [python, "-m", "simulators.twilio", "--port", str(twilio_port), "--cps", "100"],
            env,
            tmp_path / "twilio-sim.log",
            f"http://127.0.0.1:{twilio_port}/_sim/healthz",
        ),
    ):
        yield Sims(f"http://127.0.0.1:{realtime_port}", f"http://127.0.0.1:{twilio_port}")


@pytest.fixture
def calls_env(sims: Sims) -> dict[str, str]:
    return {
        "REALTIME_API_BASE": sims.realtime.replace("http://", "ws://") + "/v1",
        "MODEL_API_BASE": sims.realtime + "/v1",
        "OPENAI_API_KEY": MODEL_KEY,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_API_BASE": sims.twilio,
    }


@pytest.fixture
def agent(calls_service: CallsService, db: Database) -> AgentSettings:
    """The business answers with the realtime model, its own instructions and voice."""
    with db.session() as session:
        row = AgentSettings(
            business_id=calls_service.business_id,
            kind="realtime",
            model="gpt-realtime",
            voice="marin",
            instructions="You are Acme's receptionist.",
            transfer_number=HUMAN,
        )
        session.add(row)
        session.commit()
    return row


def _call(
    calls_service: CallsService, sims: Sims, seconds: float, speech: list[tuple[float, float]]
) -> StreamResult:
    target = Target(
        ws_url="",
        voice_url=f"{calls_service.public}/webhook/twilio/voice",
        auth_token=AUTH_TOKEN,
        to=BUSINESS_NUMBER,
        twilio_sim=sims.twilio,
    )

    async def one() -> StreamResult:
        async with aiohttp.ClientSession() as session:
            return await run_stream(session, target, 0, seconds, speech=speech)

    result = asyncio.run(one())
    assert result.ok, (
        result.error,
        calls_service.media_log and calls_service.media_log.read_text()[-3000:],
    )
    return result


def _call_row(db: Database, call_sid: str, ended: bool = True) -> Call:
    def found() -> Call | None:
        with db.session() as session:
            call = session.scalar(select(Call).where(Call.provider_call_sid == call_sid))
            return call if call is not None and (call.ended_at or not ended) else None

    assert wait_until(lambda: found() is not None, timeout_s=20)
    call = found()
    assert call is not None
    return call


def _transcript(db: Database, call_id: int) -> list[tuple[str, str]]:
    with db.session() as session:
        rows = session.scalars(
            select(TranscriptLine)
            .where(TranscriptLine.call_id == call_id)
            .order_by(TranscriptLine.seq)
        ).all()
        return [(r.role, r.text) for r in rows]


def test_a_conversation_whose_function_call_creates_a_lead_with_fields(
    calls_service: CallsService,
    sims: Sims,
    agent: AgentSettings,
    db: Database,
    client: FlaskClient,
) -> None:
    sims.behaviour(
        greeting="Hello, Acme here.",
        response_delay_ms=100,
        script=[
            {
                "caller": "I'm Ada Lovelace, ada@example.com, I want a quote for 20 seats.",
                "reply": "Thanks Ada, someone will send you a quote.",
                "call": {
                    "name": "update_lead",
                    "arguments": {
                        "name": "Ada Lovelace",
                        "email": "ada@example.com",
                        "fields": {"seats": 20},
                    },
                },
            }
        ],
    )
    result = _call(calls_service, sims, seconds=4.5, speech=[(1.2, 0.6)])
    [session] = sims.sessions()
    config = session["config"]
    # Per-business settings reached the model, and μ-law both ways: nothing resampled.
    assert config["instructions"] == "You are Acme's receptionist."
    assert config["audio"]["output"]["voice"] == "marin"
    assert (
        config["audio"]["input"]["format"]
        == config["audio"]["output"]["format"]
        == {"type": "audio/pcmu"}
    )
    assert {t["name"] for t in config["tools"]} >= {"update_lead", "transfer", "opt_out"}
    assert session["function_outputs"] and '"ok": true' in session["function_outputs"][0]["output"]
    call = _call_row(db, result.call_sid)
    with db.session() as s:
        lead = s.scalar(select(Lead).where(Lead.business_id == calls_service.business_id))
    assert lead is not None and call.lead_id == lead.id
    assert (lead.name, lead.email, lead.attributes) == (
        "Ada Lovelace",
        "ada@example.com",
        {"seats": 20},
    )
    lines = _transcript(db, call.id)
    assert ("agent", "Hello, Acme here.") in lines
    assert ("caller", "I'm Ada Lovelace, ada@example.com, I want a quote for 20 seats.") in lines
    assert ("agent", "Thanks Ada, someone will send you a quote.") in lines
    # The greeting reached the caller, then the reply to the turn.
    assert result.received_media > 50
    # The API shows the same transcript, in order, with timestamps.
    with db.session() as s:
        _, token = repositories.create_token(s, TokenRole.BUSINESS, calls_service.business_id, "t")
        s.commit()
    detail = client.get(f"/api/calls/{call.id}", headers={"Authorization": f"Bearer {token}"})
    assert detail.status_code == 200
    assert [(t["role"], t["text"]) for t in detail.get_json()["transcript"]] == lines
    assert all(t["at"] for t in detail.get_json()["transcript"])


def test_a_barge_in_clears_twilio_and_truncates_at_the_heard_offset(
    calls_service: CallsService, sims: Sims, agent: AgentSettings, db: Database
) -> None:
    long_greeting = " ".join(["word"] * 40)  # ~4.8 s of audio
    sims.behaviour(greeting=long_greeting, response_delay_ms=50)
    result = _call(calls_service, sims, seconds=4.0, speech=[(1.5, 0.6)])
    assert result.clears_at, "no clear reached Twilio"
    clear_at = result.clears_at[0]
    [session] = sims.sessions()
    [truncation] = session["truncations"]
    assert truncation["content_index"] == 0 and truncation["item_id"].startswith("item_")
    # What the caller had heard when the clear came: Twilio plays frames as they arrive,
    # one every 20 ms from the first.
    heard_ms = (clear_at - result.first_audio_at) * 1000
    assert abs(truncation["audio_end_ms"] - heard_ms) <= 60, (truncation, heard_ms)
    # The barge-in is cut short well before the greeting's end.
    assert 1000 < truncation["audio_end_ms"] < 3000
    call = _call_row(db, result.call_sid)
    assert any(
        role == "system" and "interrupted" in text for role, text in _transcript(db, call.id)
    )


def test_a_cold_transfer_redirects_the_call_at_twilio(
    calls_service: CallsService, sims: Sims, agent: AgentSettings, db: Database
) -> None:
    sims.behaviour(
        greeting="Hi.",
        response_delay_ms=50,
        script=[
            {
                "caller": "Can I talk to a person?",
                "reply": "Connecting you.",
                "call": {"name": "transfer", "arguments": {}},
            }
        ],
    )
    result = _call(calls_service, sims, seconds=3.0, speech=[(0.6, 0.5)])
    calls = {c["sid"]: c for c in sims.ledger()["calls"]}
    twiml = calls[result.call_sid]["twiml"]
    assert len(twiml) == 1 and "<Dial" in twiml[0] and f">{HUMAN}</Dial>" in twiml[0], twiml
    call = _call_row(db, result.call_sid)
    assert (call.transferred_to, call.transfer_mode) == (HUMAN, "cold")


def test_a_warm_transfer_calls_the_person_first_with_a_summary(
    calls_service: CallsService, sims: Sims, agent: AgentSettings, db: Database
) -> None:
    requests.post(
        f"{sims.twilio}/_sim/scenario",
        timeout=5,
        json={"numbers": {HUMAN: {"ring_s": 0.3, "talk_s": 30}}},
    ).raise_for_status()
    sims.behaviour(
        greeting="Hi.",
        response_delay_ms=50,
        script=[
            {
                "caller": "Billing please.",
                "reply": "One moment.",
                "call": {
                    "name": "transfer",
                    "arguments": {"warm": True, "summary": "Ada has a billing question."},
                },
            }
        ],
    )
    result = _call(calls_service, sims, seconds=5.0, speech=[(0.6, 0.5)])
    calls = sims.ledger()["calls"]
    [human] = [c for c in calls if c["to"] == HUMAN]
    assert "Ada has a billing question." in human["twiml"][0]
    room = f"transfer-{result.call_sid}"
    assert f">{room}</Conference>" in human["twiml"][0]
    caller = next(c for c in calls if c["sid"] == result.call_sid)
    # Bridged only after the person answered: the caller's call joins the same conference.
    assert len(caller["twiml"]) == 1 and f">{room}</Conference>" in caller["twiml"][0]
    assert human["answered_at"] is not None
    call = _call_row(db, result.call_sid)
    assert (call.transferred_to, call.transfer_mode) == (HUMAN, "warm")


def test_the_model_dropping_mid_call_falls_back_to_the_prompt(
    calls_service: CallsService, sims: Sims, agent: AgentSettings, db: Database
) -> None:
    sims.behaviour(greeting="Hi there.", response_delay_ms=50, drop_after_ms=800)
    result = _call(calls_service, sims, seconds=4.0, speech=[])
    # The fallback prompt played to its end: its mark came back (the model sends none).
    assert result.received_marks == 1
    call = _call_row(db, result.call_sid)
    assert call.agent_error and "model closed the connection" in call.agent_error
    assert call.status == "completed"
    log = calls_service.media_log.read_text() if calls_service.media_log else ""
    assert "agent failed, falling back" in log and "media stream failed" not in log
    assert "Traceback" not in log


def test_a_forged_upgrade_is_refused_before_the_model_is_called(
    calls_service: CallsService, sims: Sims, agent: AgentSettings
) -> None:
    async def forged() -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(
                    calls_service.stream_url, headers={"X-Twilio-Signature": "bm90IGl0"}
                ):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert asyncio.run(forged()) == 403
    assert sims.sessions() == []


def test_a_cascaded_pipeline_from_the_same_settings(
    calls_service: CallsService, sims: Sims, db: Database
) -> None:
    """speech-to-text → chat model (a function call, then the answer) → text-to-speech, turns
    taken by the line's own VAD, all over the simulator's HTTP APIs."""
    with db.session() as session:
        session.add(
            AgentSettings(
                business_id=calls_service.business_id,
                kind="cascaded",
                model="gpt-4o-mini",
                voice="coral",
                instructions="Be brief.",
                tools=["update_lead"],
            )
        )
        session.commit()
    sims.behaviour(
        script=[
            {
                "caller": "I'm Grace, grace@example.com.",
                "reply": "Thanks Grace.",
                "call": {
                    "name": "update_lead",
                    "arguments": {"name": "Grace Hopper", "email": "grace@example.com"},
                },
            }
        ]
    )
    result = _call(calls_service, sims, seconds=4.5, speech=[(1.2, 0.8)])
    call = _call_row(db, result.call_sid)
    with db.session() as s:
        lead = s.scalar(select(Lead).where(Lead.business_id == calls_service.business_id))
    assert lead is not None and (lead.name, lead.email) == ("Grace Hopper", "grace@example.com")
    lines = _transcript(db, call.id)
    assert ("caller", "I'm Grace, grace@example.com.") in lines
    assert ("agent", "Thanks Grace.") in lines and ("agent", "Hello, how can I help?") in lines
    requests_seen = requests.get(f"{sims.realtime}/_sim/sessions", timeout=5).json()["cascade"]
    paths = [r["path"] for r in requests_seen]
    assert paths.count("transcriptions") == 1 and paths.count("chat") == 2
    chat = next(r for r in requests_seen if r["path"] == "chat")
    assert chat["messages"][0] == {"role": "system", "content": "Be brief."}
    assert [t["function"]["name"] for t in chat["tools"]] == ["update_lead"]
    assert {r["voice"] for r in requests_seen if r["path"] == "speech"} == {"coral"}
    # The greeting and the answer were played to the caller.
    assert result.received_media > 40
