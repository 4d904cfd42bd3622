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
