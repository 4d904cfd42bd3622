"""Platform endpoints: the ping through every part, and the health of every component."""

from __future__ import annotations

from flask import Blueprint, current_app
from sqlalchemy import delete

from libs.common.contracts import SYSTEM_PING
from libs.common.models import BackgroundJob
from libs.common.settings import Settings
from libs.queueops import status
from libs.queueops.outbox import enqueue_after_commit
from libs.queueops.queue_health import QueueUnavailable, check_broker
from libs.web.db import get_database, get_session
from services.api.auth import current_principal
from services.api.schemas import Job, JobAccepted, Status
from services.api.spec import answers, api

blueprint = Blueprint("system", __name__)


@blueprint.post("/system/ping")
@api.validate(resp=answers({202: JobAccepted}, 503, auth="any"))
def ping() -> tuple[JobAccepted, int]:
    """Create a BackgroundJob that a worker marks done: 202 with the job to poll."""
    settings: Settings = current_app.config["SETTINGS"]
    # Checked before writing, so a dead broker leaves no job behind.
    check_broker(settings.queue_broker_url, settings.broker_check_timeout_s)
    session = get_session()
    job = BackgroundJob(business_id=current_principal().business_id, kind="system.ping")
    session.add(job)
    session.flush()
    enqueue_after_commit(session, SYSTEM_PING.message(background_job_id=job.id))
    try:
        session.commit()
    except QueueUnavailable:
        # The broker died between the check and the send: the job must not wait forever.
        with get_database().session() as cleanup:
            cleanup.execute(delete(BackgroundJob).where(BackgroundJob.id == job.id))
            cleanup.commit()
        raise
    return JobAccepted(job=Job.of(job)), 202


@blueprint.get("/queue/status")
@api.validate(resp=answers({200: Status}, auth="operator"))
def queue_status() -> Status:
    settings: Settings = current_app.config["SETTINGS"]
    return Status.model_validate(status.collect(settings, get_database()))
