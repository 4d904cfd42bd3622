"""Compliance and self-protection: abandoned calls, and runs that pause themselves.

A call is **abandoned** when a person answered (not a machine or fax) and heard no agent audio
within ``ABANDON_AFTER`` of answering. It is judged once the call has ended, for calls that
reached the media server (``stream_sid``): ``Call.answered_at`` is when the lifecycle moved
it to in-progress (the voice webhook Twilio fetches on answer), and the media path writes when
the agent's first audio went out.

A run pauses itself, with the reason on the run, a ``run.paused`` event and a notice in the
console:

- **before its 30-day abandonment rate passes its limit** (3 %, the US telemarketing limit,
  unless the run chose a lower one): when one more abandoned call would take abandoned /
  answered-by-a-person above it;
- **when provider failures pass its failure limit** (by default more than half of its calls
  that ended in the last 10 minutes, at least 10 of them): carrier errors and invalid
  numbers, instead of burning through the list.

The limits are the run's own (``Run.max_abandon_rate`` and the failure columns, set when it is
created); the constants below are their defaults, and ``LEGAL_MAX_ABANDON_RATE`` the ceiling
the API and a database constraint hold every run to.
"""

from __future__ import annotations

from dataclasses import dataclass
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
#: No run may allow more: 3 % of calls answered by a person over 30 days (US telemarketing).
LEGAL_MAX_ABANDON_RATE = 0.03
MAX_ABANDON_RATE = LEGAL_MAX_ABANDON_RATE
ABANDON_PERIOD = timedelta(days=30)
MAX_FAILURE_RATE = 0.5
FAILURE_WINDOW = timedelta(minutes=10)
MIN_FAILURE_SAMPLE = 10

for _reason in ("abandonment", "provider_failures"):
    metrics.RUNS_AUTO_PAUSED.labels(_reason)


@dataclass(frozen=True)
class Limits:
    """A run's compliance limits (the defaults: a run created without choosing any)."""

    max_abandon_rate: float = MAX_ABANDON_RATE
    max_failure_rate: float = MAX_FAILURE_RATE
    failure_window: timedelta = FAILURE_WINDOW
    min_failure_sample: int = MIN_FAILURE_SAMPLE


def limits(session: Session, run_id: int) -> Limits:
    """The run's limits (the defaults if the run is gone)."""
    row = session.execute(
        select(Run.max_abandon_rate, Run.max_failure_rate, Run.failure_window_s,
               Run.min_failure_sample).where(Run.id == run_id)
    ).one_or_none()  # fmt: skip
    if row is None:
        return Limits()
    # Never looser than the law, whatever a row says (the API and a constraint refuse it too).
    abandon = min(float(row[0]), LEGAL_MAX_ABANDON_RATE)
    return Limits(abandon, float(row[1]), timedelta(seconds=int(row[2])), int(row[3]))


def _percent(rate: float) -> str:
    return f"{rate * 100:g}%"


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


def provider_failures(
    session: Session, run_id: int, now: datetime, window: timedelta = FAILURE_WINDOW
) -> tuple[int, int]:
    """(failed, ended) calls of the run that ended within the failure window."""
    failed, ended = session.execute(
        select(func.sum(case((Call.status == "failed", 1), else_=0)), func.count())
        .where(Call.run_id == run_id, Call.ended_at >= now - window)
    ).one()  # fmt: skip
    return int(failed or 0), int(ended)


def pause_reason(session: Session, run_id: int, now: datetime) -> tuple[str, str] | None:
    """Why the run must pause now under its own limits, as (reason code, text for a person),
    or None."""
    limit = limits(session, run_id)
    abandoned, judged = abandonment(session, run_id, now)
    if abandoned and (abandoned + 1) / (judged + 1) > limit.max_abandon_rate:
        return "abandonment", (
            f"{abandoned} of {judged} calls answered by a person in the last 30 days were "
            f"abandoned (no agent within {ABANDON_AFTER.seconds} s); one more would pass "
            f"{_percent(limit.max_abandon_rate)}"
        )
    failed, ended = provider_failures(session, run_id, now, limit.failure_window)
    if ended >= limit.min_failure_sample and failed / ended > limit.max_failure_rate:
        window_s = int(limit.failure_window.total_seconds())
        count, unit = (window_s // 60, "minute") if window_s % 60 == 0 else (window_s, "second")
        window = f"{count} {unit}{'' if count == 1 else 's'}"
        return "provider_failures", (
            f"{failed} of the {ended} calls that ended in the last {window} failed at "
            f"the provider (carrier errors, invalid numbers): above "
            f"{_percent(limit.max_failure_rate)}"
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
