"""Receipt classification and field extraction, on Gmail Message resources fetched through the
real client from the Gmail simulator (so the MIME is real), and on hand-made odd input."""

from __future__ import annotations

import base64
import copy
import datetime
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from services.worker.receipts.amounts import best_total, find_money
from services.worker.receipts.dates import stated_date
from services.worker.receipts.extract import Extracted, attachments, body_text, extract, headers
from services.worker.receipts.vendor import brand_of_domain, vendor_of
from tests.support.gmail_sim import GmailSimulator, gmail_simulator_thread

START = "2026-06-01T00:00:00Z"
HAND_MADE = "hand-made@example.com"
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture(scope="module")
def sim() -> Iterator[GmailSimulator]:
    with gmail_simulator_thread() as simulator:
        yield simulator


def service(sim: GmailSimulator, email: str) -> Any:
    return sim.service(sim.credentials(sim.issue_refresh_token(email)))


def fetch_all(gmail: Any) -> list[dict[str, Any]]:
    """Every message, spam included (noise lands there too), as ``format=full`` resources."""
    ids: list[str] = []
    token = None
    while True:
        page = (
            gmail.users()
            .messages()
            .list(userId="me", maxResults=100, pageToken=token, includeSpamTrash=True)
            .execute()
        )
        ids += [ref["id"] for ref in page.get("messages", [])]
        token = page.get("nextPageToken")
        if not token:
            break
    get = gmail.users().messages().get
    return [get(userId="me", id=i, format="full").execute() for i in ids]


