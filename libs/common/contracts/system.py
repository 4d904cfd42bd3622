"""Contracts of the platform's own actors."""

from libs.common.contracts.base import ActorContract

SYSTEM_PING = ActorContract(
    name="system.ping",
    queue="default",
    params=("background_job_id",),
    max_retries=3,
    min_backoff_ms=1_000,
    time_limit_ms=30_000,
    description="Mark a BackgroundJob done: the smallest path through api, broker and worker.",
)

MAINTENANCE_RECONCILE = ActorContract(
    name="maintenance.reconcile",
    queue="maintenance",
    params=("period_start",),
    # The next tick repairs whatever this one did not; retrying an old tick adds nothing.
    max_retries=0,
    time_limit_ms=300_000,
    max_age_ms=600_000,
    description="Periodic repair of what crashes leave behind (stalled jobs, lost dispatches).",
)
