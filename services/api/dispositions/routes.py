"""Dispositions: list, create, read, update, delete; and an operator's disposition on a call."""

from __future__ import annotations

from flask import Blueprint, Response
from sqlalchemy import select

from libs.campaigns.outcomes.apply import UnknownDisposition, dispositions, set_by_operator
from libs.common.models import Call as CallRow
from libs.common.models import Disposition as DispositionRow
from libs.common.models import Run
from libs.web.db import get_session
from libs.web.errors import ApiError
from libs.web.validation import bad_request
from services.api.auth import current_business_id
from services.api.calls.schemas import Call
from services.api.dispositions.schemas import (
    CallDispositionInput,
    Disposition,
    DispositionInput,
    DispositionList,
    DispositionUpdate,
)
from services.api.spec import answers, api

blueprint = Blueprint("dispositions", __name__)

#: A business's list stays one a person can read in a menu.
MAX_DISPOSITIONS = 100
_CONFLICT = (409, "the code exists already (duplicate), or an outcome belongs to another "
             "disposition (outcome_taken)")  # fmt: skip


def _disposition_or_404(disposition_id: int) -> DispositionRow:
    row = get_session().scalar(
        select(DispositionRow).where(
            DispositionRow.id == disposition_id,
            DispositionRow.business_id == current_business_id(),
        )
    )
    if row is None:
        raise ApiError(404, "not_found", f"no disposition {disposition_id}")
    return row


def _check(row: DispositionRow) -> None:
    """The rules that span rows: an outcome has one disposition, a move names a run of ours."""
    with get_session().no_autoflush:  # a changed row must not be written before it is checked
        _check_unflushed(row)


def _check_unflushed(row: DispositionRow) -> None:
    session = get_session()
    if row.action == "retry" and row.retry_after_h is None:
        raise bad_request("retry_after_h is required when action is retry")
    if row.action == "move" and row.move_to_run_id is None:
        raise bad_request("move_to_run_id is required when action is move")
    if row.move_to_run_id is not None:
        run = session.scalar(
            select(Run.id).where(Run.id == row.move_to_run_id, Run.business_id == row.business_id)
        )
        if run is None:
            raise bad_request(f"move_to_run_id: no run {row.move_to_run_id}")
    for other in dispositions(session, row.business_id):
        taken = set(other.outcomes or ()) & set(row.outcomes or ())
        if other.id != row.id and taken:
            raise ApiError(409, "outcome_taken", f"outcome {sorted(taken)[0]} already sets "
                           f"disposition {other.code}")  # fmt: skip


@blueprint.get("/dispositions")
@api.validate(resp=answers({200: DispositionList}))
def list_dispositions() -> DispositionList:
    """The business's dispositions, oldest first."""
    rows = dispositions(get_session(), current_business_id())
    return DispositionList(items=[Disposition.model_validate(row) for row in rows])


@blueprint.post("/dispositions")
@api.validate(resp=answers({201: Disposition}, _CONFLICT))
def create_disposition(json: DispositionInput) -> tuple[Disposition, int]:
    """Add a disposition: its code, label, the outcomes that set it, what it does to the lead."""
    session = get_session()
    business_id = current_business_id()
    existing = dispositions(session, business_id)
    if any(d.code == json.code for d in existing):
        raise ApiError(409, "duplicate", f"disposition {json.code} exists already")
    if len(existing) >= MAX_DISPOSITIONS:
        raise ApiError(409, "too_many", f"at most {MAX_DISPOSITIONS} dispositions")
    row = DispositionRow(business_id=business_id, **json.model_dump())
    row.outcomes = list(dict.fromkeys(row.outcomes))
    _check(row)
    session.add(row)
    session.commit()
    return Disposition.model_validate(row), 201


@blueprint.get("/dispositions/<int:disposition_id>")
@api.validate(resp=answers({200: Disposition}, 404))
def get_disposition(disposition_id: int) -> Disposition:
    """One disposition."""
    return Disposition.model_validate(_disposition_or_404(disposition_id))


@blueprint.patch("/dispositions/<int:disposition_id>")
@api.validate(resp=answers({200: Disposition}, 404, _CONFLICT))
def update_disposition(disposition_id: int, json: DispositionUpdate) -> Disposition:
    """Change a disposition; calls already recycled by it keep what was done."""
    session = get_session()
    row = _disposition_or_404(disposition_id)
    for name, value in json.model_dump(exclude_unset=True).items():
        if value is not None or name in ("retry_after_h", "move_to_run_id"):
            setattr(row, name, list(dict.fromkeys(value)) if name == "outcomes" else value)
    _check(row)
    session.commit()
    return Disposition.model_validate(row)


@blueprint.delete("/dispositions/<int:disposition_id>")
@api.validate(resp=answers({204: "deleted"}, 404))
def delete_disposition(disposition_id: int) -> Response:
    """Remove a disposition; calls keep their code, and no rule or recycling uses it again."""
    session = get_session()
    session.delete(_disposition_or_404(disposition_id))
    session.commit()
    return Response(status=204)


@blueprint.put("/calls/<int:call_id>/disposition")
@api.validate(resp=answers({200: Call}, 404))
def set_call_disposition(call_id: int, json: CallDispositionInput) -> Call:
    """An operator's disposition for a call (one of the business's codes); the lead is recycled
    by it once the call has ended (by the worker, once per disposition)."""
    session = get_session()
    call = session.scalar(
        select(CallRow)
        .where(CallRow.id == call_id, CallRow.business_id == current_business_id())
        .with_for_update()
    )
    if call is None:
        raise ApiError(404, "not_found", f"no call {call_id}")
    try:
        set_by_operator(session, call, json.code)
    except UnknownDisposition as exc:
        raise bad_request(f"code: {exc}") from None
    session.commit()
    return Call.model_validate(call)
