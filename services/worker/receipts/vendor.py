"""Who a receipt is from: the From display name, the subject, or the sender's domain.

Receipts often come through a payment processor or a no-reply mailbox, and shops put their
domain in the display name ("Amazon.co.uk"), so each source is cleaned before it is trusted.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import NamedTuple


class Vendor(NamedTuple):
    name: str
    source: str
    confidence: float


_CAPS = r"[A-Z0-9][\w'.&+-]*(?:[ ](?:&|and|of|the|[A-Z0-9][\w'.&+-]*))*"
_SUBJECT_VENDOR = (
    re.compile(
        rf"(?i:receipt|invoice|order|purchase|payment|bill|trip|ride|booking)\s+(?i:from|with|at)"
        rf"\s+({_CAPS})"
    ),
    re.compile(rf"(?i:your)\s+({_CAPS})\s+(?i:e-?receipt|receipt|order|invoice|bill)\b"),
)
# Words that fill the "Your ... invoice" slot without naming anyone.
_NOT_VENDOR = re.compile(
    r"^(?:the|a|an|new|latest|recent|monthly|weekly|annual|yearly|e|digital|electronic|online"
    r"|final|first|last|next|order|purchase|payment|trip|ride|january|february|march|april"
    r"|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug"
    r"|sept?|oct|nov|dec|(?:mon|tues?|wednes|thur?s?|fri|satur|sun)(?:day)?|\d+)$",
    re.I,
)
# A display name that names a mailbox or a payment processor rather than the merchant.
_GENERIC_SENDER = re.compile(
    r"^(?:no[-_ ]?reply|do[-_ ]?not[-_ ]?reply|receipts?|billing|invoices?|notifications?"
    r"|orders?|support|info|accounts?|payments?|customer (?:service|care|support)|team"
    r"|stripe|paypal|square|squareup|shopify|paddle|gumroad|fastspring|chargebee)$",
    re.I,
)
# Labels a domain name ends with that say nothing about who the sender is.
_GENERIC_TLD = {"com", "net", "org", "co", "biz", "info", "io", "app", "example", "test"}
_SUBDOMAIN = {"mail", "email", "e", "em", "info", "news", "billing", "receipts", "notify"}


def _title(word: str) -> str:
    return word[:1].upper() + word[1:] if word.islower() else word


def brand_of_domain(domain: str) -> str | None:
    """The brand a domain names: "Amazon.co.uk" -> "Amazon UK", "email.uber.com" -> "Uber".
    A country-code top-level domain qualifies it (a regional storefront)."""
    labels = [label for label in domain.strip(".").split(".") if label]
    country = ""
    while len(labels) > 1 and (labels[-1].lower() in _GENERIC_TLD or len(labels[-1]) == 2):
        label = labels.pop().lower()
        if not country and label not in _GENERIC_TLD and label.isalpha():
            country = label.upper()
    while len(labels) > 1 and labels[0].lower() in _SUBDOMAIN:
        labels.pop(0)
    if not labels or not re.search(r"[A-Za-z]", labels[-1]):
        return None
    return f"{_title(labels[-1])} {country}".strip()


def _clean_vendor(name: str) -> str | None:
    name = name.strip(" \t\"'.,:;-")
    if re.fullmatch(r"[\w-]+(?:\.[\w-]+)+", name):
        return brand_of_domain(name)
    words = name.split()
    if not words or "@" in name or all(_NOT_VENDOR.match(w) for w in words):
        return None
    return name


def _subject_vendor(subject: str) -> str | None:
    for pattern in _SUBJECT_VENDOR:
        for match in pattern.finditer(subject):
            # "Northwind Coffee and" -> "Northwind Coffee": joiners only join.
            words = match.group(1).split()
            while words and words[-1].lower() in ("&", "and", "of", "the"):
                words.pop()
            if vendor := _clean_vendor(" ".join(words)):
                return vendor
    return None


def vendor_of(sender: str, subject: str) -> Vendor | None:
    """The merchant: the From display name or the subject's "Receipt from X" / "Your X order",
    the more specific one when both name it; the sender's domain as a last resort."""
    display, address = parseaddr(sender)
    words = display.split()
    while len(words) > 1 and _GENERIC_SENDER.match(words[-1]):
        words.pop()  # "Uber Receipts" is Uber's receipts mailbox
    display = " ".join(words)
    named = _clean_vendor(display) if display and not _GENERIC_SENDER.match(display) else None
    stated = _subject_vendor(subject)
    if named and stated:
        a, b = f" {named.casefold()} ", f" {stated.casefold()} "
        if a == b:
            return Vendor(named, "header:From", 0.95)
        if a in b or b in a:  # whole words: "Amazon" and "Amazon Fresh", not "Co" and "Costco"
            longer = stated if len(b) > len(a) else named
            return Vendor(longer, "header:Subject" if longer is stated else "header:From", 0.9)
        return Vendor(stated, "header:Subject", 0.7)  # the subject is about this transaction
    if stated:
        return Vendor(stated, "header:Subject", 0.8)
    if named:
        return Vendor(named, "header:From", 0.85 if display.strip() == named else 0.75)
    brand = brand_of_domain(address.rpartition("@")[2]) if "@" in address else None
    return Vendor(brand, "header:From", 0.3) if brand else None
