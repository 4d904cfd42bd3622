"""Status callbacks: signed and stored once by the calls service; applied by the worker
(``calls.status_changed``), forward-only; the job, lead and run follow."""

import json

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from libs.common.db import Database
from libs.common.models import Call, CallEvent, CallJob, CallJobStatus, Lead, Run, RunStatus
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from libs.telephony.twilio_signature import sign
from services.calls.app import create_app
from tests.calls.conftest import AUTH_TOKEN, PUBLIC, Post, RunWorker, callback, new_sid
from tests.campaign_factories import make_campaign, start_attempt
from tests.support.services import free_port


def _job(db: Database, job_id: int) -> CallJob:
    with db.session() as session:
        return session.get_one(CallJob, job_id)


def _call(db: Database, call_id: int) -> Call:
    with db.session() as session:
        return session.get_one(Call, call_id)


def _events(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(CallEvent)) or 0)


def _dispatches(redis_client: redis.Redis) -> list[dict]:  # type: ignore[type-arg]
    ids = redis_client.lrange("dramatiq:high", 0, -1)
    return [json.loads(redis_client.hget("dramatiq:high.msgs", i)) for i in ids]


def test_completed_frees_the_slot_and_the_worker_fills_it_in_place(
    db: Database, post_only: Post, run_worker: RunWorker, redis_client: redis.Redis
) -> None:
    campaign = make_campaign(db, 1)
    sid = new_sid()
    call_id = start_attempt(db, campaign.job_ids[0], sid)
    for seq, status in enumerate(["initiated", "ringing", "in-progress"]):
        assert post_only(callback(sid, status, seq)).status_code == 204
    run_worker()
    assert _job(db, campaign.job_ids[0]).status is CallJobStatus.IN_CALL
    response = post_only(callback(sid, "completed", 3, CallDuration="42"))
    assert response.status_code == 204
    # The calls service stored it and sent one message; the worker applies it.
    assert _call(db, call_id).status == "in-progress"
    [message] = _dispatches(redis_client)
    assert message["actor_name"] == "calls.status_changed"
    assert message["kwargs"] == {"sid": sid, "status": "completed", "job_id": None,
                                 "attempt": None}  # fmt: skip
    sent = run_worker()
    job, call = _job(db, campaign.job_ids[0]), _call(db, call_id)
    assert job.status is CallJobStatus.COMPLETED
    assert call.status == "completed" and call.duration_s == 42 and call.ended_at is not None
    with db.session() as session:
        assert session.get_one(Run, campaign.run_id).status is RunStatus.COMPLETED
        assert session.get_one(Lead, campaign.lead_ids[0]).last_call_status == "completed"
        assert set(session.scalars(select(CallEvent.applied))) == {True}
    # The freed slot is filled by the worker in place: no dialer.dispatch message.
    assert "dialer.dispatch" not in {m.actor_name for m in sent}
    assert _dispatches(redis_client) == []


def test_a_repeated_callback_sends_no_second_message(
    db: Database, post_only: Post, redis_client: redis.Redis
) -> None:
    campaign = make_campaign(db, 1)
    sid = new_sid()
    start_attempt(db, campaign.job_ids[0], sid)
    for _ in range(3):
        assert post_only(callback(sid, "completed", 3)).status_code == 204
    assert [m["actor_name"] for m in _dispatches(redis_client)] == ["calls.status_changed"]


def test_the_run_completes_with_its_last_open_job_only(db: Database, post_status: Post) -> None:
    # The call's lock reads whether the run has another open job; the run's completion is
    # checked only when it has none.
    campaign = make_campaign(db, 3)
    sids = [new_sid() for _ in campaign.job_ids]
    for job_id, sid in zip(campaign.job_ids[:2], sids, strict=False):
        start_attempt(db, job_id, sid)

    def run_status() -> RunStatus:
        with db.session() as session:
            return session.get_one(Run, campaign.run_id).status

    assert post_status(callback(sids[0], "completed", 3)).status_code == 204
    assert run_status() is RunStatus.RUNNING  # one job in a call, one still queued
    assert post_status(callback(sids[1], "no-answer", 3)).status_code == 204
    assert run_status() is RunStatus.RUNNING  # the third job has not been dialed
    start_attempt(db, campaign.job_ids[2], sids[2])
    assert post_status(callback(sids[2], "busy", 3)).status_code == 204  # one attempt: final
    assert run_status() is RunStatus.COMPLETED


