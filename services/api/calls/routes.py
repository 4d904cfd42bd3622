"""Call logs, filtered by run, lead and status."""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from libs.common.models import Call as CallRow
from libs.web.db import get_session
from libs.web.errors import ApiError
from services.api.auth import current_business_id
from services.api.calls.schemas import Call, CallDetail, CallFilter, CallPage
from services.api.spec import answers, api

blueprint = Blueprint("calls", __name__)


@blueprint.get("/calls")
@api.validate(resp=answers({200: CallPage}))
def list_calls(query: CallFilter) -> CallPage:
    """Call logs, newest first."""
    rows = select(CallRow).where(CallRow.business_id == current_business_id())
    if query.run_id is not None:
        rows = rows.where(CallRow.run_id == query.run_id)
    if query.lead_id is not None:
        rows = rows.where(CallRow.lead_id == query.lead_id)
    if query.status:
        rows = rows.where(CallRow.status == query.status)
    session = get_session()
    total = session.scalar(select(func.count()).select_from(rows.subquery())) or 0
    page = session.scalars(
        rows.order_by(CallRow.id.desc()).offset(query.offset).limit(query.per_page)
    )
    items = [Call.model_validate(row) for row in page]
    return CallPage(items=items, page=query.page, per_page=query.per_page, total=total)


@blueprint.get("/calls/<int:call_id>")
@api.validate(resp=answers({200: CallDetail}, 404))
def get_call(call_id: int) -> CallDetail:
    """A call, with its transcript and what its voice agent did."""
    call = get_session().scalar(
        select(CallRow)
        .where(CallRow.id == call_id, CallRow.business_id == current_business_id())
        .options(selectinload(CallRow.transcript))
    )
    if call is None:
        raise ApiError(404, "not_found", f"no call {call_id}")
    return CallDetail.model_validate(call)
