"""Is a Gmail message a receipt, and what does it say: vendor, date, total and currency.

A receipt needs both receipt language (a receipt/invoice/order number, "Receipt from X",
"Thank you for your order", "Amount paid", ...) and an amount with a currency: mail that
merely says "receipt" ("I kept the receipt", "no receipt needed", "Read receipt") has neither
the phrasing nor, usually, a labelled total. Every field says where it came from and how sure
the extraction is, so callers can ask for review below a threshold.
"""

from __future__ import annotations

import datetime
import decimal
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar

from services.worker.receipts.amounts import (
    CONFIDENCE,
    LABELS,
    RANK_DUE,
    Money,
    best_total,
    filename_money,
    find_money,
)
from services.worker.receipts.dates import filename_date, stated_date
from services.worker.receipts.message import (
    AttachmentRef,
    Headers,
    attachments,
    body_text,
    body_with_source,
    headers,
)
from services.worker.receipts.vendor import vendor_of

__all__ = [
    "AttachmentRef",
    "Extracted",
    "Field",
    "attachments",
    "body_text",
    "extract",
    "headers",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Field(Generic[T]):
    value: T
    #: "header:From", "header:Subject", "header:Date", "body:text", "body:html",
    #: "attachment:name" or "internalDate".
    source: str
    confidence: float


@dataclass(frozen=True)
class Extracted:
    is_receipt: bool
    #: Why (or why not): short and loggable; never contains body text.
    reason: str
    vendor: Field[str] | None
    date: Field[datetime.date] | None
    total: Field[decimal.Decimal] | None
    currency: Field[str] | None
    subject: str
    sender: str
    received_at: datetime.datetime
    attachments: tuple[AttachmentRef, ...]


# A word of a name: "Amazon.com" keeps its dot, "prize. Receipt" ends a sentence.
_WORD = r"[\w&'-]+(?:\.[\w-]+)*"
# Phrasings that only transactional mail uses; each has a name for the reason string.
_LANGUAGE = {
    "document number": r"\b(?:receipt|invoice|order|confirmation|transaction|booking)"
    r"\s*(?:#|no\.|number\b|id\b)\s*:?\s*[\w-]*\d|\binvoice\s+[A-Z]{0,4}-?\d{3,}",
    "receipt from": r"(?:^|\byour\s+)(?:e-?)?(?:receipt|invoice|bill)\s+(?:from|for)\b",
    "your receipt": rf"\byour\s+(?:{_WORD}\s+){{0,3}}?(?:e-?receipt|receipt|invoice|bill)\b",
    "thanks for ordering": r"\bthank(?:s| you)\s+for\s+(?:your\s+)?(?:order|purchase|payment"
    r"|shopping|booking|riding|ride|trip|business)\b",
    "confirmation": r"\b(?:order|payment|purchase|booking)\s+(?:confirmation|confirmed"
    r"|received|successful|complete)"
    rf"|\byour\s+(?:{_WORD}\s+){{0,3}}?order\s*(?:#|no\.|number"
    r"|confirmation|has|is|was|of|from|with)",
    "payment label": r"\b(?:amount|total)\s+(?:paid|charged|due)\b|\bgrand\s+total\b"
    r"|\border\s+total\b|\bpaid\s+with\b|\bpayment\s+method\b|\b(?:invoice|receipt)\s+date\b",
}
#: Phrasings that advertising and chat use too: they need a labelled total to count.
WEAK_LANGUAGE = {"your receipt"}
LANGUAGE = {name: re.compile(p, re.I | re.M) for name, p in _LANGUAGE.items()}
# Google Calendar's subjects: an invite may well mention receipts and budgets.
_INVITE = re.compile(
    r"^(?:updated\s+)?invitation(?:\s+\(updated\))?:|^(?:accepted|declined|tentatively"
    r" accepted|cancell?ed(?:\s+event)?):",
    re.I,
)


def _received_at(message: dict[str, Any], head: Headers) -> datetime.datetime:
    raw = message.get("internalDate")
    try:
        return datetime.datetime.fromtimestamp(int(str(raw)) / 1000, datetime.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        pass  # not a number: fall back to what the sender claimed
    header_date = _header_date(head)
    if header_date is not None:
        return header_date.astimezone(datetime.UTC)
    return datetime.datetime.fromtimestamp(0, datetime.UTC)


def _header_date(head: Headers) -> datetime.datetime | None:
    try:
        value = parsedate_to_datetime(head.get("date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def extract(message: dict[str, Any]) -> Extracted:
    """Classify ``message`` (a ``users.messages.get(format="full")`` resource); never raises.
    Vendor, date, total and currency are filled in for receipts only."""
    try:
        return _extract(message if isinstance(message, dict) else {})
    except Exception as exc:
        # Mail is written by strangers: one message nothing above foresaw must not stop a sync.
        epoch = datetime.datetime.fromtimestamp(0, datetime.UTC)
        reason = f"unreadable message ({type(exc).__name__})"
        return Extracted(False, reason, None, None, None, None, "", "", epoch, ())


def _extract(message: dict[str, Any]) -> Extracted:
    head = headers(message)
    subject, sender = head.get("subject", ""), head.get("from", "")
    received_at = _received_at(message, head)
    files = attachments(message)

    def verdict(reason: str) -> Extracted:
        return Extracted(False, reason, None, None, None, None, subject, sender, received_at, files)

    if not isinstance(message.get("payload"), dict):
        return verdict("no payload (not fetched with format=full?)")
    if _INVITE.search(subject):
        return verdict("calendar invitation")
    text, body_source = body_with_source(message)
    language = [name for name, p in LANGUAGE.items() if p.search(f"{subject}\n{text}")]
    money, money_source = _total(text, body_source, subject, files)
    if not language:
        return verdict("no receipt language" + (" (has an amount)" if money else ""))
    if money is None:
        return verdict(f"receipt language ({language[0]}) but no amount with a currency")
    if set(language) <= WEAK_LANGUAGE and money.rank < RANK_DUE:
        # "Scan your receipt and get $5 back": weak phrasing counts only with a labelled total.
        return verdict(f"weak receipt language ({language[0]}) and no labelled total")

    label = "file name" if money_source == "attachment:name" else LABELS[money.rank]
    confidence = {"attachment:name": 0.3, "header:Subject": 0.6}.get(
        money_source, CONFIDENCE[money.rank]
    )
    names = [f.filename for f in files]
    return Extracted(
        is_receipt=True,
        reason=f"receipt language ({', '.join(language)}); {label} amount from {money_source}",
        vendor=Field(*vendor) if (vendor := vendor_of(sender, subject)) else None,
        date=_date_field(text, body_source, names, head, received_at, money.currency),
        total=Field(money.value, money_source, confidence),
        currency=Field(
            money.currency, money_source, min(confidence, 0.7) if money.ambiguous else confidence
        ),
        subject=subject,
        sender=sender,
        received_at=received_at,
        attachments=files,
    )


def _total(
    text: str, body_source: str, subject: str, files: tuple[AttachmentRef, ...]
) -> tuple[Money | None, str]:
    """The total and where it was found: the body's labels decide; a subject states one amount
    ("Your receipt for $12.00"); an attachment's name is the last resort."""
    money = best_total(find_money(text))
    if money is not None:
        return money, body_source
    money = best_total(find_money(subject, labelled=False))
    if money is not None:
        return money, "header:Subject"
    found = [m for f in files if (m := filename_money(f.filename)) is not None]
    return (found[0] if found else None), "attachment:name"


def _date_field(
    text: str,
    source: str,
    filenames: list[str],
    head: Headers,
    received_at: datetime.datetime,
    currency: str,
) -> Field[datetime.date]:
    """Stated in the body, else in an attachment's name, else the Date header, else arrival.
    "03/10/2026" is read the US way only when the amount is in dollars."""
    stated = stated_date(text, month_first=currency == "USD")
    if stated is not None:
        return Field(stated.value, source, stated.confidence)
    for name in filenames:
        if (value := filename_date(name)) is not None:
            return Field(value, "attachment:name", 0.4)
    header_date = _header_date(head)
    if header_date is not None:
        return Field(header_date.date(), "header:Date", 0.6)
    return Field(received_at.date(), "internalDate", 0.4)