def test_the_message_leaves_once_the_answer_is_written(
    db: Database, calls_client: FlaskClient, redis_client: redis.Redis
) -> None:
    # Not buffered: the test client leaves the response open, as a server does until it has
    # written it; the callback is stored by then, the message not yet sent.
    campaign = make_campaign(db, 1)
    sid = new_sid()
    start_attempt(db, campaign.job_ids[0], sid)
    path, params = "/webhook/twilio/status", callback(sid, "completed", 3)
    signature = sign(AUTH_TOKEN, PUBLIC + path, params)
    response = calls_client.post(path, data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 204
    assert _events(db) == 1
    assert _dispatches(redis_client) == []
    response.close()
    [message] = _dispatches(redis_client)
    assert message["actor_name"] == "calls.status_changed"


def test_a_job_canceled_during_the_call_stays_canceled(
    db: Database, post_status: Post, redis_client: redis.Redis
) -> None:
    campaign = make_campaign(db, 2)
    sid = new_sid()
    call_id = start_attempt(db, campaign.job_ids[0], sid)
    with db.session() as session:  # what canceling the run does to its open jobs
        session.execute(
            update(CallJob)
            .where(CallJob.id == campaign.job_ids[0])
            .values(status=CallJobStatus.CANCELED)
        )
        session.commit()
    assert post_status(callback(sid, "completed", 3)).status_code == 204
    assert _call(db, call_id).status == "completed"
    job = _job(db, campaign.job_ids[0])
    assert job.status is CallJobStatus.CANCELED
    assert _dispatches(redis_client) == [], "a canceled job's slot was already given back"
    with db.session() as session:  # the other job is still queued: the run goes on
        assert session.get_one(Run, campaign.run_id).status is RunStatus.RUNNING


def test_duplicates_are_stored_once(db: Database, post_status: Post) -> None:
    campaign = make_campaign(db, 1)
    sid = new_sid()
    start_attempt(db, campaign.job_ids[0], sid)
    for _ in range(3):
        assert post_status(callback(sid, "ringing", 1)).status_code == 204
    assert _events(db) == 1


def test_a_late_status_never_overwrites_a_final_one(db: Database, post_status: Post) -> None:
    campaign = make_campaign(db, 1)
    sid = new_sid()
    call_id = start_attempt(db, campaign.job_ids[0], sid)
    post_status(callback(sid, "completed", 3, CallDuration="5"))
    for seq, status in enumerate(["in-progress", "ringing", "initiated"]):
        assert post_status(callback(sid, status, seq)).status_code == 204
    assert _call(db, call_id).status == "completed"
    assert _job(db, campaign.job_ids[0]).status is CallJobStatus.COMPLETED
    with db.session() as session:
        applied = dict(session.execute(select(CallEvent.status, CallEvent.applied)).all())
    # Each was applied once: the late ones changed nothing (counted as "late").
    assert applied == {
        "completed": True,
        "in-progress": True,
        "ringing": True,
        "initiated": True,
    }


def test_the_first_callback_attaches_a_call_id_the_worker_never_stored(
    db: Database, post_status: Post
) -> None:
    campaign = make_campaign(db, 1)
    job_id = campaign.job_ids[0]
    call_id = start_attempt(db, job_id, sid=None)  # the worker died before storing the sid
    sid = new_sid()
    post_status(callback(sid, "ringing", 1), query=f"job={job_id}&attempt=1")
    assert _call(db, call_id).provider_call_sid == sid
    assert _job(db, job_id).provider_call_sid == sid


@pytest.mark.parametrize("status", ["busy", "no-answer"])
def test_busy_and_no_answer_retry_until_max_attempts(
    db: Database, post_status: Post, status: str
) -> None:
    campaign = make_campaign(db, 1, max_attempts=2, retry_delay_s=30)
    job_id = campaign.job_ids[0]
    first = new_sid()
    start_attempt(db, job_id, first)
    post_status(callback(first, status, 1))
    job = _job(db, job_id)
    assert job.status is CallJobStatus.QUEUED and job.next_attempt_at is not None
    second = new_sid()
    start_attempt(db, job_id, second)
    post_status(callback(second, status, 1))
    job = _job(db, job_id)
    assert job.status.value == status.replace("-", "_") and job.attempt == 2


def test_failed_keeps_the_error_code(db: Database, post_status: Post) -> None:
    campaign = make_campaign(db, 1, max_attempts=3)
    sid = new_sid()
    start_attempt(db, campaign.job_ids[0], sid)
    post_status(callback(sid, "failed", 1, ErrorCode="31005"))
    job = _job(db, campaign.job_ids[0])
    assert job.status is CallJobStatus.FAILED and job.error_code == "31005"


@pytest.mark.parametrize(
    "tamper",
    ["missing", "forged", "altered_params", "altered_query", "other_token"],
)
def test_bad_signatures_are_403_and_change_nothing(
    db: Database, post_status: Post, tamper: str
) -> None:
    from libs.telephony.twilio_signature import sign
    from tests.calls.conftest import PUBLIC

    campaign = make_campaign(db, 1)
    sid = new_sid()
    call_id = start_attempt(db, campaign.job_ids[0], sid)
    params = callback(sid, "completed", 3, CallDuration="5")
    path = "/webhook/twilio/status?job=1&attempt=1"
    good = sign("calls-test-auth-token", PUBLIC + path, params)
    if tamper == "missing":
        response = post_status(params, "job=1&attempt=1", signature="")
    elif tamper == "forged":
        response = post_status(params, "job=1&attempt=1", signature="Zm9yZ2Vk")
    elif tamper == "altered_params":  # replayed with a different status
        response = post_status({**params, "CallStatus": "busy"}, "job=1&attempt=1", good)
    elif tamper == "altered_query":
        response = post_status(params, "job=2&attempt=1", good)
    else:
        response = post_status(params, "job=1&attempt=1", sign("other", PUBLIC + path, params))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "invalid_signature"
    assert _events(db) == 0
    assert _call(db, call_id).status == "queued"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"CallSid": "nope", "CallStatus": "completed"},
        {"CallSid": "CA" + "0" * 32, "CallStatus": "exploded"},
        {"CallSid": "CA" + "0" * 32, "CallStatus": "completed", "CallDuration": "-1"},
        {"CallSid": "CA" + "0" * 32, "CallStatus": "completed", "SequenceNumber": "x"},
        {"CallSid": "CA" + "0" * 32, "CallStatus": "completed", "AnsweredBy": "robot"},
    ],
)
def test_malformed_parameters_are_400(db: Database, post_status: Post, params: dict) -> None:  # type: ignore[type-arg]
    response = post_status(params)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_request"
    assert _events(db) == 0


