"""Receipts synced from Gmail: start a sync, list them with filters, one receipt, its files."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from libs.common.contracts import RECEIPTS_SYNC
from libs.common.models import BackgroundJob, GmailConnection, ReceiptAttachment
from libs.common.models import Receipt as ReceiptRow
from libs.common.settings import Settings
from libs.queueops.outbox import enqueue_after_commit
from libs.queueops.queue_health import QueueUnavailable, check_broker
from libs.web.db import get_database, get_session
from libs.web.errors import ApiError
from libs.web.validation import bad_request
from services.api.auth import current_business_id
from services.api.receipts.files import attachment_response
from services.api.receipts.schemas import (
    Receipt,
    ReceiptFilter,
    ReceiptPage,
    SyncConflict,
    SyncInput,
    SyncRunning,
    SyncRunningError,
)
from services.api.receipts.schemas import ReceiptAttachment as Attachment
from services.api.schemas import Job, JobAccepted
from services.api.spec import answers, api

blueprint = Blueprint("receipts", __name__)

_SYNC_CONFLICT = (
    "sync_running (the body names the job: SyncRunning), or needs_reauth (connect the inbox again)"
)


@blueprint.post("/receipts/sync")
@api.validate(
    resp=answers(
        {202: (JobAccepted, "queued; follow the job"), 409: (SyncConflict, _SYNC_CONFLICT)},
        (404, "no_connection (none connected) or not_found (connection_id)"),
        503,
    )
)
def sync(json: SyncInput) -> tuple[JobAccepted, int] | Response:
    """Sync an inbox's receipts in the background; follow the returned job.

    202 with the job; 409 while a sync of the inbox runs or when it needs reauthorization."""
    settings: Settings = current_app.config["SETTINGS"]
    connection_id = json.connection_id
    business_id = current_business_id()
    check_broker(settings.queue_broker_url, settings.broker_check_timeout_s)
    session = get_session()
    connection = _lock_connection(session, business_id, connection_id)
    running = session.get(BackgroundJob, connection.sync_job_id) if connection.sync_job_id else None
    if running is not None and not running.status.is_final:
        message = f"a sync of this inbox is already running: follow /api/jobs/{running.id}"
        error = SyncRunningError(code="sync_running", message=message)
        body = SyncRunning(error=error, job=Job.of(running))
        return Response(body.model_dump_json(), 409, mimetype="application/json")
    if connection.status == "needs_reauth":
        raise ApiError(
            409,
            "needs_reauth",
            f"Google no longer accepts the authorization of {connection.email}: reconnect it "
            "(GET /api/gmail/connect), then sync again",
        )
    job = BackgroundJob(business_id=business_id, kind="receipts.sync")
    session.add(job)
    session.flush()
    connection.sync_job_id = job.id
    message_out = RECEIPTS_SYNC.message(connection_id=connection.id, background_job_id=job.id)
    enqueue_after_commit(session, message_out)
    try:
        session.commit()
    except QueueUnavailable:
        # The broker died between the check and the send: a job nobody will run must not
        # block the next sync for an hour (until the reconciler fails it as stalled).
        with get_database().session() as cleanup:
            cleanup.execute(
                update(GmailConnection)
                .where(GmailConnection.id == connection.id, GmailConnection.sync_job_id == job.id)
                .values(sync_job_id=None)
            )
            cleanup.execute(delete(BackgroundJob).where(BackgroundJob.id == job.id))
            cleanup.commit()
        raise
    return JobAccepted(job=Job.of(job)), 202


def _lock_connection(
    session: Session, business_id: int, connection_id: int | None
) -> GmailConnection:
    """The named connection (default: the business's only one), locked until the commit, so
    two sync requests for one inbox cannot both see it idle."""
    if connection_id is None:
        ids = list(
            session.scalars(
                select(GmailConnection.id)
                .where(GmailConnection.business_id == business_id)
                .order_by(GmailConnection.id)
            )
        )
        if not ids:
            message = "no Gmail inbox is connected; connect one first (GET /api/gmail/connect)"
            raise ApiError(404, "no_connection", message)
        if len(ids) > 1:
            raise bad_request(
                f"this business has {len(ids)} Gmail connections; name one with connection_id "
                f"({', '.join(map(str, ids[:20]))})"
            )
        connection_id = ids[0]
    connection = session.scalar(
        select(GmailConnection)
        .where(GmailConnection.id == connection_id, GmailConnection.business_id == business_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if connection is None:
        raise ApiError(404, "not_found", f"no Gmail connection {connection_id}")
    return connection


@blueprint.get("/receipts")
@api.validate(resp=answers({200: ReceiptPage}))
def list_receipts(query: ReceiptFilter) -> ReceiptPage:
    """List receipts, newest first; filters combine (AND)."""
    rows = select(ReceiptRow).where(ReceiptRow.business_id == current_business_id())
    if query.from_:
        rows = rows.where(ReceiptRow.receipt_date >= query.from_)
    if query.to:
        rows = rows.where(ReceiptRow.receipt_date <= query.to)
    if query.min_amount is not None:
        rows = rows.where(ReceiptRow.total_amount >= query.min_amount)
    if query.max_amount is not None:
        rows = rows.where(ReceiptRow.total_amount <= query.max_amount)
    if vendor := (query.vendor or "").strip():
        # autoescape: a % or _ the user typed is matched literally.
        rows = rows.where(ReceiptRow.vendor.icontains(vendor, autoescape=True))
    if query.currency:
        rows = rows.where(ReceiptRow.currency == query.currency.upper())
    if query.connection_id is not None:
        rows = rows.where(ReceiptRow.connection_id == query.connection_id)
    session = get_session()
    total = session.scalar(select(func.count()).select_from(rows.subquery())) or 0
    found = list(
        session.scalars(
            rows.order_by(ReceiptRow.received_at.desc(), ReceiptRow.id.desc())
            .offset(query.offset)
            .limit(query.per_page)
        )
    )
    files = _attachments_of(session, [r.id for r in found])
    items = [_shown(r, files.get(r.id, [])) for r in found]
    return ReceiptPage(items=items, page=query.page, per_page=query.per_page, total=total)


def _shown(receipt: ReceiptRow, files: list[ReceiptAttachment]) -> Receipt:
    attachments = [Attachment.model_validate(f) for f in files]
    return Receipt.model_validate(receipt).model_copy(update={"attachments": attachments})


def _attachments_of(session: Session, receipt_ids: list[int]) -> dict[int, list[ReceiptAttachment]]:
    """Metadata only (the content column is deferred), in one query for a whole page."""
    found: dict[int, list[ReceiptAttachment]] = {}
    if receipt_ids:
        rows = session.scalars(
            select(ReceiptAttachment)
            .where(ReceiptAttachment.receipt_id.in_(receipt_ids))
            .order_by(ReceiptAttachment.id)
        )
        for attachment in rows:
            found.setdefault(attachment.receipt_id, []).append(attachment)
    return found


def _receipt_or_404(receipt_id: int) -> ReceiptRow:
    receipt = get_session().scalar(
        select(ReceiptRow).where(
            ReceiptRow.id == receipt_id, ReceiptRow.business_id == current_business_id()
        )
    )
    if receipt is None:
        raise ApiError(404, "not_found", f"no receipt {receipt_id}")
    return receipt


@blueprint.get("/receipts/<int:receipt_id>")
@api.validate(resp=answers({200: Receipt}, 404))
def get_receipt(receipt_id: int) -> Receipt:
    """One receipt with its attachments' metadata."""
    receipt = _receipt_or_404(receipt_id)
    return _shown(receipt, _attachments_of(get_session(), [receipt.id]).get(receipt.id, []))


_FILE = "the file, with its stored type (Content-Disposition: attachment; ETag: its SHA-256)"


@blueprint.get("/receipts/<int:receipt_id>/attachments/<int:attachment_id>")
@api.validate(resp=answers({200: _FILE, 304: "If-None-Match matched the ETag"}, 404))
def download_attachment(receipt_id: int, attachment_id: int) -> Response:
    """Download an attachment."""
    receipt = _receipt_or_404(receipt_id)
    session = get_session()
    attachment = session.scalar(
        select(ReceiptAttachment).where(
            ReceiptAttachment.id == attachment_id, ReceiptAttachment.receipt_id == receipt.id
        )
    )
    if attachment is None:
        raise ApiError(404, "not_found", f"no attachment {attachment_id} on receipt {receipt_id}")
    if request.if_none_match.contains(attachment.sha256):
        # The browser has these bytes: answer without reading them from the database.
        not_modified = Response(status=304)
        not_modified.set_etag(attachment.sha256)
        return not_modified
    content = session.scalar(
        select(ReceiptAttachment.content).where(ReceiptAttachment.id == attachment.id)
    )
    return attachment_response(
        content or b"", attachment.filename, attachment.mime_type, attachment.sha256
    )
