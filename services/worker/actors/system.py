"""system.ping: marks a BackgroundJob done, proving api → broker → worker → database works."""

from __future__ import annotations

import logging
import os
import socket

from libs.common import metrics
from libs.common.contracts import SYSTEM_PING
from libs.common.models import BackgroundJob, JobStatus, utcnow
from libs.common.request_context import get_request_id
from libs.queueops.middleware.worker_context import worker_context
from services.worker.registry import MissingRow, implements

logger = logging.getLogger(__name__)


@implements(SYSTEM_PING)
def ping(background_job_id: int) -> None:
    with worker_context().database.session() as session:
        job = session.get(BackgroundJob, background_job_id, with_for_update=True)
        if job is None:
            raise MissingRow(f"background job {background_job_id} does not exist")
        if job.status.is_final:
            return  # a redelivered message: the work is already done
        now = utcnow()
        job.status = JobStatus.SUCCEEDED
        job.started_at = job.started_at or now
        job.finished_at = now
        job.progress_done, job.progress_total = 1, 1
        job.result = {
            "pong": True,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "request_id": get_request_id(),
        }
        session.commit()
    metrics.BACKGROUND_JOBS_FINISHED.labels("system.ping", "succeeded").inc()
    logger.info("ping: background job %s succeeded", background_job_id)
