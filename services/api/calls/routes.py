"""Call logs, filtered by run, lead and status."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import func, select

from libs.common.models import STATUS_RANK, Call, TranscriptLine
from libs.common.web.db import get_session
from libs.common.web.errors import ApiError
from libs.common.web.validation import pagination, query_choice, query_int
from services.api.auth import current_business_id

blueprint = Blueprint("calls", __name__)


def call_dict(call: Call) -> dict[str, Any]:
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
        "error": {"code": call.error_code, "message": call.error_message}
        if call.error_code
        else None,
        "created_at": call.created_at.isoformat(),
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "from": call.from_number,
        "disposition": call.disposition,
        "transferred_to": call.transferred_to,
        "transfer_mode": call.transfer_mode,
        "agent_error": call.agent_error,
    }


@blueprint.get("/calls")
def list_calls() -> Response:
    page, per_page = pagination()
    query = select(Call).where(Call.business_id == current_business_id())
    if (run_id := query_int("run_id", None, 1, 2**62)) is not None:
        query = query.where(Call.run_id == run_id)
    if (lead_id := query_int("lead_id", None, 1, 2**62)) is not None:
        query = query.where(Call.lead_id == lead_id)
    if status := query_choice("status", set(STATUS_RANK)):
        query = query.where(Call.status == status)
    session = get_session()
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Call.id.desc()).offset((page - 1) * per_page).limit(per_page)
    )
    return jsonify(
        {"items": [call_dict(c) for c in rows], "page": page, "per_page": per_page, "total": total}
    )


@blueprint.get("/calls/<int:call_id>")
def get_call(call_id: int) -> Response:
    call = get_session().scalar(
        select(Call).where(Call.id == call_id, Call.business_id == current_business_id())
    )
    if call is None:
        raise ApiError(404, "not_found", f"no call {call_id}")
    lines = get_session().scalars(
        select(TranscriptLine).where(TranscriptLine.call_id == call.id).order_by(TranscriptLine.seq)
    )
    # Both sides of the conversation, timestamped, as the voice agent heard and said them.
    return jsonify({**call_dict(call), "transcript": [line.to_dict() for line in lines]})
