"""Contracts of the follow-up work after an inbound call: its lead and its recording."""

from libs.common.contracts.base import ActorContract

LEADS_CREATE_FROM_CALL = ActorContract(
    name="leads.create_from_call",
    queue="default",
    params=("call_sid",),
    max_retries=5,
    min_backoff_ms=2_000,
    description="Create or update the caller's lead from the call log (one per caller number).",
)

RECORDINGS_PROCESS = ActorContract(
    name="recordings.process",
    queue="recordings",
    params=("call_sid",),
    max_retries=5,
    min_backoff_ms=2_000,
    time_limit_ms=300_000,
    description="Measure a call's WAV recording (duration, size, SHA-256) onto its call log.",
)
