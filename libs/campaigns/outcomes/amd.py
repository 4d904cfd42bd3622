"""Answering-machine detection per run, and the run's policy for a machine.

Detection is asynchronous (``AsyncAmd``): the call is connected at once (a person never waits
in silence for the verdict) and the verdict comes to ``/webhook/twilio/amd``. For a machine
the run says what happens:

- ``hang_up``: the worker ends the call (``amd.act``);
- ``voicemail``: once the greeting's beep is heard (``DetectMessageEnd`` only: its verdicts
  ``machine_end_beep``/``_silence``/``_other`` come after the greeting), the worker redirects
  the call to TwiML that plays the run's audio file or says its text, then hangs up;
- ``agent``: nothing; the voice agent goes on talking (to the machine).

A fax is always hung up on. Afterwards, ``machine_retry`` requeues the lead when the run asks
to call machines again, within ``max_attempts`` unless machines do not count as attempts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from twilio.twiml.voice_response import VoiceResponse

from libs.campaigns.lifecycle import recycle
from libs.common.call_status import ACTIVE_JOB_STATUSES, MACHINE_ANSWERS
from libs.common.models import Call, CallJob, Run, RunStatus

AMD_MODES = ("off", "Enable", "DetectMessageEnd")
MACHINE_ACTIONS = ("hang_up", "voicemail", "agent")
MACHINE = MACHINE_ANSWERS
#: Verdicts that come once the greeting has ended: the voicemail can start now.
AFTER_GREETING = ("machine_end_beep", "machine_end_silence", "machine_end_other")
ANSWERED_BY = (*MACHINE, "human", "fax", "unknown")


def callback_url(public_base_url: str) -> str:
    return f"{public_base_url}/webhook/twilio/amd"


def create_options(amd_mode: str, public_base_url: str) -> dict[str, Any]:
    """The ``calls.create`` arguments of the run's detection (none when off)."""
    if amd_mode == "off":
        return {}
    return {
        "machine_detection": amd_mode,
        "async_amd": "true",
        "async_amd_status_callback": callback_url(public_base_url),
        "async_amd_status_callback_method": "POST",
    }


def action_for(run_action: str, answered_by: str) -> str | None:
    """What to do now for this verdict: hang_up, voicemail, agent, or None (a person, or a
    machine still greeting when the run leaves a voicemail: DetectMessageEnd's end verdict
    comes later, in the same single callback, so None here means nothing to do)."""
    if answered_by == "fax":
        return "hang_up"
    if answered_by not in MACHINE:
        return None
    if run_action == "voicemail":
        return "voicemail" if answered_by in AFTER_GREETING else "hang_up"
    return run_action


def voicemail_path(run_id: int, token: str) -> str:
    """Where the calls service serves a run's uploaded voicemail (Twilio fetches it)."""
    return f"/webhook/media/voicemail/{run_id}/{token}"


def voicemail_twiml(run: Run, public_base_url: str) -> str:
    """Play the uploaded audio, else the audio URL, else say the text; then hang up."""
    response = VoiceResponse()
    if run.voicemail_audio_token:
        response.play(public_base_url + voicemail_path(run.id, run.voicemail_audio_token))
    elif run.voicemail_audio_url:
        response.play(run.voicemail_audio_url)
    else:
        response.say(run.voicemail_text or "")
    response.hangup()
    return str(response)


def machine_retry(session: Session, call: Call, job: CallJob, run: Run, now: datetime) -> str:
    """Requeue a machine's lead as the run says; the result (retry, exhausted, none)."""
    if run.machine_retry_delay_s is None or call.answered_by not in MACHINE:
        return "none"
    if job.attempt != call.attempt or job.status in ACTIVE_JOB_STATUSES:
        return "none"
    if run.status not in (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.COMPLETED):
        return "none"
    budget = run.max_attempts
    if not run.machine_counts_as_attempt:
        budget += (
            session.scalar(
                select(func.count())
                .select_from(Call)
                .where(Call.job_id == job.id, Call.answered_by.in_(MACHINE))
            )
            or 0
        )
    if job.attempt >= budget:
        return "exhausted"
    at = (call.ended_at or now) + timedelta(seconds=run.machine_retry_delay_s)
    if not recycle.requeue(session, job, at):
        return "none"
    if run.status == RunStatus.COMPLETED:
        run.status, run.finished_at = RunStatus.RUNNING, None
    return "retry"
