"""Deterministic demo and test mail: receipts in several vendors' styles among look-alike noise.

Noise deliberately says "receipt" and "total" in other senses, so a classifier that keys on
words alone is caught out; attachments have the right magic bytes for their types.
"""

from __future__ import annotations

import hashlib
import html
import random
import struct
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from simulators.gmail.mailbox import Draft

#: What a generated receipt really says: vendor, total, currency, date, attachments.
Truth = dict[str, Any]

#: (vendor, sender, style, currency)
VENDORS = (
    ("Acme Hardware", "Acme Hardware <receipts@acme.example>", "store", "USD"),
    ("Northwind Coffee", "Northwind Coffee <receipts+acct_1Nw7@stripe.example>", "stripe", "EUR"),
    ("Bluebird Books", "Bluebird Books <receipts+acct_9Bb2@stripe.example>", "stripe", "GBP"),
    ("Amazon", "Amazon.example <auto-confirm@amazon.example>", "order", "USD"),
    ("Amazon UK", "Amazon.example.co.uk <auto-confirm@amazon.example.co.uk>", "order", "GBP"),
    ("City Power & Light", "City Power & Light <billing@citypower.example>", "invoice", "EUR"),
    ("Metro Water", "Metro Water <no-reply@metrowater.example>", "invoice", "USD"),
)
#: (sender, subject, text, label): several say "receipt" or "total" without being receipts.
NOISE = (
    ("The Weekly Byte <newsletter@weeklybyte.example>", "This week: 5 apps that scan every receipt",
     "Five apps reviewed, from photo receipt scanners to budget trackers.\nTotal readers: 12,480."
     "\nUnsubscribe any time.", "CATEGORY_PROMOTIONS"),
    ("Jamie Rivera <jamie.rivera@mail.example>", "Dinner on Friday?",
     "Hey! Still on for Friday? I kept the receipt from last time so we can split it.\nJamie",
     "CATEGORY_PERSONAL"),
    ("Priya Shah <priya@work.example>", "Re: Expense report",
     "Could you attach the receipt for the taxi? The total looks fine otherwise.",
     "CATEGORY_PERSONAL"),
    ("ShopSmart Deals <deals@shopsmart.example>", "48 hours only: 30% off, no receipt needed",
     "Returns are free and no receipt is needed. Save up to $50.00 today!", "CATEGORY_PROMOTIONS"),
    ("Parcel Tracking <track@parcels.example>", "Your package is on its way",
     "Tracking number 1Z999AA10123456784. Estimated delivery: 2 days.", "CATEGORY_UPDATES"),
    ("IT Helpdesk <helpdesk@work.example>", "Read receipt: Quarterly plan",
     "Your message 'Quarterly plan' was read.", "CATEGORY_UPDATES"),
    ("Calendar <calendar-notification@calendar.example>", "Invitation: Budget review",
     "You have been invited to Budget review. Agenda: receipts policy, Q4 totals.",
     "CATEGORY_PERSONAL"),
    ("Prize Office <claims@prize.example>", "You have won $1,000,000",
     "Send your bank details to claim your prize. Receipt of funds guaranteed.", "SPAM"),
)  # fmt: skip


def money(cents: int, currency: str, variant: int) -> str:
    whole, frac = divmod(cents, 100)
    if currency == "USD":
        return f"${whole:,}.{frac:02d}"
    if currency == "GBP":
        return f"£{whole:,}.{frac:02d}"
    euro = f"{whole:,}".replace(",", ".") + f",{frac:02d}"
    return (f"€{euro}", f"EUR {whole}.{frac:02d}", f"{euro} €")[variant % 3]


def receipt_text(
    vendor: str, style: str, number: str, amount: str, date: datetime
) -> tuple[str, str]:
    """(subject, text body) in the vendor's style, with the date written its way."""
    long_date = f"{date:%B} {date.day}, {date.year}"
    if style == "store":
        return f"Your {vendor} receipt #{number}", (
            f"Thank you for shopping at {vendor}!\nReceipt #{number}\nDate: {long_date}\n"
            f"Total: {amount}\nPaid with Visa ending in 4242"
        )
    if style == "stripe":
        return f"Receipt from {vendor} [#{number}]", (
            f"Receipt from {vendor}\nReceipt #{number}\nAmount paid {amount}\n"
            f"Date paid {date:%b %d, %Y}\nPayment method Mastercard - 5454"
        )
    if style == "order":
        return f"Your order #{number}", (
            f"Hello,\nThank you for your order.\nOrder placed: {date.day} {date:%B %Y}\n"
            f"Order Total: {amount}"
        )
    return f"Your invoice for {date:%B %Y}", (
        f"Invoice INV-{number}\nInvoice date: {date:%Y-%m-%d}\nAmount due: {amount}\n"
        "Pay online within 14 days."
    )


