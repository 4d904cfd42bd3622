"""One definition of each condition a producer acts on and the reconciler repairs by.

A repair that re-derived another module's condition could disagree with it (a withheld caller
was once re-sent every pass for a day that way); here both sides read the same expression.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, text

from libs.common.call_status import (
    ACTIVE_JOB_STATUSES,
    FINAL_CALL_STATUSES,
    JOB_DIALING,
    JOB_QUEUED,
    NO_PROVIDER_CALL_ID,
)
from libs.common.models import Call, CallEvent, CallJob, Run, RunStatus
from libs.common.models.call import UNAPPLIED
from libs.telephony.twilio_provider import REQUEST_TIMEOUT_S

#: A placing worker sends its creates within this long of its claim; one it could not send in
#: time is left dialing without a call id, for the reconciler to place.
CREATE_START_LIMIT_S = 8.0


def creation_window_s(dialing_timeout_s: float) -> float:
    """How long an attempt may dial without a call id before the provider is asked about it:
    ``DIALING_TIMEOUT_S``, but never less than the latest a live worker may send its create
    plus the provider request's timeout, so a create still in flight is never placed twice."""
    return max(dialing_timeout_s, CREATE_START_LIMIT_S + REQUEST_TIMEOUT_S + 2.0)


#: A daily schedule's run fires at the time chosen for each contact: no campaign window.
DAILY_RUN_KIND = "daily"


def due(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """A job the dialer may claim now (its run joined as ``Run``): queued, run running, and
    its retry delay or calling window, if any, passed."""
    return and_(
        CallJob.status == JOB_QUEUED,
        Run.status == RunStatus.RUNNING,
        or_(CallJob.next_attempt_at.is_(None), CallJob.next_attempt_at <= now),
    )


def active() -> ColumnElement[bool]:
    """A job holding one of its business's slots."""
    return CallJob.status.in_(ACTIVE_JOB_STATUSES)


def stuck_dialing(now: datetime, creation_window_s: float) -> ColumnElement[bool]:
    """A job dialing with no provider call id after the creation window: its worker died
    between the claim and storing the id, or the provider's answer was lost. Whether the call
    exists is for the provider to say (``services/worker/reconciler.py``)."""
    return and_(
        CallJob.status == JOB_DIALING,
        CallJob.provider_call_sid.is_(None),
        CallJob.dialing_started_at < now - timedelta(seconds=creation_window_s),
    )


def unfinished(now: datetime, max_duration_s: float) -> ColumnElement[bool]:
    """A call past the maximum duration with no final status lost its callbacks, as did one
    failed as never created whose id turned up later: ask the provider."""
    return and_(
        or_(
            Call.status.not_in(FINAL_CALL_STATUSES),
            and_(Call.status == "failed", Call.error_code == NO_PROVIDER_CALL_ID),
        ),
        Call.provider_call_sid.is_not(None),
        Call.created_at < now - timedelta(seconds=max_duration_s),
    )


#: An inbound call that should have made a lead and has none: what ``leads.create_from_call``
#: acts on and the reconciler repairs by. A withheld caller (stored as "") never makes one, so
#: it is never "missing" one.
NEEDS_LEAD = and_(Call.direction == "inbound", Call.lead_id.is_(None), Call.caller_known)

#: An inbound call whose recording was never described: its follow-ups were lost.
RECORDING_UNPROCESSED = and_(
    Call.direction == "inbound",
    Call.recording_path.is_not(None),
    Call.recording_sha256.is_(None),
)


#: A stored status callback's ``calls.status_changed`` normally runs within milliseconds; one
#: still unapplied after this long lost its message (a broker outage, a crash after the answer).
CALLBACK_APPLY_WITHIN_S = 5.0


def callback_unapplied(now: datetime) -> ColumnElement[bool]:
    """A status callback stored a while ago and not applied, whose call is known (``Call``
    joined by its id): the calls service's message was lost; the reconciler sends it again.
    One whose call is not known yet is applied when its id is stored (by the placing worker,
    or the reconciler's look-up of an attempt dialing without one), not here."""
    return and_(
        text(UNAPPLIED),  # word for word the partial index's predicate
        CallEvent.received_at < now - timedelta(seconds=CALLBACK_APPLY_WITHIN_S),
        Call.provider_call_sid == CallEvent.provider_call_sid,
    )
