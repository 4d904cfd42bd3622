"""Outbound recordings end to end in one process: a run with recording on asks the simulated
Twilio (through the SDK) for a dual-channel recording; the simulator's signed recording
callback reaches the real calls app, which stores it once and sends recordings.fetch; the
worker downloads the WAV, stores it with its SHA-256 beside the inbound recordings; the
retention job deletes it once its business's period has passed."""

from __future__ import annotations

import hashlib
import time
import wave
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select, update

from libs.campaigns.outcomes import recordings
from libs.common.contracts import DIALER_DISPATCH, RECORDINGS_EXPIRE, RECORDINGS_FETCH
from libs.common.db import Database
from libs.common.models import Business, Call, Run, utcnow
from libs.common.settings import Settings
from libs.telephony.twilio_signature import sign
from tests.campaign_factories import make_campaign
from tests.support.calls_service import calls_service_thread
from tests.support.services import free_port
from tests.support.twilio_sim import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    Simulator,
    simulator_thread,
    worker_settings_with_simulator,
)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with simulator_thread(cps=1000) as simulator:
        simulator.scenario(default={"ring_s": 0.1, "talk_s": 1})
        yield simulator


@pytest.fixture
def calls_port() -> int:
    return free_port()


@pytest.fixture
def worker_settings(settings: Settings, sim: Simulator, calls_port: int) -> Settings:
    return worker_settings_with_simulator(settings, sim).with_overrides(
        public_base_url=f"http://127.0.0.1:{calls_port}"
    )


@pytest.fixture
def calls_service(
    worker_settings: Settings, stub_broker: StubBroker, calls_port: int
) -> Iterator[str]:
    with calls_service_thread(worker_settings, stub_broker, calls_port) as url:
        yield url


def _wait(what: str, check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _call(db: Database) -> Call:
    with db.session() as session:
        call = session.scalars(select(Call)).one()
        session.expunge(call)
        return call


def _recorded(db: Database) -> bool:
    with db.session() as session:
        return session.scalar(select(Call.recording_sha256)) is not None


def _ended(db: Database) -> bool:
    with db.session() as session:
        return session.scalar(select(Call.status)) == "completed"


def test_a_recorded_run_s_call_is_fetched_checksummed_and_expired(
    db: Database, sim: Simulator, worker_settings: Settings, calls_service: str,
    stub_broker: StubBroker, stub_worker: Worker,
) -> None:  # fmt: skip
    campaign = make_campaign(db)
    with db.session() as session:
        session.execute(update(Run).where(Run.id == campaign.run_id).values(record_calls=True))
        session.commit()
    DIALER_DISPATCH.send(stub_broker, business_id=campaign.business_id)
    _wait("the recording stored", lambda: _recorded(db))
    stub_broker.join(RECORDINGS_FETCH.queue)
    call = _call(db)
    (ledger,) = sim.ledger()["calls"]
    assert ledger["recording"]["channels"] == 2
    assert call.recording_sid == ledger["recording"]["sid"]
    assert call.recording_channels == 2 and call.transcribed_by == "none"
    path = worker_settings.recordings_dir / str(call.recording_path)
    assert path.is_relative_to(worker_settings.recordings_dir / "outbound")
    content = path.read_bytes()
    served = requests.get(f"{call.recording_url}.wav", auth=(ACCOUNT_SID, AUTH_TOKEN),
                          timeout=10).content  # fmt: skip
    assert content == served
    assert call.recording_sha256 == hashlib.sha256(content).hexdigest()
    assert call.recording_bytes == len(content)
    with wave.open(str(path)) as audio:
        assert audio.getnchannels() == 2
    assert call.recording_duration_ms == 1000 * audio.getnframes() // audio.getframerate()

    # Fetching again (a redelivered message) downloads and changes nothing.
    stub_broker.enqueue(RECORDINGS_FETCH.message(call_id=call.id))
    stub_broker.join(RECORDINGS_FETCH.queue)
    stub_worker.join()
    assert _call(db).recording_sha256 == call.recording_sha256

    # Retention: kept while within the period, deleted once past it.
    with db.session() as session:
        session.execute(update(Business).where(Business.id == campaign.business_id)
                        .values(recording_retention_days=2))  # fmt: skip
        session.commit()
    _expire(stub_broker, stub_worker)
    assert path.exists()
    with db.session() as session:
        session.execute(update(Call).where(Call.id == call.id)
                        .values(ended_at=utcnow() - timedelta(days=2, minutes=1)))  # fmt: skip
        session.commit()
    _expire(stub_broker, stub_worker)
    assert not path.exists()
    expired = _call(db)
    assert expired.recording_path is None and expired.recording_expired_at is not None
    assert expired.recording_sha256 == call.recording_sha256  # the record of what it was


def _expire(broker: StubBroker, worker: Worker) -> None:
    broker.enqueue(RECORDINGS_EXPIRE.message(period_start=0))
    broker.join(RECORDINGS_EXPIRE.queue)
    worker.join()


def test_a_run_without_recording_asks_for_none(
    db: Database, sim: Simulator, calls_service: str, stub_broker: StubBroker,
    stub_worker: Worker,
) -> None:  # fmt: skip
    campaign = make_campaign(db)
    DIALER_DISPATCH.send(stub_broker, business_id=campaign.business_id)
    _wait("the call ended", lambda: _ended(db))
    time.sleep(0.5)
    assert sim.ledger()["calls"][0]["recording"] is None
    assert _call(db).recording_sid is None


def test_the_worker_fetches_only_from_the_provider_s_api(worker_settings: Settings) -> None:
    base = f"{worker_settings.twilio_api_base}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/"
    assert recordings.media_url(worker_settings, base + "RE1") == base + "RE1.wav"
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        f"http://evil.example/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE1",
        f"{worker_settings.twilio_api_base}/2010-04-01/Accounts/ACother/Recordings/RE1",
    ):
        with pytest.raises(recordings.RecordingUrlRefused):
            recordings.media_url(worker_settings, url)


def test_a_recording_callback_is_stored_once(
    db: Database, worker_settings: Settings, calls_service: str, stub_broker: StubBroker
) -> None:
    campaign = make_campaign(db)
    sid = "CA" + "5" * 32
    with db.session() as session:
        session.add(Call(business_id=campaign.business_id, to_number="+14155550100",
                         provider_call_sid=sid, status="completed"))  # fmt: skip
        session.commit()
    url = f"{calls_service}/webhook/twilio/recording"

    def post(recording_sid: str, call_sid: str = sid) -> int:
        params = {
            "CallSid": call_sid,
            "RecordingSid": recording_sid,
            "RecordingStatus": "completed",
            "RecordingUrl": "https://api.twilio.com/x",
            "RecordingChannels": "2",
        }
        signature = sign(AUTH_TOKEN, url, params)
        answer = requests.post(url, data=params, headers={"X-Twilio-Signature": signature},
                               timeout=10)  # fmt: skip
        return answer.status_code

    assert post("RE" + "1" * 32) == 204
    assert post("RE" + "1" * 32) == 204  # Twilio repeated it
    assert post("RE" + "2" * 32) == 204  # a second recording of the call is not taken
    assert post("RE" + "3" * 32, call_sid="CA" + "6" * 32) == 503  # the call is not known yet
    call = _call(db)
    assert call.recording_sid == "RE" + "1" * 32
    queued = [m for m in stub_broker.queues[RECORDINGS_FETCH.queue].queue]
    assert len(queued) == 1
