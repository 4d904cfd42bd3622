"""Dates written in receipts: "2026-10-03", "October 3, 2026", "3 Oct 2026", "03/10/2026".

A receipt also states dates that are not the purchase date (due, delivery, expiry), so the
label in front of a date ranks it, like amounts.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

_NAMES = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)  # fmt: skip
_MONTHS = {name[:3]: number for number, name in enumerate(_NAMES, 1)}
# Full names or abbreviations only, so "Decision 5, 2026" is not read as December.
_MONTH = rf"(?i:{'|'.join(_NAMES)}|sept|{'|'.join(_MONTHS)})\b\.?"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE = re.compile(
    rf"\b(?P<iy>\d{{4}})[-/.](?P<im>\d{{1,2}})[-/.](?P<id>\d{{1,2}})\b"
    rf"|\b(?P<am>{_MONTH})\s+(?P<ad>{_DAY}),?\s+(?P<ay>\d{{4}})\b"
    rf"|\b(?P<bd>{_DAY})\s+(?:of\s+)?(?P<bm>{_MONTH}),?\s+(?P<by>\d{{4}})\b"
    rf"|\b(?P<n1>\d{{1,2}})(?P<sep>[/.])(?P<n2>\d{{1,2}})(?P=sep)(?P<ny>\d{{4}})\b"
)
# When the transaction happened, versus dates about something else.
_WHEN = re.compile(r"\bdate\b|\bpaid\b|placed|issued|purchased|ordered|billed|\bon\b", re.I)
_OTHER = re.compile(
    r"\bdue\b|deliver|arriv|expir|valid|until|renew|\bnext\b|ship|estimated|\bby\b|period"
    r"|\bfrom\b|\bto\b|\bstart|\bend",
    re.I,
)


@dataclass(frozen=True)
class StatedDate:
    value: datetime.date
    confidence: float


def _numeric(first: int, second: int, sep: str, month_first: bool) -> tuple[int, int, float]:
    """(month, day, confidence) of "NN/NN/YYYY"; dots are day-first wherever they are used."""
    if first > 12 or second > 12 or first == second:
        return (second, first, 1.0) if first > 12 else (first, second, 1.0)
    if sep == ".":
        return second, first, 0.9
    return (first, second, 0.5) if month_first else (second, first, 0.5)


def _parse(match: re.Match[str], month_first: bool) -> tuple[datetime.date, float] | None:
    g = match.groupdict()
    confidence = 1.0
    if g["iy"]:
        year, month, day = int(g["iy"]), int(g["im"]), int(g["id"])
    elif g["ay"] or g["by"]:
        year = int(g["ay"] or g["by"])
        month = _MONTHS[(g["am"] or g["bm"]).lower()[:3]]
        day = int(re.sub(r"\D", "", g["ad"] or g["bd"]))
    else:
        year = int(g["ny"])
        month, day, confidence = _numeric(int(g["n1"]), int(g["n2"]), g["sep"], month_first)
    if not 1990 <= year <= 2100:
        return None
    try:
        return datetime.date(year, month, day), confidence
    except ValueError:
        return None  # "February 30", a version number, a phone number fragment


def stated_date(text: str, month_first: bool = False) -> StatedDate | None:
    """The purchase date stated in ``text``: a labelled one first ("Date:", "Date paid",
    "Order placed"), then the first unlabelled one; never one labelled due/delivery/expiry.
    ``month_first`` settles "03/10/2026" (US style) at a lower confidence."""
    best: tuple[int, int, datetime.date, float] | None = None
    for match in _DATE.finditer(text):
        parsed = _parse(match, month_first)
        if parsed is None:
            continue
        line_start = text.rfind("\n", 0, match.start()) + 1
        label = text[max(line_start, match.start() - 40) : match.start()]
        if _OTHER.search(label):
            continue
        rank = 2 if _WHEN.search(label) else 1
        candidate = (rank, -match.start(), *parsed)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is None:
        return None
    rank, _, value, confidence = best
    return StatedDate(value, round((0.9 if rank == 2 else 0.7) * confidence, 2))


_FILENAME_DATE = re.compile(r"(?<!\d)(\d{4})[-_.]?(\d{2})[-_.]?(\d{2})(?!\d)")


def filename_date(filename: str) -> datetime.date | None:
    """The date in a name like "invoice-2026-10-03-...": year first only, as in ISO 8601,
    since a file name has no label or locale to settle "03-10-2026"."""
    for match in _FILENAME_DATE.finditer(filename):
        year, month, day = (int(g) for g in match.groups())
        if 1990 <= year <= 2100:
            try:
                return datetime.date(year, month, day)
            except ValueError:
                continue
    return None
