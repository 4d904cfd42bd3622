"""Storing what a sync found: one receipt per (business, Gmail message), inserted with ON
CONFLICT DO NOTHING so a resync, a redelivered message or two racing syncs add nothing, and
one receipt.synced event when it is new."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import dramatiq
from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.common.db import insert_ignoring_conflicts
from libs.common.models import Receipt, ReceiptAttachment
from libs.events import catalogue
from libs.events.emit import emit
from services.worker.receipts.extract import AttachmentRef, Extracted

CHUNK = 500


def already_stored(session: Session, business_id: int, message_ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(message_ids), CHUNK):
        chunk = message_ids[start : start + CHUNK]
        found.update(
            session.scalars(
                select(Receipt.gmail_message_id).where(
                    Receipt.business_id == business_id, Receipt.gmail_message_id.in_(chunk)
                )
            )
        )
    return found


def _field(field: Any) -> dict[str, Any] | None:
    if field is None:
        return None
    return {"source": field.source, "confidence": round(float(field.confidence), 2)}


def store_receipt(
    session: Session,
    business_id: int,
    connection_id: int,
    message: dict[str, Any],
    extracted: Extracted,
    files: Iterable[tuple[AttachmentRef, bytes]],
    broker: dramatiq.Broker | None = None,
) -> bool:
    """True if this call created the receipt (the caller commits, and ``broker`` carries the
    event's deliveries)."""
    receipt_id = insert_ignoring_conflicts(
        session,
        Receipt.__table__,
        {
            "business_id": business_id,
            "connection_id": connection_id,
            "gmail_message_id": str(message["id"]),
            "gmail_thread_id": str(message.get("threadId", "")),
            "subject": extracted.subject[:500],
            "sender": extracted.sender[:500],
            "received_at": extracted.received_at,
            "vendor": extracted.vendor.value[:200] if extracted.vendor else None,
            "receipt_date": extracted.date.value if extracted.date else None,
            "total_amount": extracted.total.value if extracted.total else None,
            "currency": extracted.currency.value if extracted.currency else None,
            "extraction": {
                "vendor": _field(extracted.vendor),
                "date": _field(extracted.date),
                "total": _field(extracted.total),
                "currency": _field(extracted.currency),
                "reason": extracted.reason,
            },
        },
    )
    if receipt_id is None:
        return False
    attachments = []
    for ref, content in files:
        attachments.append(
            ReceiptAttachment(
                receipt_id=receipt_id,
                gmail_part_id=ref.part_id[:32],
                filename=ref.filename[:255] or "attachment",
                mime_type=ref.mime_type[:100],
                size=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
                content=content,
            )
        )
    session.add_all(attachments)
    session.flush()
    receipt = session.get_one(Receipt, receipt_id)
    data = catalogue.receipt_data(receipt, attachments)
    emit(session, business_id, "receipt.synced", data, broker)
    return True