def as_html(text: str) -> str:
    lines = "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines())
    return f"<html><body>{lines}</body></html>"


def pdf_bytes(lines: list[str]) -> bytes:
    """A one-page PDF with a correct xref table: small, but real readers open it."""
    ops = " ".join(f"({line.replace('(', '[').replace(')', ']')}) Tj 0 -16 Td" for line in lines)
    stream = f"BT /F1 12 Tf 72 720 Td {ops} ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def png_bytes(shade: int) -> bytes:
    """An 8x8 RGB PNG with valid chunks and CRCs."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + bytes([shade % 256, 128, 64]) * 8 for _ in range(8))
    header = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def jpeg_bytes(comment: str) -> bytes:
    """SOI, a JFIF APP0, a comment and EOI: right magic and structure, no pixels."""
    text = comment.encode("ascii", "replace")
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8" + app0 + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + b"\xff\xd9"


def _noise(rng: random.Random, date: datetime) -> Draft:
    sender, subject, text, label = rng.choice(NOISE)
    labels = ("SPAM",) if label == "SPAM" else ("INBOX", "UNREAD", label)
    invite = ("invite.ics", "text/calendar", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    attachments = (invite,) if subject.startswith("Invitation") else ()
    return Draft(sender, subject, text, None, date, attachments, labels)


def _receipt(rng: random.Random, date: datetime, attachment_ratio: float) -> tuple[Draft, Truth]:
    vendor, sender, style, currency = rng.choice(VENDORS)
    sizes = (rng.randint(99, 5_000), rng.randint(5_000, 50_000), rng.randint(100_000, 300_000))
    cents = rng.choice(sizes)  # some totals need a thousands separator
    number = f"{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
    amount = money(cents, currency, rng.randrange(3))
    subject, text = receipt_text(vendor, style, number, amount, date)
    attachments: tuple[tuple[str, str, bytes], ...] = ()
    if rng.random() < attachment_ratio:
        kind = rng.choice(("pdf", "pdf", "png", "jpeg"))
        if kind == "pdf":
            attachment = (f"receipt-{number}.pdf", "application/pdf", pdf_bytes(text.splitlines()))
        elif kind == "png":
            attachment = (f"receipt-{number}.png", "image/png", png_bytes(cents))
        else:
            attachment = (f"IMG_{number[:4]}.jpg", "image/jpeg", jpeg_bytes(f"{vendor} {amount}"))
        attachments = (attachment,)
    truth: Truth = {
        "vendor": vendor,
        "total": f"{cents // 100}.{cents % 100:02d}",
        "currency": currency,
        "date": date.date().isoformat(),
        "attachments": [
            {"filename": f, "mime_type": m, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
            for f, m, d in attachments
        ],
    }
    labels = ("INBOX", "UNREAD", "CATEGORY_UPDATES")
    return Draft(sender, subject, text, as_html(text), date, attachments, labels), truth


def generate(
    count: int,
    receipt_ratio: float = 0.4,
    attachment_ratio: float = 0.5,
    seed: int = 1,
    start: datetime | None = None,
    span_days: float = 90.0,
) -> list[tuple[Draft, Truth | None]]:
    """``count`` drafts, oldest first over ``span_days`` from ``start``; receipts carry truth."""
    rng = random.Random(seed)
    start = start or datetime.now(UTC).replace(microsecond=0) - timedelta(days=span_days)
    step = span_days * 86400 / max(count, 1)
    out: list[tuple[Draft, Truth | None]] = []
    for i in range(count):
        date = start + timedelta(seconds=int(i * step + rng.uniform(0, step * 0.9)))
        if rng.random() < receipt_ratio:
            out.append(_receipt(rng, date, attachment_ratio))
        else:
            out.append((_noise(rng, date), None))
    return out