def test_unknown_call_is_recorded_and_acknowledged(db: Database, post_status: Post) -> None:
    assert post_status(callback(new_sid(), "completed", 1)).status_code == 204
    assert _events(db) == 1
    with db.session() as session:  # kept for when a worker stores the call's id
        assert session.scalar(select(CallEvent.applied)) is False


def test_callbacks_before_the_call_id_is_known_are_applied_when_it_is(
    db: Database, post_status: Post
) -> None:
    from libs.campaigns.lifecycle.statements import CALLS
    from libs.campaigns.lifecycle.status import apply_pending_events, lock_call
    from libs.common.models import utcnow

    campaign = make_campaign(db, 1)
    call_id = start_attempt(db, campaign.job_ids[0], sid=None)
    sid = new_sid()
    # No job/attempt in the URL (as for a call placed elsewhere): nothing to attach it to yet.
    post_status(callback(sid, "in-progress", 2))
    post_status(callback(sid, "completed", 3, CallDuration="9"))
    assert _call(db, call_id).status == "queued"
    with db.session() as session:
        call = lock_call(session, call_id=call_id)
        assert call is not None
        call.provider_call_sid = sid
        session.execute(update(CALLS).where(CALLS.c.id == call_id).values(provider_call_sid=sid))
        applied = apply_pending_events(session, call, utcnow())
        session.commit()
    assert [a.moved for a in applied] == [True, True]
    assert _call(db, call_id).status == "completed" and _call(db, call_id).duration_s == 9
    assert _job(db, campaign.job_ids[0]).status is CallJobStatus.COMPLETED


