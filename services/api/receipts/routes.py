"""Receipts synced from Gmail: start a sync, list them with filters, one receipt, its files."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from libs.common.contracts import RECEIPTS_SYNC
from libs.common.models import BackgroundJob, GmailConnection, Receipt, ReceiptAttachment
from libs.common.outbox import enqueue_after_commit
from libs.common.queue_health import QueueUnavailable, check_broker
from libs.common.settings import Settings
from libs.common.web.db import get_database, get_session
from libs.common.web.errors import ApiError
from libs.common.web.validation import (
    bad_request,
    optional_json_object,
    pagination,
    query_int,
    row_id,
)
from services.api.auth import current_business_id
from services.api.receipts.files import attachment_response

blueprint = Blueprint("receipts", __name__)

#: Numeric(14, 2): anything at or past this cannot be a stored amount.
MAX_AMOUNT = Decimal("1e12")


@blueprint.post("/receipts/sync")
def sync() -> tuple[Response, int]:
    """Queue a sync of one inbox: 202 with the job; 409 while one runs or when it needs reauth."""
    settings: Settings = current_app.config["SETTINGS"]
    body = optional_json_object()
    if unknown := set(body) - {"connection_id"}:
        raise bad_request(f"unknown fields: {', '.join(sorted(unknown))}")
    connection_id = body.get("connection_id")
    if connection_id is not None:
        row_id(connection_id, "connection_id")
    business_id = current_business_id()
    check_broker(settings.queue_broker_url, settings.broker_check_timeout_s)
    session = get_session()
    connection = _lock_connection(session, business_id, connection_id)
    running = session.get(BackgroundJob, connection.sync_job_id) if connection.sync_job_id else None
    if running is not None and not running.status.is_final:
        message = f"a sync of this inbox is already running: follow /api/jobs/{running.id}"
        error = {"code": "sync_running", "message": message}
        return jsonify({"error": error, "job": running.to_dict()}), 409
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
    return jsonify({"job": job.to_dict()}), 202


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


def _query_date(name: str) -> date | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise bad_request(f"query parameter {name} must be a date, YYYY-MM-DD") from None


def _query_amount(name: str) -> Decimal | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or abs(value) >= MAX_AMOUNT:
        raise bad_request(f"query parameter {name} must be a decimal amount, e.g. 12.50")
    return value


@blueprint.get("/receipts")
def list_receipts() -> Response:
    """Newest first; filters combine (AND)."""
    page, per_page = pagination()
    query = select(Receipt).where(Receipt.business_id == current_business_id())
    start, end = _query_date("from"), _query_date("to")
    if start and end and start > end:
        raise bad_request("query parameter from must not be after to")
    if start:
        query = query.where(Receipt.receipt_date >= start)
    if end:
        query = query.where(Receipt.receipt_date <= end)
    low, high = _query_amount("min_amount"), _query_amount("max_amount")
    if low is not None and high is not None and low > high:
        raise bad_request("query parameter min_amount must not be above max_amount")
    if low is not None:
        query = query.where(Receipt.total_amount >= low)
    if high is not None:
        query = query.where(Receipt.total_amount <= high)
    if vendor := (request.args.get("vendor") or "").strip():
        if len(vendor) > 200:
            raise bad_request("query parameter vendor must be at most 200 characters")
        # autoescape: a % or _ the user typed is matched literally.
        query = query.where(Receipt.vendor.icontains(vendor, autoescape=True))
    if currency := request.args.get("currency"):
        if not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise bad_request("query parameter currency must be a 3-letter code, e.g. USD")
        query = query.where(Receipt.currency == currency.upper())
    if (connection_id := query_int("connection_id", None, 1, 2**62)) is not None:
        query = query.where(Receipt.connection_id == connection_id)
    session = get_session()
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(
        session.scalars(
            query.order_by(Receipt.received_at.desc(), Receipt.id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
    )
    files = _attachments_of(session, [r.id for r in rows])
    items = [r.to_dict(files.get(r.id, [])) for r in rows]
    return jsonify({"items": items, "page": page, "per_page": per_page, "total": total})


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


def _receipt_or_404(receipt_id: int) -> Receipt:
    receipt = get_session().scalar(
        select(Receipt).where(
            Receipt.id == receipt_id, Receipt.business_id == current_business_id()
        )
    )
    if receipt is None:
        raise ApiError(404, "not_found", f"no receipt {receipt_id}")
    return receipt


@blueprint.get("/receipts/<int:receipt_id>")
def get_receipt(receipt_id: int) -> Response:
    receipt = _receipt_or_404(receipt_id)
    files = _attachments_of(get_session(), [receipt.id])
    return jsonify(receipt.to_dict(files.get(receipt.id, [])))


@blueprint.get("/receipts/<int:receipt_id>/attachments/<int:attachment_id>")
def download_attachment(receipt_id: int, attachment_id: int) -> Response:
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
