"""The event catalogue: every event type a business can subscribe to, and its payload's schema.

This is the one place an event type is defined. A body sent to an endpoint is the envelope
``{"id", "type", "timestamp", "data"}``; ``data`` is the resource as the API shows it (the lead
of ``GET /api/leads/{id}``, the call of ``GET /api/calls/{id}``, ...), built here from its row
so the API and the events cannot drift apart (a test compares them). The OpenAPI document lists
these schemas under ``webhooks`` and ``GET /api/webhooks/event-types`` returns them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from libs.common.models import Call, CallJob, CallJobStatus, Lead, Receipt, ReceiptAttachment, Run

#: "*" subscribes an endpoint to every type, including types added later.
ALL_TYPES = "*"


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    #: JSON Schema (2020-12, as OpenAPI 3.1 uses) of the envelope's ``data``.
    data_schema: Mapping[str, Any]


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


_DATE_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_DATE_TIME = _nullable("string", format="date-time")

LEAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "phone", "email", "timezone", "notes", "source",
                 "callback_requested", "last_call_status", "last_called_at", "created_at"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "phone": {"type": "string", "description": "E.164"},
        "email": _nullable("string"),
        "timezone": _nullable("string", description="IANA zone; null: the business's"),
        "notes": _nullable("string"),
        "source": {"type": "string", "enum": ["api", "csv", "call"]},
        "callback_requested": {"type": "boolean"},
        "last_call_status": _nullable("string"),
        "last_called_at": _NULLABLE_DATE_TIME,
        "created_at": _DATE_TIME,
    },
}  # fmt: skip

CALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "run_id", "job_id", "lead_id", "attempt", "direction", "to", "from",
                 "status", "provider_call_sid", "answered_by", "duration_s", "error",
                 "created_at", "ended_at", "disposition", "disposition_source", "transferred_to",
                 "transfer_mode", "agent_error", "recording"],
    "properties": {
        "id": {"type": "integer"},
        "run_id": _nullable("integer"),
        "job_id": _nullable("integer"),
        "lead_id": _nullable("integer"),
        "attempt": {"type": "integer"},
        "direction": {"type": "string", "enum": ["outbound", "inbound"]},
        "to": {"type": "string"},
        "from": {"type": "string", "description": "\"\" when the caller id was withheld"},
        "status": {"type": "string",
                   "enum": ["completed", "busy", "no-answer", "failed", "canceled"]},
        "provider_call_sid": _nullable("string"),
        "answered_by": _nullable("string"),
        "duration_s": _nullable("integer"),
        "error": {"oneOf": [
            {"type": "null"},
            {"type": "object", "required": ["code", "message"],
             "properties": {"code": {"type": "string"}, "message": _nullable("string")}},
        ]},
        "created_at": _DATE_TIME,
        "ended_at": _NULLABLE_DATE_TIME,
        "disposition": _nullable("string", description="a code of the business's "
                                 "dispositions"),
        "disposition_source": {"enum": ["agent", "operator", "rule", None]},
        "recording": {"oneOf": [
            {"type": "null"},
            {"type": "object",
             "required": ["available", "bytes", "duration_ms", "sha256", "channels",
                          "expired_at"],
             "properties": {"available": {"type": "boolean"}, "bytes": _nullable("integer"),
                            "duration_ms": _nullable("integer"), "sha256": _nullable("string"),
                            "channels": _nullable("integer"),
                            "expired_at": _NULLABLE_DATE_TIME}},
        ]},
        "transferred_to": _nullable("string"),
        "transfer_mode": {"enum": ["cold", "warm", None]},
        "agent_error": _nullable("string"),
    },
}  # fmt: skip

RUN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "kind", "status", "created_at", "started_at", "finished_at",
                 "jobs", "attempts"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": ["campaign", "daily"]},
        "status": {"type": "string", "enum": ["completed", "canceled"]},
        "created_at": _DATE_TIME,
        "started_at": _NULLABLE_DATE_TIME,
        "finished_at": _NULLABLE_DATE_TIME,
        "jobs": {
            "type": "object",
            "description": "jobs (one per lead) by final status",
            "required": [s.value for s in CallJobStatus],
            "properties": {s.value: {"type": "integer"} for s in CallJobStatus},
        },
        "attempts": {"type": "integer", "description": "calls placed, retries included"},
    },
}  # fmt: skip

RUN_PAUSED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "reason", "message", "paused_at"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "reason": {"type": "string", "enum": ["abandonment", "provider_failures"]},
        "message": {"type": "string", "description": "why, for a person"},
        "paused_at": _DATE_TIME,
    },
}

RECEIPT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "gmail_message_id", "subject", "sender", "received_at", "vendor", "date",
                 "total_amount", "currency", "extraction", "attachments"],
    "properties": {
        "id": {"type": "integer"},
        "gmail_message_id": {"type": "string"},
        "subject": {"type": "string"},
        "sender": {"type": "string"},
        "received_at": _DATE_TIME,
        "vendor": _nullable("string"),
        "date": _nullable("string", format="date"),
        "total_amount": _nullable("string", description="decimal, e.g. \"12.50\""),
        "currency": _nullable("string", description="ISO 4217"),
        "extraction": {"type": "object", "description": "per field: where it was read, and "
                       "how confident the extraction is"},
        "attachments": {"type": "array", "items": {
            "type": "object", "required": ["id", "filename", "mime_type", "size", "sha256"],
            "properties": {"id": {"type": "integer"}, "filename": {"type": "string"},
                           "mime_type": {"type": "string"}, "size": {"type": "integer"},
                           "sha256": {"type": "string"}},
        }},
    },
}  # fmt: skip

EVENT_TYPES: dict[str, EventType] = {
    t.name: t
    for t in (
        EventType("lead.created", "A lead was created: by the API, a CSV import, or a call "
                  "from a new number. Not sent when an existing lead is updated.", LEAD_SCHEMA),
        EventType("call.completed", "A call reached a final status (completed, busy, "
                  "no-answer, failed or canceled; data.status says which), outbound or "
                  "inbound.", CALL_SCHEMA),
        EventType("run.completed", "A run finished: every job reached a final status "
                  "(completed), or it was canceled and its last call ended (canceled).",
                  RUN_SCHEMA),
        EventType("run.paused", "A run paused itself: its abandonment rate was about to pass "
                  "3 %, or too many of its calls failed at the provider. Resume it when "
                  "fixed.", RUN_PAUSED_SCHEMA),
        EventType("receipt.synced", "A receipt was found in a connected Gmail inbox and "
                  "stored (once per Gmail message).", RECEIPT_SCHEMA),
    )
}  # fmt: skip


def envelope_schema(event_type: EventType) -> dict[str, Any]:
    """The schema of the whole body sent for ``event_type``."""
    return {
        "type": "object",
        "required": ["id", "type", "timestamp", "data"],
        "properties": {
            "id": {"type": "string", "description": "evt_…: the same in the webhook-id "
                   "header; the idempotency key (unchanged across retries)"},
            "type": {"type": "string", "const": event_type.name},
            "timestamp": {**_DATE_TIME, "description": "when the event happened"},
            "data": event_type.data_schema,
        },
    }  # fmt: skip


def encode(payload: Mapping[str, Any]) -> bytes:
    """The body bytes sent (and signed) for an event: compact JSON, UTF-8, the same on every
    attempt."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def iso(value: datetime) -> str:
    """UTC as the API writes it (pydantic's form): 2026-03-30T12:01:00Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _iso(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def lead_data(lead: Lead) -> dict[str, Any]:
    return {
        "id": lead.id,
        "name": lead.name,
        "phone": lead.phone_e164,
        "email": lead.email,
        "timezone": lead.timezone,
        "notes": lead.notes,
        "source": lead.source,
        "callback_requested": lead.callback_requested,
        "last_call_status": lead.last_call_status,
        "last_called_at": _iso(lead.last_called_at),
        "created_at": iso(lead.created_at),
    }


def _recording(call: Call) -> dict[str, Any] | None:
    if not (call.recording_path or call.recording_sid or call.recording_expired_at):
        return None
    return {
        "available": bool(call.recording_path and call.recording_sha256),
        "bytes": call.recording_bytes,
        "duration_ms": call.recording_duration_ms,
        "sha256": call.recording_sha256,
        "channels": call.recording_channels,
        "expired_at": _iso(call.recording_expired_at),
    }


def call_data(call: Call) -> dict[str, Any]:
    error = {"code": call.error_code, "message": call.error_message} if call.error_code else None
    return {
        "id": call.id,
        "run_id": call.run_id,
        "job_id": call.job_id,
        "lead_id": call.lead_id,
        "attempt": call.attempt,
        "direction": call.direction,
        "to": call.to_number,
        "status": call.status,
        "provider_call_sid": call.provider_call_sid,
        "answered_by": call.answered_by,
        "duration_s": call.duration_s,
        "error": error,
        "created_at": iso(call.created_at),
        "ended_at": _iso(call.ended_at),
        "from": call.from_number,
        "disposition": call.disposition,
        "disposition_source": call.disposition_source,
        "recording": _recording(call),
        "transferred_to": call.transferred_to,
        "transfer_mode": call.transfer_mode,
        "agent_error": call.agent_error,
    }


def run_data(session: Session, run: Run) -> dict[str, Any]:
    jobs = dict.fromkeys((s.value for s in CallJobStatus), 0)
    attempts = 0
    for status, count, tries in session.execute(
        select(CallJob.status, func.count(), func.sum(CallJob.attempt))
        .where(CallJob.run_id == run.id)
        .group_by(CallJob.status)
    ):
        jobs[status.value] = int(count)
        attempts += int(tries or 0)
    return {
        "id": run.id,
        "name": run.name,
        "kind": run.kind,
        "status": run.status.value,
        "created_at": iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "jobs": jobs,
        "attempts": attempts,
    }


def run_paused_data(run: Run, reason: str) -> dict[str, Any]:
    assert run.auto_paused_at is not None  # set by the pause
    return {"id": run.id, "name": run.name, "reason": reason,
            "message": run.paused_reason or "", "paused_at": iso(run.auto_paused_at)}  # fmt: skip


def receipt_data(receipt: Receipt, attachments: list[ReceiptAttachment]) -> dict[str, Any]:
    return {
        "id": receipt.id,
        "gmail_message_id": receipt.gmail_message_id,
        "subject": receipt.subject,
        "sender": receipt.sender,
        "received_at": iso(receipt.received_at),
        "vendor": receipt.vendor,
        "date": receipt.receipt_date.isoformat() if receipt.receipt_date else None,
        "total_amount": str(receipt.total_amount) if receipt.total_amount is not None else None,
        "currency": receipt.currency,
        "extraction": receipt.extraction,
        "attachments": [
            {"id": a.id, "filename": a.filename, "mime_type": a.mime_type, "size": a.size,
             "sha256": a.sha256}
            for a in attachments
        ],
    }  # fmt: skip
