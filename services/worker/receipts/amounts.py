"""Money in free text: "$1,234.56", "EUR 12.50", "1.234,56 €", and the label in front of it.

A receipt states many amounts (line items, subtotal, tax, total); the label decides which one
is the total, so every amount is returned with a rank saying how total-like its label is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

CODES = (
    "USD|EUR|GBP|JPY|CHF|CAD|AUD|NZD|SEK|NOK|DKK|PLN|CZK|HUF|INR|BRL|MXN|SGD|HKD|ZAR|CNY|KRW"
    "|TRY|ILS|AED"
)
SYMBOLS = {
    "$": "USD", "US$": "USD", "C$": "CAD", "CA$": "CAD", "A$": "AUD", "AU$": "AUD",
    "NZ$": "NZD", "HK$": "HKD", "S$": "SGD", "R$": "BRL", "MX$": "MXN",
    "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR",
}  # fmt: skip
#: "$" alone is also CAD, AUD, ...: a dollar amount's currency is a good guess, not a fact.
AMBIGUOUS = {"$", "¥"}

# Thousands groups of exactly three digits and one or two decimals: "1,234.56", "1.234,56",
# "12.5", "1234". A space groups thousands only when it is a no-break or thin one (as French
# typesetting does): a plain space more often separates a quantity from a price.
_NUMBER = r"\d{1,3}(?:[,.\u00a0\u202f]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_SYMBOL = r"(?<![A-Za-z])(?:US|CA|C|AU|A|NZ|HK|S|R|MX)?\$|[€£¥₹]"
_CODE = rf"\b(?:{CODES})\b"
# A symbol after the number must not be the next amount's prefix: "Qty 5 $10.00".
_SUFFIX = r"(?:US|CA|C|AU|A|NZ|HK|S|R|MX)?\$|[€£¥₹]"
_GAP = r"[ \u00a0]?"  # never a newline: "Total: 12.00\nUSD ..." must not pair across lines
_MONEY = re.compile(
    rf"(?P<pc>{_SYMBOL}|{_CODE}){_GAP}(?<![\d.,])(?P<pn>{_NUMBER})(?![.,]?\d)"
    rf"|(?<![\d.,])(?P<sn>{_NUMBER}){_GAP}(?P<sc>{_SUFFIX}|{_CODE})(?!{_GAP}\d)"
)

# Labels, by how surely they name what was paid; components are parts of a total.
_COMPONENT = re.compile(
    r"sub\W?total|\btax\b|\bvat\b|\bgst\b|shipping|delivery|discount|saving|\bsave\b|\btip\b"
    r"|\bfees?\b|deposit|refund|credit|previous|\bup to\b|\bbefore\b|\bper\b|\beach\b",
    re.I,
)
_PAID = re.compile(
    r"grand\s+total|order\s+total|(?:amount|total)\s+(?:paid|charged)|you\s+paid"
    r"|(?:invoice|payment|trip|receipt)\s+total|total\s+amount|\bcharged\b",
    re.I,
)
_TOTAL = re.compile(r"\btotal\b", re.I)
_DUE = re.compile(r"\bdue\b|\bpayable\b", re.I)

RANK_PAID, RANK_TOTAL, RANK_DUE, RANK_UNLABELLED, RANK_COMPONENT = 4, 3, 2, 1, 0
_RANKED = ((_COMPONENT, RANK_COMPONENT), (_PAID, RANK_PAID), (_TOTAL, RANK_TOTAL), (_DUE, RANK_DUE))
# "Total incl. VAT" is the total, not the VAT.
_INCLUDED = re.compile(r"\b(?:incl(?:uding|\.)?|inc\.|with)\s+(?:vat|tax|gst)\b", re.I)
CONFIDENCE = {RANK_PAID: 0.95, RANK_TOTAL: 0.9, RANK_DUE: 0.85, RANK_UNLABELLED: 0.5}
LABELS = {RANK_PAID: "paid", RANK_TOTAL: "total", RANK_DUE: "due", RANK_UNLABELLED: "unlabelled"}


@dataclass(frozen=True)
class Money:
    value: Decimal
    currency: str
    #: True when the currency was inferred from a symbol several currencies use.
    ambiguous: bool
    rank: int
    position: int


def to_decimal(number: str) -> Decimal | None:
    """The value of a matched number; a lone separator before three digits is a thousands one."""
    digits = number.replace("\u00a0", "").replace("\u202f", "")
    last = max(digits.rfind(","), digits.rfind("."))
    decimal_sep = ""
    if last >= 0:
        sep = digits[last]
        other = "." if sep == "," else ","
        if other in digits or (digits.count(sep) == 1 and len(digits) - last - 1 != 3):
            decimal_sep = sep
    whole, _, frac = digits.rpartition(decimal_sep) if decimal_sep else (digits, "", "")
    try:
        return Decimal(whole.replace(",", "").replace(".", "") + ("." + frac if frac else ""))
    except InvalidOperation:
        return None


def rank_label(label: str) -> int:
    """The rank of the label keyword nearest the amount ("Total before tax" is a component);
    on a tie the component wins, so "Sub total" is not a total."""
    label = _INCLUDED.sub(" ", label)
    nearest = [
        (match.end(), -order, rank)
        for order, (pattern, rank) in enumerate(_RANKED)
        for match in pattern.finditer(label)
    ]
    return max(nearest)[2] if nearest else RANK_UNLABELLED


def _label(text: str, start: int, floor: int) -> str:
    """What precedes an amount on its line; a short label alone on the line above counts too
    (tables turned to text often put "Total" and "$12.00" on separate lines)."""
    line_start = text.rfind("\n", 0, start) + 1
    label = text[max(line_start, floor, start - 48) : start]
    if label.strip(" \t:-|") or line_start == 0:
        return label
    above = text[text.rfind("\n", 0, line_start - 1) + 1 : line_start - 1]
    return above if len(above) <= 32 and not _MONEY.search(above) else label


def find_money(text: str, labelled: bool = True) -> list[Money]:
    """Every amount with a currency in ``text``, ranked by its label (or unlabelled)."""
    found: list[Money] = []
    floor = 0
    for match in _MONEY.finditer(text):
        symbol = (match.group("pc") or match.group("sc")).strip()
        value = to_decimal(match.group("pn") or match.group("sn"))
        if value is None:
            continue
        currency = SYMBOLS.get(symbol, symbol.upper())
        rank = rank_label(_label(text, match.start(), floor)) if labelled else RANK_UNLABELLED
        found.append(Money(value, currency, symbol in AMBIGUOUS, rank, match.start()))
        floor = match.end()  # the next amount's label starts after this one
    return found


def best_total(amounts: list[Money]) -> Money | None:
    """The most total-like amount; among equals the largest, as line items sum to the total."""
    usable = [m for m in amounts if m.rank > RANK_COMPONENT]
    return max(usable, key=lambda m: (m.rank, m.value), default=None)


_FILENAME_MONEY = re.compile(
    rf"(?<![\d.])(?P<n>\d+[.,]\d{{2}})[-_ ]?(?P<c>{CODES})(?![A-Za-z])"
    rf"|(?<![A-Za-z])(?P<c2>{CODES})[-_ ]?(?P<n2>\d+[.,]\d{{2}})(?!\d)",
    re.I,
)


def filename_money(filename: str) -> Money | None:
    """The amount in a name like "invoice-2026-10-03-acme-123.45-USD.pdf": only one with
    decimals and a currency code, so dates and order numbers are never read as money."""
    match = _FILENAME_MONEY.search(filename)
    if not match:
        return None
    value = to_decimal(match.group("n") or match.group("n2"))
    currency = (match.group("c") or match.group("c2")).upper()
    return None if value is None else Money(value, currency, False, RANK_UNLABELLED, 0)
