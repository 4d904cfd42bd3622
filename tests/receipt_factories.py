"""Rows for receipt tests, written straight to the database (the sync itself is the worker's)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal

from libs.common.db import Database
from libs.common.models import Receipt, ReceiptAttachment

#: (gmail message id, vendor, receipt date, total, currency, received minute): newest last.
RECEIPTS = [
    ("m1", "Amazon.com", date(2026, 1, 5), Decimal("12.50"), "USD", 1),
    ("m2", "Uber Eats", date(2026, 2, 1), Decimal("30.00"), "USD", 2),
    ("m3", "AMAZON Web Services", date(2026, 3, 15), Decimal("120.99"), "EUR", 3),
    ("m4", "100% Pure_Shop", date(2026, 3, 20), Decimal("7.00"), "GBP", 4),
    ("m5", None, None, None, None, 5),
]


def make_receipts(db: Database, business_id: int, connection_id: int | None = None) -> list[int]:
    """The five RECEIPTS for a business; their ids in RECEIPTS order."""
    ids = []
    with db.session() as session:
        for message_id, vendor, day, amount, currency, minute in RECEIPTS:
            receipt = Receipt(
                business_id=business_id,
                connection_id=connection_id,
                gmail_message_id=message_id,
                subject=f"Your receipt {message_id}",
                sender="billing@example.com",
                received_at=datetime(2026, 3, 30, 12, minute, tzinfo=UTC),
                vendor=vendor,
                receipt_date=day,
                total_amount=amount,
                currency=currency,
                extraction={"vendor": {"source": "header:From", "confidence": 0.9}},
            )
            session.add(receipt)
            session.flush()
            ids.append(receipt.id)
        session.commit()
    return ids


def make_attachment(
    db: Database, receipt_id: int, filename: str, mime_type: str, content: bytes
) -> int:
    with db.session() as session:
        attachment = ReceiptAttachment(
            receipt_id=receipt_id,
            gmail_part_id=filename[:32],
            filename=filename,
            mime_type=mime_type,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            content=content,
        )
        session.add(attachment)
        session.commit()
        return attachment.id
