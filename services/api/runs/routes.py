"""Runs (campaigns): create, start, pause, resume, cancel, progress."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import func, select

from libs.common.contracts import DIALER_DISPATCH
from libs.common.models import Business, Run, utcnow
from libs.common.outbox import enqueue_after_commit
from libs.common.queue_health import check_broker
from libs.common.settings import Settings
from libs.common.telephony.calling_window import InvalidWindow, check_window
from libs.common.web.db import get_session
from libs.common.web.errors import ApiError
from libs.common.web.validation import (
    MAX_ROW_ID,
    bad_request,
    bounded_text,
    json_object,
    optional_int,
    pagination,
)
from services.api.auth import current_business_id
from services.api.runs import service

blueprint = Blueprint("runs", __name__)

MAX_RETRY_DELAY_S = 7 * 86400
MAX_NAME_LENGTH = 200
MAX_FILTER_LENGTH = 100


def run_dict(run: Run, progress: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status.value,
        "max_attempts": run.max_attempts,
        "retry_delay_s": run.retry_delay_s,
        "window": {"start": run.window_start, "end": run.window_end},
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "progress": progress,
    }


def _run_or_404(run_id: int, lock: bool = False) -> Run:
    query = select(Run).where(Run.id == run_id, Run.business_id == current_business_id())
    # FOR NO KEY UPDATE, not FOR UPDATE: a claim inserting a call row (which references the
    # run, so takes FOR KEY SHARE on it) while holding the job rows a cancel must update would
    # otherwise deadlock with that cancel.
    run = get_session().scalar(query.with_for_update(key_share=True) if lock else query)
    if run is None:
        raise ApiError(404, "not_found", f"no run {run_id}")
    return run


def _selection(body: dict[str, Any]) -> service.LeadSelection:
    lead_ids, filters = body.get("lead_ids"), body.get("filter")
    if (lead_ids is None) == (filters is None):
        raise bad_request("give exactly one of lead_ids (array) or filter (object, {} for all)")
    if lead_ids is not None:
        if (
            not isinstance(lead_ids, list)
            or not lead_ids
            or not all(type(i) is int and 0 < i <= MAX_ROW_ID for i in lead_ids)
        ):
            raise bad_request("lead_ids must be a non-empty array of positive integers")
        if len(lead_ids) > service.MAX_LEADS_PER_RUN:
            raise bad_request(f"at most {service.MAX_LEADS_PER_RUN} leads per run")
        return service.LeadSelection(lead_ids=sorted(set(lead_ids)))
    if not isinstance(filters, dict):
        raise bad_request("filter must be an object")
    unknown = set(filters) - {"source", "last_call_status", "q"}
    if unknown:
        raise bad_request(f"unknown filter fields: {', '.join(sorted(unknown))}")
    for key, value in filters.items():
        bounded_text(value, f"filter.{key}", MAX_FILTER_LENGTH)
    return service.LeadSelection(**filters)


@blueprint.post("/runs")
def create_run() -> tuple[Response, int]:
    body = json_object()
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise bad_request(f"name is required (a string of at most {MAX_NAME_LENGTH} characters)")
    max_attempts = optional_int(body, "max_attempts", 1, 1, 10)
    retry_delay_s = optional_int(body, "retry_delay_s", 3600, 0, MAX_RETRY_DELAY_S)
    window = body.get("window", {"start": "08:00", "end": "21:00"})
    if not isinstance(window, dict):
        raise bad_request('window must be an object like {"start": "08:00", "end": "21:00"}')
    start, end = window.get("start", "08:00"), window.get("end", "21:00")
    try:
        check_window(start, end)
    except InvalidWindow as exc:
        raise bad_request(f"window: {exc}") from None
    selection = _selection(body)
    session = get_session()
    business = session.get_one(Business, current_business_id())
    leads = service.select_leads(session, business.id, selection)
    if selection.lead_ids is not None and len(leads) != len(selection.lead_ids):
        found = {lead.id for lead in leads}
        missing = [i for i in selection.lead_ids if i not in found][:50]
        raise bad_request("unknown lead ids", details={"lead_ids": missing})
    if not leads:
        raise bad_request("the selection matches no lead")
    if len(leads) > service.MAX_LEADS_PER_RUN:
        raise bad_request(f"at most {service.MAX_LEADS_PER_RUN} leads per run")
    run, _ = service.create_run(
        session,
        business,
        leads,
        name=name.strip(),
        max_attempts=max_attempts,
        retry_delay_s=retry_delay_s,
        window_start=start,
        window_end=end,
    )
    session.commit()
    return jsonify(run_dict(run, service.progress(session, [run], utcnow())[run.id])), 201


@blueprint.get("/runs")
def list_runs() -> Response:
    page, per_page = pagination(100)
    session = get_session()
    query = select(Run).where(Run.business_id == current_business_id())
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    runs = list(
        session.scalars(query.order_by(Run.id.desc()).offset((page - 1) * per_page).limit(per_page))
    )
    progress = service.progress(session, runs, utcnow())
    return jsonify(
        {
            "items": [run_dict(run, progress[run.id]) for run in runs],
            "page": page,
            "per_page": per_page,
            "total": total,
        }
    )


@blueprint.get("/runs/<int:run_id>")
def get_run(run_id: int) -> Response:
    run = _run_or_404(run_id)
    return jsonify(run_dict(run, service.progress(get_session(), [run], utcnow())[run.id]))


def _act(run_id: int, action: str) -> Response:
    settings: Settings = current_app.config["SETTINGS"]
    dispatches = action in ("start", "resume")
    if dispatches:
        check_broker(settings.queue_broker_url, settings.broker_check_timeout_s)
    session = get_session()
    run = _run_or_404(run_id, lock=True)
    try:
        service.transition(session, run, action, utcnow())
    except service.InvalidTransition as exc:
        raise ApiError(409, "invalid_state", str(exc)) from None
    if dispatches:
        enqueue_after_commit(session, DIALER_DISPATCH.message(business_id=run.business_id))
    session.commit()
    return jsonify(run_dict(run, service.progress(session, [run], utcnow())[run.id]))


@blueprint.post("/runs/<int:run_id>/start")
def start_run(run_id: int) -> Response:
    return _act(run_id, "start")


@blueprint.post("/runs/<int:run_id>/pause")
def pause_run(run_id: int) -> Response:
    return _act(run_id, "pause")


@blueprint.post("/runs/<int:run_id>/resume")
def resume_run(run_id: int) -> Response:
    return _act(run_id, "resume")


@blueprint.post("/runs/<int:run_id>/cancel")
def cancel_run(run_id: int) -> Response:
    return _act(run_id, "cancel")
