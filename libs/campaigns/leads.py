"""Validating and upserting leads, shared by the API (one, bulk) and the CSV import actor."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import dramatiq
from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.common.models import Lead
from libs.events.catalogue import lead_data
from libs.events.emit import emit_many
from libs.telephony.calling_window import InvalidWindow, check_zone
from libs.telephony.phones import InvalidPhone, to_e164

#: CSV header aliases (lower-cased) for each lead field.
HEADER_ALIASES = {
    "phone": ("phone", "phone_number", "number", "mobile", "telephone"),
    "name": ("name", "full_name", "contact"),
    "timezone": ("timezone", "time_zone", "tz"),
    "email": ("email", "e-mail"),
    "notes": ("notes", "note", "comment"),
}
MAX_FIELD = {"name": 200, "email": 320, "notes": 5000}
#: The longest IANA zone name is 32 characters; check_zone takes at most 64.
MAX_TIMEZONE = 64


class InvalidLead(ValueError):
    """One lead's input is wrong; the message says which field and why."""


@dataclass(frozen=True)
class LeadInput:
    phone_e164: str
    name: str = ""
    timezone: str | None = None
    email: str | None = None
    notes: str | None = None


def parse_lead(raw: Mapping[str, Any]) -> LeadInput:
    if not isinstance(raw, Mapping):
        raise InvalidLead("each lead must be an object")
    try:
        phone = to_e164(raw.get("phone"))
    except InvalidPhone as exc:
        raise InvalidLead(f"phone: {exc}") from None
    values: dict[str, str | None] = {}
    for field, limit in MAX_FIELD.items():
        value = raw.get(field)
        if value is not None and not isinstance(value, str):
            raise InvalidLead(f"{field} must be a string")
        value = (value or "").strip() or None
        if value and len(value) > limit:
            raise InvalidLead(f"{field} is longer than {limit} characters")
        values[field] = value
    zone = raw.get("timezone")
    if isinstance(zone, str) and len(zone) > MAX_TIMEZONE:
        raise InvalidLead(f"timezone is longer than {MAX_TIMEZONE} characters")
    if zone not in (None, ""):
        try:
            check_zone(zone)
        except InvalidWindow as exc:
            raise InvalidLead(f"timezone: {exc}") from None
    return LeadInput(
        phone_e164=phone,
        name=values["name"] or "",
        timezone=zone or None,
        email=values["email"],
        notes=values["notes"],
    )


#: The fields a later row for the same number can change (the phone is what makes it one).
MERGED_FIELDS = ("name", "timezone", "email", "notes")


def merge_duplicates(
    rows: list[tuple[int, LeadInput]],
) -> tuple[list[LeadInput], list[dict[str, Any]]]:
    """One input per number, in first-seen order, and a report of each repeated row: its line,
    the first line with the number, and per field the value kept and the one dropped. A later
    row's non-empty fields replace the earlier ones; its empty cells keep them."""
    first_line: dict[str, int] = {}
    merged: dict[str, LeadInput] = {}
    duplicates: list[dict[str, Any]] = []
    for line, row in rows:
        earlier = merged.get(row.phone_e164)
        if earlier is None:
            first_line[row.phone_e164], merged[row.phone_e164] = line, row
            continue
        changes = {
            field: {"kept": getattr(row, field), "dropped": getattr(earlier, field) or None}
            for field in MERGED_FIELDS
            if getattr(row, field) and getattr(row, field) != getattr(earlier, field)
        }
        merged[row.phone_e164] = replace(
            earlier, **{field: change["kept"] for field, change in changes.items()}
        )
        duplicates.append(
            {
                "line": line,
                "duplicate_of": first_line[row.phone_e164],
                "phone": row.phone_e164,
                "changed": changes,
            }
        )
    return list(merged.values()), duplicates


def upsert_leads(
    session: Session,
    business_id: int,
    inputs: list[LeadInput],
    source: str,
    broker: dramatiq.Broker | None = None,
) -> tuple[int, int]:
    """Create new leads and update existing ones (same number); returns (created, updated).
    Each new lead is a lead.created event (its deliveries through ``broker``)."""
    by_phone = {lead.phone_e164: lead for lead in inputs}  # the last row for a number wins
    existing = {
        lead.phone_e164: lead
        for lead in session.scalars(
            select(Lead).where(Lead.business_id == business_id, Lead.phone_e164.in_(by_phone))
        )
    }
    created: list[Lead] = []
    updated = 0
    for phone, data in by_phone.items():
        lead = existing.get(phone)
        if lead is None:
            created.append(
                Lead(
                    business_id=business_id,
                    phone_e164=phone,
                    name=data.name,
                    timezone=data.timezone,
                    email=data.email,
                    notes=data.notes,
                    source=source,
                )
            )
        else:
            lead.name = data.name or lead.name
            lead.timezone = data.timezone or lead.timezone
            lead.email = data.email or lead.email
            lead.notes = data.notes or lead.notes
            updated += 1
    session.add_all(created)
    session.flush()
    emit_many(session, business_id, "lead.created", [lead_data(lead) for lead in created], broker)
    return len(created), updated


class InvalidCsv(ValueError):
    pass


def decode_csv(content: bytes) -> str:
    for encoding in ("utf-8-sig", "utf-16"):
        try:
            text = content.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" not in text:
            return text
    raise InvalidCsv("the file is not UTF-8 (or UTF-16) text; save it as CSV UTF-8")


def csv_rows(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row mapped to lead fields); raises InvalidCsv for a missing phone column."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidCsv("the file is empty") from None
    except csv.Error as exc:
        raise InvalidCsv(f"unreadable CSV: {exc}") from None
    columns: dict[str, int] = {}
    lowered = [h.strip().lower() for h in header]
    for field, aliases in HEADER_ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                columns[field] = lowered.index(alias)
                break
    if "phone" not in columns:
        raise InvalidCsv(
            "no phone column: the header must name one of " + ", ".join(HEADER_ALIASES["phone"])
        )
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            mapped = {f: row[i] if i < len(row) else "" for f, i in columns.items()}
            yield reader.line_num, mapped
    except csv.Error as exc:
        raise InvalidCsv(f"unreadable CSV at line {reader.line_num}: {exc}") from None
