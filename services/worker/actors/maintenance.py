"""maintenance.reconcile: the periodic repair pass. Later issues add their repairs here."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import update

from libs.common import metrics
from libs.common.contracts import MAINTENANCE_RECONCILE
from libs.common.middleware.database import worker_database
from libs.common.models import BackgroundJob, JobStatus, utcnow
from libs.common.settings import get_settings
from services.worker.registry import implements

logger = logging.getLogger(__name__)


@implements(MAINTENANCE_RECONCILE)
def reconcile(period_start: int) -> None:
    """Every repair is idempotent: running the same period twice changes nothing more."""
    failed = fail_stalled_background_jobs(get_settings().background_job_stall_s)
    if failed:
        logger.warning("reconcile %s: failed %d stalled background jobs", period_start, failed)


def fail_stalled_background_jobs(stall_s: float) -> int:
    """Jobs queued or running past ``stall_s`` lost their message or their worker: fail them
    visibly rather than leave a progress bar spinning forever."""
    cutoff = utcnow() - timedelta(seconds=stall_s)
    with worker_database().session() as session:
        result = session.execute(
            update(BackgroundJob)
            .where(
                BackgroundJob.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
                BackgroundJob.updated_at < cutoff,
            )
            .values(
                status=JobStatus.FAILED,
                error_code="stalled",
                error_message=f"no progress for {stall_s:g} s; the work was lost and stopped",
                finished_at=utcnow(),
            )
        )
        session.commit()
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if count:
        metrics.RECONCILER_REPAIRS.labels("stalled_background_job").inc(count)
    return count
