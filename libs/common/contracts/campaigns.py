"""Contracts of the dialer and of lead imports."""

from libs.common.contracts.base import ActorContract

DIALER_DISPATCH = ActorContract(
    name="dialer.dispatch",
    queue="high",
    params=("business_id",),
    # Dispatching is idempotent and the reconciler re-dispatches anyway: retry soon, not long.
    max_retries=5,
    min_backoff_ms=1_000,
    max_backoff_ms=30_000,
    time_limit_ms=120_000,
    description="Claim due jobs of a business up to its concurrency limit and place their calls.",
)

LEADS_IMPORT_CSV = ActorContract(
    name="leads.import_csv",
    queue="low",
    params=("background_job_id",),
    max_retries=3,
    time_limit_ms=30 * 60_000,
    description="Import the CSV upload attached to a BackgroundJob, reporting progress.",
)

CALLS_STATUS_CHANGED = ActorContract(
    name="calls.status_changed",
    queue="high",
    # status: the callback's (what it is counted as if no call is known by it).
    # job_id/attempt: from the callback URL (None when it named none), so a callback for a
    # call whose id the worker never stored can still be attached to its attempt.
    params=("sid", "status", "job_id", "attempt"),
    # Applying is idempotent (the stored callbacks are applied once, under the call's lock),
    # and the reconciler re-sends it for callbacks left unapplied: retry soon, not long.
    max_retries=5,
    min_backoff_ms=500,
    max_backoff_ms=30_000,
    time_limit_ms=120_000,
    description="Apply a call's stored status callbacks; fill the slots a call's end freed.",
)
