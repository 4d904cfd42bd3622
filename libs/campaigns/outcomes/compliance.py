"""Compliance and self-protection: abandoned calls, and runs that pause themselves.

A call is **abandoned** when a person answered (not a machine or fax) and heard no agent audio
within ``ABANDON_AFTER`` of answering. It is judged once the call has ended, for calls that
reached the media server (``stream_sid``): ``Call.answered_at`` is when the lifecycle moved
it to in-progress (the voice webhook Twilio fetches on answer), and the media path writes when
the agent's first audio went out.

A run pauses itself, with the reason on the run, a ``run.paused`` event and a notice in the
console:

- **before its 30-day abandonment rate passes 3 %** (the US telemarketing limit): when one
  more abandoned call would take abandoned / answered-by-a-person above ``MAX_ABANDON_RATE``;
- **when provider failures pass ``MAX_FAILURE_RATE``** of its calls that ended in the last
  ``FAILURE_WINDOW`` (at least ``MIN_FAILURE_SAMPLE`` of them): carrier errors and invalid
  numbers, instead of burning through the list.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import dramatiq
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from libs.campaigns.lifecycle import followups
from libs.campaigns.outcomes import amd
from libs.common import metrics
from libs.common.models import Call, Run, RunStatus
from libs.queueops.outbox import enqueue_after_commit

ABANDON_AFTER = timedelta(seconds=2)
MAX_ABANDON_RATE = 0.03
ABANDON_PERIOD = timedelta(days=30)
MAX_FAILURE_RATE = 0.5
FAILURE_WINDOW = timedelta(minutes=10)
MIN_FAILURE_SAMPLE = 10

for _reason in ("abandonment", "provider_failures"):
    metrics.RUNS_AUTO_PAUSED.labels(_reason)


def stream_finished(
    session: Session, call: Call, first_audio_at: datetime | None, broker: dramatiq.Broker
) -> None:
    """The media path's last word on a call: when the agent was first heard. The call is
    judged now (its answer came long before its stream ended), and outcomes.apply runs again
    so the run's rates count it whichever of this and the final status came first."""
    call.agent_first_audio_at = call.agent_first_audio_at or first_audio_at
    call.abandoned = judge_abandoned(session, call)
    if call.direction == "outbound" and call.run_id is not None:
        enqueue_after_commit(session, followups.outcome(call.id), broker)


def judge_abandoned(session: Session, call: Call) -> bool | None:
    """Whether ``call`` was abandoned (None: not judged: nobody answered, a machine or fax
    did, or the call never reached the media server)."""
    if call.direction != "outbound" or call.answered_by in (*amd.MACHINE, "fax"):
        return None
    if call.stream_sid is None or not call.provider_call_sid:
        return None
    answered_at = call.answered_at
    if answered_at is None:
        return None
    first = call.agent_first_audio_at
    return first is None or first - answered_at > ABANDON_AFTER


def abandonment(session: Session, run_id: int, now: datetime) -> tuple[int, int]:
    """(abandoned, judged) calls of the run in the last 30 days."""
    abandoned, judged = session.execute(
        select(func.sum(case((Call.abandoned.is_(True), 1), else_=0)), func.count())
        .where(Call.run_id == run_id, Call.abandoned.is_not(None),
               Call.created_at >= now - ABANDON_PERIOD)
    ).one()  # fmt: skip
    return int(abandoned or 0), int(judged)


def abandon_rate(session: Session, run_id: int, now: datetime) -> float | None:
    abandoned, judged = abandonment(session, run_id, now)
    return round(abandoned / judged, 4) if judged else None


def provider_failures(session: Session, run_id: int, now: datetime) -> tuple[int, int]:
    """(failed, ended) calls of the run that ended within the failure window."""
    failed, ended = session.execute(
        select(func.sum(case((Call.status == "failed", 1), else_=0)), func.count())
        .where(Call.run_id == run_id, Call.ended_at >= now - FAILURE_WINDOW)
    ).one()  # fmt: skip
    return int(failed or 0), int(ended)


def pause_reason(session: Session, run_id: int, now: datetime) -> tuple[str, str] | None:
    """Why the run must pause now, as (reason code, text for a person), or None."""
    abandoned, judged = abandonment(session, run_id, now)
    if abandoned and (abandoned + 1) / (judged + 1) > MAX_ABANDON_RATE:
        return "abandonment", (
            f"{abandoned} of {judged} calls answered by a person in the last 30 days were "
            f"abandoned (no agent within {ABANDON_AFTER.seconds} s); one more would pass "
            f"{MAX_ABANDON_RATE:.0%}"
        )
    failed, ended = provider_failures(session, run_id, now)
    if ended >= MIN_FAILURE_SAMPLE and failed / ended > MAX_FAILURE_RATE:
        minutes = int(FAILURE_WINDOW.total_seconds() // 60)
        return "provider_failures", (
            f"{failed} of the {ended} calls that ended in the last {minutes} minutes failed at "
            f"the provider (carrier errors, invalid numbers): above {MAX_FAILURE_RATE:.0%}"
        )
    return None


def pause_if_needed(session: Session, run_id: int, now: datetime) -> str | None:
    """Pause a running run that must pause; the reason code when it did. The caller commits
    (and the event it emits goes with that transaction)."""
    from libs.events.catalogue import run_paused_data  # the catalogue imports models
    from libs.events.emit import emit

    found = pause_reason(session, run_id, now)
    if found is None:
        return None
    run = session.scalar(select(Run).where(Run.id == run_id).with_for_update(key_share=True))
    if run is None or run.status != RunStatus.RUNNING:
        return None
    code, text = found
    run.status, run.paused_reason, run.auto_paused_at = RunStatus.PAUSED, text, now
    metrics.RUNS_AUTO_PAUSED.labels(code).inc()
    session.flush()
    emit(session, run.business_id, "run.paused", run_paused_data(run, code))
    return code