def html_only(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` as a sender that writes no text/plain alternative would have sent it."""
    out = copy.deepcopy(message)

    def prune(part: dict[str, Any]) -> None:
        part["parts"] = [p for p in part.get("parts", []) if p["mimeType"] != "text/plain"]
        for child in part["parts"]:
            prune(child)

    prune(out["payload"])
    return out


def fields(found: Extracted) -> tuple[object, ...]:
    assert found.vendor and found.total and found.currency and found.date, found.reason
    return found.vendor.value, found.total.value, found.currency.value, found.date.value


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_mailbox_matches_ground_truth(sim: GmailSimulator, seed: int) -> None:
    email = f"seed{seed}@example.com"
    sim.generate(500, seed=seed, email=email, start=START)
    messages = fetch_all(service(sim, email))
    truth = sim.ground_truth(email)
    receipts: dict[str, dict[str, Any]] = truth["receipts"]
    assert len(messages) == 500 == len(receipts) + len(truth["noise"])
    # The ground truth's formats, which the comparisons below rely on.
    for expected in receipts.values():
        assert re.fullmatch(r"\d+\.\d{2}", expected["total"])
        assert re.fullmatch(r"[A-Z]{3}", expected["currency"])
        assert datetime.date.fromisoformat(expected["date"]).isoformat() == expected["date"]
        assert isinstance(expected["vendor"], str) and expected["vendor"]

    found = {m["id"]: extract(m) for m in messages}
    classified = {i for i, e in found.items() if e.is_receipt}
    assert classified - set(receipts) == set(), "false positives"
    assert set(receipts) - classified == set(), "false negatives"

    by_id = {m["id"]: m for m in messages}
    for message_id, expected in receipts.items():
        want = (
            expected["vendor"],
            Decimal(expected["total"]),
            expected["currency"],
            datetime.date.fromisoformat(expected["date"]),
        )
        got = found[message_id]
        assert fields(got) == want, (message_id, got.subject, got.reason)
        assert [(a.filename, a.mime_type, a.size) for a in got.attachments] == [
            (a["filename"], a["mime_type"], a["size"]) for a in expected["attachments"]
        ]
        # Without the text/plain part the HTML one says the same.
        from_html = extract(html_only(by_id[message_id]))
        assert fields(from_html) == want, (message_id, from_html.reason)
        assert from_html.total and from_html.total.source == "body:html"


def deliver(sim: GmailSimulator, **draft: Any) -> dict[str, Any]:
    """Send ``draft`` ({from, subject, text, html?, date?, attachments?}) and fetch it back."""
    draft.setdefault("date", "2026-10-03T14:05:00Z")
    for attachment in draft.get("attachments", []):
        attachment["content_b64"] = base64.b64encode(attachment.pop("content")).decode()
    [message_id] = sim.add_messages([draft], email=HAND_MADE)
    gmail = service(sim, HAND_MADE)
    message: dict[str, Any] = (
        gmail.users().messages().get(userId="me", id=message_id, format="full").execute()
    )
    return message


def test_stripe_style_receipt(sim: GmailSimulator) -> None:
    message = deliver(
        sim,
        **{"from": "Linear <invoice+statements+acct_1Lx@stripe.com>"},
        subject="Your receipt from Linear #1234-5678",
        text="Receipt from Linear\n$96.00\nPaid September 30, 2026\n\nReceipt number 1234-5678\n"
        "Invoice number 7B2C-0009\nPayment method Visa - 4242\n\nSummary\n"
        "Linear Standard x 12 seats $8.00\nSubtotal $96.00\nAmount paid $96.00\n",
    )
    found = extract(message)
    assert found.is_receipt, found.reason
    assert fields(found) == ("Linear", Decimal("96.00"), "USD", datetime.date(2026, 9, 30))
    assert found.total and found.total.confidence >= 0.9 and found.total.source == "body:text"
    assert found.currency and found.currency.confidence < found.total.confidence  # "$" is a guess
    assert found.received_at == datetime.datetime(2026, 10, 3, 14, 5, tzinfo=datetime.UTC)
    assert found.sender.startswith("Linear <") and found.subject.startswith("Your receipt")
    assert "96" not in found.reason and "Linear" not in found.reason


def test_processor_display_name_defers_to_the_subject_vendor() -> None:
    vendor = vendor_of("Stripe <receipts@stripe.com>", "Your receipt from Linear #1234-5678")
    assert vendor and (vendor.name, vendor.source) == ("Linear", "header:Subject")
    vendor = vendor_of("Amazon <auto-confirm@amazon.com>", "Your Amazon Fresh order #12")
    assert vendor and (vendor.name, vendor.source) == ("Amazon Fresh", "header:Subject")


def test_amazon_style_order_confirmation_in_html_only(sim: GmailSimulator) -> None:
    rows = [
        ("Order Confirmation", ""),
        ("Order #113-4567890-1234567", ""),
        ("Placed on Friday, October 2, 2026", ""),
        ("Arriving: October 6, 2026", ""),
        ("USB-C cable (2-pack)", "$12.99"),
        ("Item Subtotal:", "$45.97"),
        ("Shipping &amp; Handling:", "$5.99"),
        ("Total before tax:", "$51.96"),
        ("Estimated tax to be collected:", "$4.16"),
        ("<b>Order Total:</b>", "<b>$56.12</b>"),
    ]
    table = "".join(f"<tr><td>{label}</td><td>{value}</td></tr>" for label, value in rows)
    message = deliver(
        sim,
        **{"from": '"Amazon.com" <auto-confirm@amazon.com>'},
        subject="Your Amazon.com order #113-4567890-1234567",
        text="",
        html=f"<html><head><style>td {{ padding: 4px }}</style></head><body><table>{table}"
        "</table></body></html>",
    )
    found = extract(message)
    assert found.is_receipt, found.reason
    assert fields(found) == ("Amazon", Decimal("56.12"), "USD", datetime.date(2026, 10, 2))
    assert found.total and found.total.source == "body:html"


def test_uber_style_trip_receipt_in_euros_with_decimal_commas(sim: GmailSimulator) -> None:
    message = deliver(
        sim,
        **{"from": "Uber Receipts <noreply@uber.com>"},
        subject="Your Saturday afternoon trip with Uber",
        text="October 3, 2026\nThanks for riding, Alex\nWe hope you enjoyed your ride.\n"
        "Total 1.023,40 €\nTrip fare 1.019,90 €\nBooking fee 1,50 €\nTolls 2,00 €\n"
        "Payments: Visa ••••4242 1.023,40 €\n",
    )
    found = extract(message)
    assert found.is_receipt, found.reason
    assert fields(found) == ("Uber", Decimal("1023.40"), "EUR", datetime.date(2026, 10, 3))
    assert found.currency and found.currency.confidence >= 0.9  # "€" names one currency


def test_utility_invoice_with_only_a_pdf_attachment(sim: GmailSimulator) -> None:
    message = deliver(
        sim,
        **{"from": "Greenfield Energy <billing@greenfield-energy.example>"},
        subject="Your invoice from Greenfield Energy",
        text="Hello,\nYour latest invoice is attached.\nThank you for your business.\n",
        date="2026-10-05T08:00:00Z",
        attachments=[
            {
                "filename": "invoice-2026-10-03-greenfield-123.45-USD.pdf",
                "mime_type": "application/pdf",
                "content": PDF,
            },
            {"filename": "notes.txt", "mime_type": "text/plain", "content": b"meter read"},
        ],
    )
    found = extract(message)
    assert found.is_receipt, found.reason
    expected = ("Greenfield Energy", Decimal("123.45"), "USD", datetime.date(2026, 10, 3))
    assert fields(found) == expected
    assert found.total and found.date and found.currency
    assert (found.total.source, found.date.source) == ("attachment:name", "attachment:name")
    assert found.total.confidence <= 0.4 and found.currency.confidence <= 0.4
    [pdf] = found.attachments  # PDFs and images only: not the text file
    assert (pdf.mime_type, pdf.size, pdf.part_id) == ("application/pdf", len(PDF), "1")
    assert pdf.attachment_id


NOISE = {
    "newsletter with prices": (
        "Gadget Weekly <news@gadgetweekly.example>",
        "Deals of the week: headphones from $79.99",
        "Top picks this week:\nNoise-cancelling headphones $79.99 (was $129.99)\n"
        "Smart speaker 49,00 €\nTotal savings up to £120.00!\nShop now. Unsubscribe.",
    ),
    "personal mail mentioning a receipt": (
        "Sam Lee <sam.lee@mail.example>",
        "Dinner last week",
        "Hey! I kept the receipt from the dinner, it came to $84.50 in total.\n"
        "Your share is $42.25, no rush.\nSam",
    ),
    "calendar invite": (
        "Google Calendar <calendar-notification@google.com>",
        "Invitation: Expense review @ Thu Oct 8, 2026 10am - 11am (UTC)",
        "Please bring your receipt for the offsite.\nBudget total: $5,000.00\n"
        "Join with Google Meet",
    ),
    "advert about receipts": (
        "ScanIt <hello@scanit.example>",
        "Snap your receipt, get $5.00 back",
        "Scan your receipt with the ScanIt app and we add $5.00 to your account.",
    ),
}


@pytest.mark.parametrize("name", sorted(NOISE))
def test_noise_is_not_a_receipt(sim: GmailSimulator, name: str) -> None:
    sender, subject, text = NOISE[name]
    found = extract(deliver(sim, **{"from": sender}, subject=subject, text=text))
    assert not found.is_receipt, found.reason
    assert found.total is None and found.vendor is None
    assert text.splitlines()[0] not in found.reason


@pytest.mark.parametrize(
    ("text", "value", "currency"),
    [
        ("$1,234.56", "1234.56", "USD"),
        ("USD 12.00", "12.00", "USD"),
        ("12.00 USD", "12.00", "USD"),
        ("€12,50", "12.50", "EUR"),
        ("12,50 €", "12.50", "EUR"),
        ("EUR 12.50", "12.50", "EUR"),
        ("£3.99", "3.99", "GBP"),
        ("1.234,56 €", "1234.56", "EUR"),
        ("€1.234", "1234", "EUR"),
        ("CA$20.00", "20.00", "CAD"),
        ("1\u00a0234,56 €", "1234.56", "EUR"),
        ("Qty 5 $10.00", "10.00", "USD"),
    ],
)
def test_amount_formats(text: str, value: str, currency: str) -> None:
    [money] = find_money(text)
    assert (money.value, money.currency) == (Decimal(value), currency)


@pytest.mark.parametrize(
    ("text", "total"),
    [
        ("Subtotal: $10.00\nTax: $0.80\nTotal: $10.80\nTip: $2.00", "10.80"),
        ("Item Subtotal: $45.97\nTotal before tax: $51.96\nOrder Total: $56.12", "56.12"),
        ("Widget $99.00\nAmount paid $20.00\nGift card $79.00", "20.00"),
        ("Total $100.00\nAmount paid $100.00\nAmount due $0.00", "100.00"),
        ("Grand total\n€ 7,20", "7.20"),
        ("Total (incl. VAT) 12,00 €\nVAT 2,00 €", "12.00"),
        ("Coffee $4.50\nBagel $3.25", "4.50"),  # unlabelled: the largest, at low confidence
    ],
)
def test_labelled_totals_win(text: str, total: str) -> None:
    best = best_total(find_money(text))
    assert best and best.value == Decimal(total)


def test_no_currency_no_amount() -> None:
    assert find_money("Total readers: 12,480. Tracking 1Z999AA10123456784") == []


@pytest.mark.parametrize(
    ("text", "month_first", "expected", "confidence"),
    [
        ("Date: 2026-10-03", False, datetime.date(2026, 10, 3), 0.9),
        ("Order placed: 3 October 2026", False, datetime.date(2026, 10, 3), 0.9),
        ("Date paid Oct 03, 2026", False, datetime.date(2026, 10, 3), 0.9),
        ("October 3, 2026", False, datetime.date(2026, 10, 3), 0.7),
        ("Date: 03/10/2026", False, datetime.date(2026, 10, 3), 0.45),
        ("Date: 03/10/2026", True, datetime.date(2026, 3, 10), 0.45),
        ("Date: 25/10/2026", True, datetime.date(2026, 10, 25), 0.9),
        ("Datum: 03.10.2026", True, datetime.date(2026, 10, 3), 0.63),
        ("Due date: 2026-11-01\nInvoice date: 2026-10-03", False, datetime.date(2026, 10, 3), 0.9),
    ],
)
def test_stated_dates(
    text: str, month_first: bool, expected: datetime.date, confidence: float
) -> None:
    found = stated_date(text, month_first)
    assert found and (found.value, found.confidence) == (expected, confidence)


def test_dates_about_something_else_are_not_the_receipt_date() -> None:
    assert stated_date("Estimated delivery: October 9, 2026\nDue by 2026-11-01") is None
    assert stated_date("February 30, 2026") is None


@pytest.mark.parametrize(
    ("domain", "brand"),
    [
        ("Amazon.co.uk", "Amazon UK"),
        ("amazon.com", "Amazon"),
        ("email.uber.com", "Uber"),
        ("citypower.example", "Citypower"),
        ("Booking.com", "Booking"),
    ],
)
def test_brand_of_domain(domain: str, brand: str) -> None:
    assert brand_of_domain(domain) == brand


def test_vendor_falls_back_to_the_sender_domain_at_low_confidence() -> None:
    vendor = vendor_of("billing@citypower.example", "Your invoice for October 2026")
    assert vendor and vendor.name == "Citypower" and vendor.confidence <= 0.3
    vendor = vendor_of("Billing <billing@citypower.example>", "Your monthly invoice")
    assert vendor and vendor.name == "Citypower"


def part(mime_type: str, data: bytes | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"size": len(data or b"")}
    if data is not None:
        body["data"] = base64.urlsafe_b64encode(data).decode().rstrip("=")  # Gmail drops "="
    return {"mimeType": mime_type, "filename": "", "headers": [], "body": body} | extra


def test_message_helpers() -> None:
    html = b"<html><body><p>City Power &amp; Light</p><p>Total:</p><p>&euro;5</p></body></html>"
    message = {
        "payload": {
            "mimeType": "multipart/mixed",
            "headers": [{"name": "FROM", "value": "a@b"}, {"name": "Subject", "value": "x"}],
            "parts": [
                part("multipart/alternative", parts=[part("text/html", html)]),
                part("image/png", filename="logo.png", partId="1",
                     body={"attachmentId": "att-1", "size": 42}),
                part("text/calendar", filename="invite.ics",
                     body={"attachmentId": "att-2", "size": 10}),
            ],
        }
    }  # fmt: skip
    head = headers(message)
    assert head["from"] == head["From"] == "a@b" and "SUBJECT" in head
    assert head.get("date") is None and head.get("Date", "none") == "none"
    assert body_text(message) == "City Power & Light\nTotal:\n€5"
    [logo] = attachments(message)
    assert (logo.part_id, logo.attachment_id, logo.filename, logo.size) == (
        "1",
        "att-1",
        "logo.png",
        42,
    )


def test_latin1_text_part_is_decoded_by_its_charset() -> None:
    plain = part(
        "text/plain",
        "Receipt #12\nTotal: 9,99 €".encode("cp1252"),
        headers=[{"name": "Content-Type", "value": 'text/plain; charset="windows-1252"'}],
    )
    assert body_text({"payload": plain}).endswith("9,99 €")


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"id": "x", "internalDate": "soon"},
        {"payload": None},
        {"payload": "text"},
        {"payload": {"headers": "From: x", "parts": "nope", "body": []}},
        {"payload": {"headers": [{"name": 1, "value": None}, "x"], "mimeType": "text/plain"}},
        {"payload": {"mimeType": "text/plain", "body": {"data": "@@not base64@@"}}},
        {"payload": {"mimeType": "text/plain", "body": {"data": 12}}, "internalDate": 10**30},
        {"payload": {"parts": [None, {"parts": [{"parts": []}]}], "headers": []}},
        {"payload": {"headers": [{"name": "Date", "value": "yesterday-ish"}]}},
    ],
)
def test_odd_input_never_raises(message: dict[str, Any]) -> None:
    found = extract(message)
    assert not found.is_receipt and found.reason
    assert "unreadable" not in found.reason  # handled on purpose, not by the last-resort catch
    assert found.received_at.tzinfo is not None


def test_not_a_dict_never_raises() -> None:
    found = extract(None)  # type: ignore[arg-type]
    assert not found.is_receipt and found.reason


def test_deeply_nested_parts_do_not_recurse_forever() -> None:
    payload: dict[str, Any] = part("text/plain", b"Receipt #1\nTotal: $5.00")
    for _ in range(5000):
        payload = {"mimeType": "multipart/mixed", "parts": [payload]}
    found = extract({"payload": payload})
    assert not found.is_receipt  # the text is below the depth cap: treated as absent
