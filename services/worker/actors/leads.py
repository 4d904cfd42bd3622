"""leads.import_csv: import an uploaded CSV in chunks, with progress the SPA can follow."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from libs.campaigns.leads import (
    InvalidCsv,
    InvalidLead,
    LeadInput,
    csv_rows,
    decode_csv,
    merge_duplicates,
    parse_lead,
    upsert_leads,
)
from libs.common import metrics
from libs.common.contracts import LEADS_IMPORT_CSV
from libs.common.models import BackgroundJob, JobStatus, Upload, utcnow
from libs.queueops.middleware.worker_context import worker_context
from services.worker.registry import MissingRow, implements

logger = logging.getLogger(__name__)

CHUNK = 500
#: Row errors and duplicates itemized in the job's result (the counts are always complete).
MAX_REPORTED_ERRORS = 100


@implements(LEADS_IMPORT_CSV)
def import_csv(background_job_id: int) -> None:
    db = worker_context().database
    with db.session() as session:
        job = session.get(BackgroundJob, background_job_id)
        if job is None:
            raise MissingRow(f"background job {background_job_id} does not exist")
        if job.status.is_final:
            return
        upload = session.scalar(select(Upload).where(Upload.background_job_id == job.id))
        if upload is None or upload.content is None or job.business_id is None:
            _finish(session, job, error=("missing_upload", "the uploaded file is gone"))
            return
        business_id, content = job.business_id, upload.content
        try:
            rows = list(csv_rows(decode_csv(content)))
        except InvalidCsv as exc:
            _finish(session, job, error=("invalid_csv", str(exc)))
            return
        job.status, job.started_at = JobStatus.RUNNING, job.started_at or utcnow()
        job.progress_total, job.progress_done = len(rows), 0
        session.commit()
    parsed: list[tuple[int, LeadInput]] = []
    errors: list[dict[str, Any]] = []
    error_count = 0
    for line, row in rows:
        try:
            parsed.append((line, parse_lead(row)))
        except InvalidLead as exc:
            error_count += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append({"line": line, "error": str(exc)})
    # Merged over the whole file before any upsert, so a number repeated across chunks is one
    # created lead and one reported duplicate, never a silent "updated".
    inputs, duplicates = merge_duplicates(parsed)
    skipped = len(rows) - len(inputs)  # invalid and duplicate rows
    created = updated = 0
    # Chunks commit separately so progress shows; upserts make a redelivered import harmless.
    for start in range(0, len(inputs), CHUNK):
        chunk = inputs[start : start + CHUNK]
        with db.session() as session:
            c, u = upsert_leads(session, business_id, chunk, "csv", worker_context().broker)
            created, updated = created + c, updated + u
            job = session.get(BackgroundJob, background_job_id)
            assert job is not None
            job.progress_done = skipped + start + len(chunk)
            session.commit()
    with db.session() as session:
        job = session.get(BackgroundJob, background_job_id)
        assert job is not None
        job.progress_done = len(rows)
        # rows = created + updated + invalid + duplicates.
        job.result = {
            "rows": len(rows),
            "created": created,
            "updated": updated,
            "invalid": error_count,
            "errors": errors,
            "duplicates": len(duplicates),
            "duplicate_rows": duplicates[:MAX_REPORTED_ERRORS],
        }
        _finish(session, job)


def _finish(session: Any, job: BackgroundJob, error: tuple[str, str] | None = None) -> None:
    job.status = JobStatus.FAILED if error else JobStatus.SUCCEEDED
    if error:
        job.error_code, job.error_message = error
    job.finished_at = utcnow()
    upload = session.scalar(select(Upload).where(Upload.background_job_id == job.id))
    if upload is not None:
        upload.content = None  # the rows now live in leads
    session.commit()
    metrics.BACKGROUND_JOBS_FINISHED.labels(job.kind, job.status.value).inc()
