"""Contracts of call outcomes: settle one ended call's disposition and recycling; the sweep."""

from libs.common.contracts.base import ActorContract

OUTCOMES_APPLY = ActorContract(
    name="outcomes.apply",
    queue="default",
    params=("call_id",),
    max_retries=5,
    description="An ended call: set its disposition by rule if nobody did, and recycle its lead "
    "as the disposition says (once per disposition).",
)

OUTCOMES_SWEEP = ActorContract(
    name="outcomes.sweep",
    queue="maintenance",
    params=("period_start",),
    # The next period does whatever this one did not.
    max_retries=0,
    time_limit_ms=120_000,
    max_age_ms=600_000,
    description="Apply the outcome of ended calls whose outcomes.apply message was lost; "
    "send recordings.fetch again for recordings not stored in time.",
)

RECORDINGS_FETCH = ActorContract(
    name="recordings.fetch",
    queue="recordings",
    params=("call_id",),
    max_retries=8,
    min_backoff_ms=5_000,
    time_limit_ms=300_000,
    description="Download an outbound call's recording from the provider, store it with its "
    "SHA-256 beside the inbound ones, and transcribe it.",
)

RECORDINGS_EXPIRE = ActorContract(
    name="recordings.expire",
    queue="maintenance",
    params=("period_start",),
    max_retries=0,
    time_limit_ms=300_000,
    max_age_ms=3_600_000,
    description="Delete recordings older than their business's retention period.",
)

OUTCOMES_PRICE = ActorContract(
    name="outcomes.price",
    queue="low",
    params=(),
    max_retries=3,
    description="Read the price of every answered call whose price is not known from the "
    "provider, in one request (it comes some time after the call); one message waits at a time "
    "(coalesced), and asks again later while calls that ended recently have none.",
)

AMD_ACT = ActorContract(
    name="amd.act",
    queue="high",
    params=("call_id",),
    max_retries=3,
    min_backoff_ms=500,
    max_backoff_ms=5_000,
    # A voicemail left a minute late is left on the next caller's time: drop it instead.
    max_age_ms=60_000,
    description="A machine answered a run's call: hang up, or leave the voicemail after the "
    "beep, as the run's machine policy says (once per call).",
)
