"""receipts.sync: one Gmail connection's receipts (services/worker/receipts/sync.py)."""

from __future__ import annotations

from dramatiq.middleware import CurrentMessage

from libs.common.contracts import RECEIPTS_SYNC
from libs.queueops.middleware.worker_context import worker_context
from services.worker.receipts import sync as receipts_sync
from services.worker.registry import MissingRow, implements


@implements(RECEIPTS_SYNC)
def sync(connection_id: int, background_job_id: int) -> None:
    ctx = worker_context()
    try:
        receipts_sync.run(ctx, connection_id, background_job_id)
    except (MissingRow, receipts_sync.SyncBusy):
        raise
    except Exception as exc:
        # Retried with backoff (the next attempt resumes: stored receipts are skipped); after
        # the last one the job is failed with the reason so the owner can start a new sync.
        if _is_last_attempt():
            why = f"gave up after {RECEIPTS_SYNC.max_retries + 1} attempts: {type(exc).__name__}"
            receipts_sync.mark_failed(ctx, background_job_id, f"{why}: {str(exc)[:300]}")
        raise


def _is_last_attempt() -> bool:
    message = CurrentMessage.get_current_message()
    retries = message.options.get("retries", 0) if message is not None else 0
    return int(retries) >= RECEIPTS_SYNC.max_retries
