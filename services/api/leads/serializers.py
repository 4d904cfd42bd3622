"""Public shapes of leads and do-not-call entries."""

from __future__ import annotations

from typing import Any

from libs.common.models import DncEntry, Lead


def lead_dict(lead: Lead) -> dict[str, Any]:
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
        "last_called_at": lead.last_called_at.isoformat() if lead.last_called_at else None,
        "created_at": lead.created_at.isoformat(),
    }


def dnc_dict(entry: DncEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "phone": entry.phone_e164,
        "reason": entry.reason,
        "created_at": entry.created_at.isoformat(),
    }
