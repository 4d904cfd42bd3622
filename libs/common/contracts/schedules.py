"""Contracts of daily schedules: the periodic tick, the manual due check, placing one call."""

from libs.common.contracts.base import ActorContract

SCHEDULES_TICK = ActorContract(
    name="schedules.tick",
    queue="default",
    params=("period_start",),
    # A later tick finds whatever this one did not: retrying an old tick adds nothing.
    max_retries=0,
    time_limit_ms=300_000,
    max_age_ms=3_600_000,
    description="Find the schedules due now, record each day's occurrence once, queue its call.",
)

SCHEDULES_CHECK_DUE = ActorContract(
    name="schedules.check_due",
    queue="default",
    params=("business_id",),
    max_retries=0,
    time_limit_ms=300_000,
    description="The tick's due check on demand, for one business (or all when null).",
)

SCHEDULES_PLACE_CALL = ActorContract(
    name="schedules.place_call",
    queue="high",
    params=("schedule_id", "local_date"),
    # Three attempts in all, a second then about four apart; then the occurrence is failed.
    max_retries=2,
    min_backoff_ms=1_000,
    max_backoff_ms=30_000,
    time_limit_ms=60_000,
    description="Put one schedule's call for one local date (YYYY-MM-DD) into the dialer, once.",
)