def _fail_as_never_created(db: Database, job_id: int, call_id: int) -> None:
    """What the reconciler does to an attempt with no call id after the dialing timeout."""
    from libs.campaigns.lifecycle.status import fail_attempt, lock_call
    from libs.common.call_status import NO_PROVIDER_CALL_ID
    from libs.common.models import utcnow

    with db.session() as session:
        call = lock_call(session, call_id=call_id)
        assert call is not None and call.job_id == job_id
        fail_attempt(session, call, NO_PROVIDER_CALL_ID, "no id in time", utcnow())
        session.commit()


def test_the_providers_final_status_replaces_a_failure_inferred_by_the_reconciler(
    db: Database, post_status: Post, redis_client: redis.Redis
) -> None:
    # The worker created the call but could not store its id (database outage), the callbacks
    # came late, and the reconciler had failed the attempt as never created. The call did
    # happen: the call log and the job must say what the provider says.
    campaign = make_campaign(db, 1, max_attempts=3)
    job_id = campaign.job_ids[0]
    call_id = start_attempt(db, job_id, sid=None)
    _fail_as_never_created(db, job_id, call_id)
    sid = new_sid()
    query = f"job={job_id}&attempt=1"
    assert post_status(callback(sid, "in-progress", 2), query=query).status_code == 204
    assert _call(db, call_id).status == "failed"  # only a final status is the provider's word
    assert (
        post_status(callback(sid, "completed", 3, CallDuration="7"), query=query).status_code == 204
    )
    call, job = _call(db, call_id), _job(db, job_id)
    assert (call.status, call.provider_call_sid, call.duration_s) == ("completed", sid, 7)
    assert call.error_code is None
    assert job.status is CallJobStatus.COMPLETED and job.error_code is None
    assert job.provider_call_sid == sid
    with db.session() as session:
        run = session.get_one(Run, campaign.run_id)
        assert run.status is RunStatus.COMPLETED  # finished when the job failed; stays so
        assert session.get_one(Lead, campaign.lead_ids[0]).last_call_status == "completed"
    assert _dispatches(redis_client) == []  # the slot was given back when it was failed


def test_a_provider_failure_is_not_replaced(db: Database, post_status: Post) -> None:
    campaign = make_campaign(db, 1)
    sid = new_sid()
    call_id = start_attempt(db, campaign.job_ids[0], sid)
    post_status(callback(sid, "failed", 1, ErrorCode="31005"))
    post_status(callback(sid, "completed", 2))
    assert _call(db, call_id).status == "failed"
    assert _job(db, campaign.job_ids[0]).error_code == "31005"


def test_an_unreachable_database_is_a_503_so_twilio_retries(
    calls_settings: Settings, redis_client: redis.Redis
) -> None:
    # Twilio (and the simulator) retry a callback answered 5xx: the status is not lost.
    down = calls_settings.with_overrides(
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    )
    client = create_app(down, broker=build_broker(down, worker=False)).test_client()
    params = callback(new_sid(), "completed", 3)
    signature = sign(AUTH_TOKEN, PUBLIC + "/webhook/twilio/status", params)
    response = client.post("/webhook/twilio/status", data=params,
                           headers={"X-Twilio-Signature": signature})  # fmt: skip
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == "5"
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["database"]["ok"] is False
