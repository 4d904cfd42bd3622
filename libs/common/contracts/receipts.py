"""Contract of the Gmail receipts sync."""

from libs.common.contracts.base import ActorContract

RECEIPTS_SYNC = ActorContract(
    name="receipts.sync",
    queue="receipts",
    params=("connection_id", "background_job_id"),
    max_retries=5,
    min_backoff_ms=10_000,
    # A first sync of a large inbox is paced by Gmail's quota: minutes, not seconds.
    time_limit_ms=3_600_000,
    description="Sync one Gmail connection's receipts (full, or incremental from its history).",
)
